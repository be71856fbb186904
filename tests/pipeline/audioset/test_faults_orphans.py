"""Children die with their parent. The real commands are started, SIGKILLed, and every process
that descended from them must be gone 5 s later (pids collected from /proc before the kill)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from processes import alive, cmdline

from m2ugen_data.audioset.synthetic_import import import_synthetic
from m2ugen_data.lifecycle import descendants

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


def _wait_for(proc: subprocess.Popen, ready: Callable[[set[int]], bool], log: Path, timeout_s: float = 300) -> set[int]:
    deadline = time.monotonic() + timeout_s
    while True:
        kids = descendants(proc.pid)
        if ready(kids):
            return kids
        assert proc.poll() is None, f"exited early ({proc.returncode}): {log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"children never appeared: {[cmdline(p) for p in kids]}"
        time.sleep(0.2)


def _maps(pid: int, library: str) -> bool:
    try:
        with open(f"/proc/{pid}/maps") as fh:
            return library in fh.read()
    except OSError:
        return False


def _kill_and_check(proc: subprocess.Popen, kids: set[int]) -> None:
    try:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        time.sleep(5)
        survivors = alive(kids)
        assert not survivors, [cmdline(p) for p in survivors]
    finally:
        with contextlib.suppress(ProcessLookupError):  # whatever is left of the group, so a failure leaks nothing
            os.killpg(proc.pid, signal.SIGKILL)


def test_kill_9_of_analyze_takes_the_pool_workers_and_resource_tracker(warehouse, synth_corpus, tmp_path):
    import_synthetic(warehouse, synth_corpus, "muedit")
    log = tmp_path / "analyze.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "m2ugen-data"), "--warehouse", str(warehouse.root), "analyze", "--workers", "2"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def pool_up(kids: set[int]) -> bool:
        """Both workers have loaded the analysers (onnxruntime mapped): past their start-up, in the pool."""
        workers = [p for p in kids if "spawn_main" in cmdline(p)]
        return len(workers) >= 2 and all(_maps(p, "onnxruntime") for p in workers) and any(
            "resource_tracker" in cmdline(p) for p in kids)

    _kill_and_check(proc, _wait_for(proc, pool_up, log))


def test_kill_9_of_the_demo_takes_its_prefect_server(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PREFECT_HOME"] = str(tmp_path / "prefect")
    log = tmp_path / "demo.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "m2ugen_data.demo", "--warehouse", str(tmp_path / "wh"), "--clips", "2"],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
    kids = _wait_for(proc, lambda kids: any("uvicorn" in cmdline(p) for p in kids), log)
    _kill_and_check(proc, kids)
