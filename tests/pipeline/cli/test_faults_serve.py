"""``m2ugen-data serve`` when the Prefect API fails: one line when the Prefect API is down at start, and an exit within 10 s
of SIGTERM when the API stopped answering while serving (a stopped or partitioned server: connections are
accepted, nothing answers; Prefect's own stop waits on its 60 s request timeout and retries)."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from processes import stop_process_group

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_with_the_api_down_says_so_in_one_line(tmp_path):
    import os

    url = f"http://127.0.0.1:{_free_port()}/api"  # nothing listens there
    env = {**os.environ, "PREFECT_API_URL": url, "PREFECT_HOME": str(tmp_path / "prefect")}
    done = subprocess.run([str(BIN / "m2ugen-data"), "--warehouse", str(tmp_path / "wh"), "serve"],
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    lines = [ln for ln in (done.stdout + done.stderr).splitlines() if ln.strip()]
    assert done.returncode == 2, lines[-20:]
    assert len(lines) == 1 and url in lines[0] and "Traceback" not in lines[0], lines[-20:]


class _Proxy:
    """A TCP relay to the real Prefect server; with ``hung`` set it accepts and reads but never answers."""

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.closed = self.hung = False
        self.polled = threading.Event()  # the runner asked for scheduled runs: it is serving
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.sockets.append(client)
            if self.hung:  # like a stopped server: the kernel accepts, nothing ever answers
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target))
            self.sockets.append(upstream)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                if b"/deployments/get_scheduled_flow_runs" in data:
                    self.polled.set()
                if not self.hung:
                    dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.closed = True
        self.listener.close()
        for s in self.sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()


@pytest.mark.slow
def test_serve_exits_within_10_s_of_sigterm_after_the_api_stopped_answering(prefect_api, tmp_path):
    real = prefect_api["url"]
    proxy = _Proxy(int(real.split(":")[2].split("/")[0]))
    env = {**prefect_api["env"], "PREFECT_API_URL": f"http://127.0.0.1:{proxy.port}/api"}
    warehouse = tmp_path / "wh"
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        serve = subprocess.Popen([str(BIN / "m2ugen-data"), "--warehouse", str(warehouse), "serve"],
                                 env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not proxy.polled.is_set():  # the runner has registered the deployments and polls for runs
            assert serve.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "serve did not poll for runs in 300 s: " + log.read_text()[-3000:]
            time.sleep(0.2)
        found = httpx.post(f"{real}/deployments/filter", json={}, timeout=10).json()
        assert sum(d["parameters"].get("warehouse") == str(warehouse) for d in found) == 8
        proxy.hung = True
        serve.send_signal(signal.SIGTERM)
        try:
            rc = serve.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pytest.fail("serve still running 10 s after SIGTERM: " + log.read_text()[-2000:])
        output = log.read_text()
        # (Prefect itself logs the lost events websocket with its traceback while serving; not the stop's)
        assert rc == 0 and "serve: stopping on SIGTERM" in output and "pause_deployment" not in output, output[-3000:]
    finally:
        proxy.close()
        stop_process_group(serve, grace_s=5)
