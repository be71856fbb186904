"""Stopping the servers the tests start in their own process groups (Prefect server, `m2ugen-data serve`)."""

from __future__ import annotations

import os
import signal
import subprocess


def stop_process_group(proc: subprocess.Popen, grace_s: float = 30) -> None:
    """SIGTERM the whole group (uvicorn workers, flow subprocesses), then SIGKILL whatever outlives the grace."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
