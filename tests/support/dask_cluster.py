"""A real Dask cluster on 127.0.0.1 for the tests: the ``dask scheduler`` and ``dask worker`` commands as
subprocesses (each worker a nanny and its worker process, one thread), as a user would start them by hand
or under Slurm, stopped by process group at the end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from processes import stop_process_group

DASK = str(Path(sys.executable).parent / "dask")


@dataclass
class DaskCluster:
    address: str
    scheduler: subprocess.Popen
    workers: list[subprocess.Popen] = field(default_factory=list)

    def info(self) -> dict:
        """The scheduler's view of its workers: ``{address: {"name": ..., "nthreads": ..., ...}}``."""
        from distributed import Client

        with Client(self.address, timeout=30, set_as_default=False) as c:
            return c.scheduler_info(n_workers=-1)["workers"]

    def pids(self) -> dict[str, int]:
        """``{worker address: worker process id}``."""
        from distributed import Client

        with Client(self.address, timeout=30, set_as_default=False) as c:
            return c.run(os.getpid)

    def wait_for_workers(self, n: int, timeout_s: float = 180) -> dict:
        deadline = time.monotonic() + timeout_s
        while True:
            workers = self.info()
            if len(workers) >= n:
                return workers
            for p in (self.scheduler, *self.workers):
                if p.poll() is not None:
                    raise RuntimeError(f"dask process {p.args} exited with {p.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(workers)} of {n} dask workers came up in {timeout_s} s")
            time.sleep(0.5)

    def kill_worker_process(self, pid: int) -> None:
        """SIGKILL one worker process (its nanny stays and starts a new one, as after an OOM kill)."""
        os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        for p in (*self.workers, self.scheduler):
            stop_process_group(p, grace_s=10)


def start_cluster(tmp: Path, env: dict[str, str], n_workers: int = 2, wrap: Sequence[str] = ()) -> DaskCluster:
    """A scheduler and ``n_workers`` single-threaded worker processes; ``wrap`` prefixes each worker's command
    (e.g. ``unshare`` for a worker with a mount namespace of its own)."""
    tmp.mkdir(parents=True, exist_ok=True)
    sched_file = tmp / "scheduler.json"
    log = open(tmp / "scheduler.log", "wb")
    scheduler = subprocess.Popen(
        [DASK, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file", str(sched_file)],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while not sched_file.is_file() or not sched_file.read_text().strip():
        if scheduler.poll() is not None or time.monotonic() > deadline:
            stop_process_group(scheduler)
            raise RuntimeError(f"dask scheduler did not start: {(tmp / 'scheduler.log').read_text()[-2000:]}")
        time.sleep(0.2)
    cluster = DaskCluster(json.loads(sched_file.read_text())["address"], scheduler)
    for i in range(n_workers):
        wlog = open(tmp / f"worker{i}.log", "wb")
        cmd = [
            DASK, "worker", cluster.address, "--nthreads", "1", "--nworkers", "1", "--name", f"w{i}",
            "--no-dashboard", "--local-directory", str(tmp / f"w{i}"), "--death-timeout", "60",
        ]
        cluster.workers.append(
            subprocess.Popen([*wrap, *cmd], env=env, stdout=wlog, stderr=subprocess.STDOUT, start_new_session=True)
        )
    try:
        cluster.wait_for_workers(n_workers)
    except BaseException:
        cluster.stop()
        raise
    return cluster
