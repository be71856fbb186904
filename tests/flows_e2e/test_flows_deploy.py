"""The README's three steps against a real Prefect server on loopback: server (the ``prefect_api`` fixture),
``m2ugen-data serve``, ``prefect deployment run build-muedit/local --watch``; then the warehouse is checked."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from processes import stop_process_group

from m2ugen_data.shards import verify_shards
from m2ugen_data.warehouse import open_warehouse

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


def _deployment_names(url: str) -> set[str]:
    resp = httpx.post(f"{url}/deployments/filter", json={}, timeout=10)
    resp.raise_for_status()
    return {d["name"] for d in resp.json()}


def test_serve_and_run_local_deployment(prefect_api, tmp_path):
    url, env = prefect_api["url"], prefect_api["env"]
    serve_log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115 - the server writes to it until the end
    server_wh = tmp_path / "served_default"  # the deployments' default warehouse; the run overrides it
    serve = subprocess.Popen(
        [str(BIN / "m2ugen-data"), "--warehouse", str(server_wh), "serve", "--limit", "1"],
        env=env, stdout=serve_log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while _deployment_names(url) < {"local", "audioset"}:
            assert serve.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "deployments were not registered in 300 s"
            time.sleep(0.5)

        wh_root = tmp_path / "wh"
        params = {
            "warehouse": str(wh_root),
            "synthetic": {"corpus_dir": str(tmp_path / "corpus"), "n": 6, "seed": 2, "sibling_fraction": 1.0, "trouble_fraction": 0.0},
            "run": {"batch_size": 3},
        }
        cmd = [str(BIN / "prefect"), "deployment", "run", "build-muedit/local", "--watch", "--watch-timeout", "500"]
        for k, v in params.items():
            cmd += ["--param", f"{k}={json.dumps(v)}"]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=560, check=False)
        output = done.stdout + done.stderr
        assert done.returncode == 0, output[-3000:] + (tmp_path / "serve.log").read_text()[-3000:]
        assert "Completed" in output
    finally:
        stop_process_group(serve)
        serve_log.close()

    wh = open_warehouse(wh_root, create=False)
    con = wh.connect()
    analysed, pairs, accepted, dialogues = con.execute(
        "SELECT (SELECT count(*) FROM features_latest WHERE status = 'ok'), (SELECT count(*) FROM pairs_latest), "
        "(SELECT count(*) FROM dialogues_latest WHERE status = 'ok'), (SELECT count(*) FROM dialogues_latest)"
    ).fetchone()
    # every pair got a dialogue; one whose clips differ in nothing measured that an edit request can name is
    # recorded as rejected (with its reasons) instead of being written with an invented change
    assert analysed == 6 and pairs >= 1 and dialogues == pairs and accepted >= 1
    check = verify_shards(wh, "muedit")
    assert check.ok and check.samples == accepted
    assert not server_wh.exists() or not (server_wh / "shards").exists()
