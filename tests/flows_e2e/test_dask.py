"""The flows on a real Dask cluster: a ``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1.

A thread-runner run of ``build-muedit`` and of ``build-mucaps`` on a few synthetic clips is the reference;
the same flows through the ``dask`` runner choice must give the same manifests (timestamps aside) and the
same shard bytes. Then the faults: a worker process SIGKILLed in the middle of the analysis, a worker that
cannot see the warehouse, a scheduler that does not answer, two flows racing on one warehouse.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import tarfile
import time
from collections import Counter
from pathlib import Path

import pytest
from dask_cluster import DaskCluster, start_cluster
from dask_flow import SOURCES, run_flow
from warehouse_content import file_stats, latest_content

from flows.dask_checks import SchedulerUnreachableError, WarehouseNotVisibleError
from flows.params import TaskRunnerChoice
from flows.runners import choice_env
from m2ugen_data.shards import verify_shards
from m2ugen_data.warehouse import Warehouse, open_warehouse
from paths import SUPPORT

pytestmark = pytest.mark.slow
SCRIPT = SUPPORT / "dask_flow.py"


def _shard_bytes(wh: Warehouse) -> list[tuple[str, str, str]]:
    """Every shard the manifest names, with the sha256 it records and the sha256 of the file's bytes."""
    rows = wh.read("shards").to_pylist()
    return sorted((r["path"], r["sha256"], hashlib.sha256(wh.abspath(r["path"]).read_bytes()).hexdigest()) for r in rows)


def _client(cluster: DaskCluster):
    from distributed import Client

    return Client(cluster.address, timeout=30, set_as_default=False)


def _shard_members(wh: Warehouse) -> dict[str, str]:
    """Every member of every shard (``<sample key>.<ext>``) with the sha256 of its bytes, whatever the shard."""
    out: dict[str, str] = {}
    for r in wh.read("shards").to_pylist():
        with tarfile.open(wh.abspath(r["path"])) as tar:
            for m in tar.getmembers():
                assert m.name not in out, f"{m.name} is in two shards"
                out[m.name] = hashlib.sha256(tar.extractfile(m).read()).hexdigest()
    return out


def _executed(cluster: DaskCluster) -> dict[str, int]:
    """Tasks each worker process has run (a restarted worker process counts from 0 again)."""
    with _client(cluster) as c:
        return c.run(lambda dask_worker: dask_worker.state.executed_count)


def _analysed_twice(wh: Warehouse) -> list[str]:
    rows = Counter(r["clip_id"] for r in wh.read("features", latest=False).to_pylist())
    return sorted(c for c, n in rows.items() if n > 1)


def _same_as_reference(wh: Warehouse, ref: Warehouse) -> None:
    assert latest_content(wh) == latest_content(ref)
    shards = _shard_bytes(wh)
    assert shards and all(recorded == actual for _, recorded, actual in shards)
    assert shards == _shard_bytes(ref)


def _run_script(dataset: str, root: Path, corpus: Path, env: dict, log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, str(SCRIPT), dataset, str(root), str(corpus)], env=env, stdout=out, stderr=subprocess.STDOUT
        )


@pytest.fixture(scope="module")
def cluster(prefect_api, tmp_path_factory):
    c = start_cluster(tmp_path_factory.mktemp("dask"), prefect_api["env"])
    yield c
    c.stop()


@pytest.fixture(scope="module")
def dask_choice(cluster) -> TaskRunnerChoice:
    return TaskRunnerChoice(kind="dask", dask_address=cluster.address)


@pytest.fixture(scope="module")
def reference(thread_built, flow_api) -> dict:
    """The session's thread-runner runs of MUEdit and MUCaps (``thread_built``), each in its own warehouse."""
    for dataset, built in thread_built.items():
        assert built["summary"]["counts"]["shard_samples"] >= 2, f"the {dataset} corpus must give samples"
    return thread_built


@pytest.mark.parametrize("dataset", ["muedit", "mucaps"])
def test_dask_run_equals_thread_run(dataset, reference, dask_choice, cluster, tmp_path):
    ref = reference[dataset]
    before = _executed(cluster)
    summary = run_flow(dataset, tmp_path / "wh", ref["corpus"], dask_choice)
    wh = open_warehouse(tmp_path / "wh")
    assert summary["counts"] == ref["summary"]["counts"]
    _same_as_reference(wh, ref["wh"])
    # the batches (analysis, captions, dialogues) really ran on the cluster, on both worker processes
    ran = {w: n - before.get(w, 0) for w, n in _executed(cluster).items()}
    assert len([n for n in ran.values() if n > 0]) == 2, ran
    assert sum(ran.values()) >= summary["run"]["analyse"]["batches"] >= 2


def test_worker_killed_mid_run_loses_no_finished_work(reference, cluster, dask_choice, prefect_api, tmp_path):
    """SIGKILL the worker process that is analysing a batch once another batch is written. The flow (a script
    whose runner comes from M2UGEN_TASK_RUNNER/M2UGEN_DASK_ADDRESS) completes (Dask reruns the lost batch on
    the other worker), a rerun completes, and the finished batches are neither rewritten nor analysed again."""
    ref = reference["muedit"]
    root, log = tmp_path / "wh", tmp_path / "flow.log"
    env = {**prefect_api["env"], **choice_env(dask_choice)}
    proc = _run_script("muedit", root, ref["corpus"], env, log)
    features = root / "manifests" / "features"
    with _client(cluster) as client:
        victim = None
        while victim is None:
            assert proc.poll() is None, f"flow ended before the kill: {log.read_text()[-3000:]}"
            if features.is_dir() and any(features.glob("*.parquet")):
                busy = [w for w, keys in client.processing().items() if any(k.startswith("analyse_batch") for k in keys)]
                if busy:
                    victim = client.run(os.getpid, workers=[busy[0]])[busy[0]]
            time.sleep(0.05)
        wh = open_warehouse(root)
        written = file_stats(wh, "features")
        cluster.kill_worker_process(victim)
    analysed = {r["clip_id"] for r in wh.read("features").to_pylist()}
    assert 0 < len(analysed) < SOURCES["muedit"].n, "the kill must land in the middle of the analysis"
    assert proc.wait(timeout=600) == 0, log.read_text()[-3000:]
    rerun = _run_script("muedit", root, ref["corpus"], env, log)
    assert rerun.wait(timeout=600) == 0, log.read_text()[-3000:]

    after = file_stats(wh, "features")
    assert all(after[name] == stat for name, stat in written.items()), "finished features batches were rewritten"
    assert _analysed_twice(wh) == [], "clips analysed before the kill were analysed again"
    _same_as_reference(wh, ref["wh"])
    cluster.wait_for_workers(2)  # the nanny started a new worker process


def test_two_flows_racing_on_one_warehouse_agree(reference, dask_choice, prefect_api, tmp_path):
    """Two runs of one flow on one warehouse at once, both on the cluster: every manifest ends as one run
    alone leaves it and the shards hold the same samples, byte for byte. How the samples are cut into shards
    may differ: the run that shards first writes what is done by then, the other appends the rest."""
    ref = reference["muedit"]
    root, env = tmp_path / "wh", {**prefect_api["env"], **choice_env(dask_choice)}
    procs = [_run_script("muedit", root, ref["corpus"], env, tmp_path / f"flow{i}.log") for i in range(2)]
    for i, p in enumerate(procs):
        assert p.wait(timeout=600) == 0, (tmp_path / f"flow{i}.log").read_text()[-3000:]
    wh = open_warehouse(root)
    ours, theirs = latest_content(wh), latest_content(ref["wh"])
    assert {k: v for k, v in ours.items() if k != "shards"} == {k: v for k, v in theirs.items() if k != "shards"}
    assert _shard_members(wh) == _shard_members(ref["wh"])
    assert verify_shards(wh, "muedit").ok
    assert _analysed_twice(wh) == [], "the two runs analysed the same clips (work claims)"


def _can_unshare() -> bool:
    probe = ["unshare", "--user", "--map-root-user", "--mount", "--uts", "true"]
    try:
        return subprocess.run(probe, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def test_worker_that_cannot_see_the_warehouse_fails_naming_path_and_host(reference, prefect_api, flow_api, tmp_path):
    """A worker in a mount namespace of its own, with an empty tmpfs over the warehouse's parent directory and
    a host name of its own: the path exists for the flow, not for the worker (as on a node without the
    shared mount). The first batch fails naming both; the clips the flow imported before stay."""
    if not _can_unshare():
        pytest.skip("needs unshare (user + mount namespaces) to give a worker its own view of the filesystem")
    shared = tmp_path / "shared"
    shared.mkdir()
    hide = 'hostname "$0" && mount -t tmpfs m2ugen-elsewhere "$1" && shift && exec "$@"'
    wrap = ["unshare", "--user", "--map-root-user", "--mount", "--uts", "sh", "-c", hide, "node-without-mount", str(shared)]
    blind = start_cluster(tmp_path / "blind", prefect_api["env"], n_workers=1, wrap=wrap)
    root = shared / "wh"
    try:
        with pytest.raises(WarehouseNotVisibleError) as e:
            run_flow("mucaps", root, reference["mucaps"]["corpus"], TaskRunnerChoice(kind="dask", dask_address=blind.address))
    finally:
        blind.stop()
    msg = str(e.value)
    assert str(root) in msg and "node-without-mount" in msg and "\n" not in msg
    wh = open_warehouse(root)
    assert wh.read("clips").num_rows == SOURCES["mucaps"].n  # what the flow wrote is kept
    assert wh.read("features").num_rows == 0


@pytest.mark.timeout(180)  # the point is that it does not hang
def test_scheduler_that_does_not_answer_is_one_line_and_no_hang(flow_api, tmp_path):
    from flows.dask_runner import CheckedDaskTaskRunner
    from flows.build_mucaps import build_mucaps

    with socket.socket() as silent:  # the kernel accepts connections; nobody ever speaks Dask on them
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        address = f"tcp://127.0.0.1:{silent.getsockname()[1]}"
        flow = build_mucaps.with_options(task_runner=CheckedDaskTaskRunner(address=address, client_kwargs={"timeout": 3}))
        with pytest.raises(SchedulerUnreachableError) as e:
            flow(warehouse=str(tmp_path / "wh"))
        served = subprocess.run(
            [str(Path(sys.executable).parent / "m2ugen-data"), "--warehouse", str(tmp_path / "wh2"), "serve",
             "--task-runner", "dask", "--dask-address", address],
            capture_output=True, text=True, timeout=120, env=flow_api["env"],
        )
    msg = str(e.value)
    assert address in msg and "did not answer" in msg and "\n" not in msg
    assert not (tmp_path / "wh").exists(), "the flow must fail before it acquires anything"
    assert served.returncode != 0
    lines = served.stderr.strip().splitlines()
    assert len(lines) == 1 and address in lines[0] and "did not answer" in lines[0], served.stderr[-2000:]


def test_worker_side_pitfalls(flow_api, cluster, dask_choice):
    """Prefect 3 + Dask issues that bite flows like ours: a pydantic parameter must arrive intact
    (PrefectHQ/prefect#16756), a task must have its run context on the worker (``get_run_logger``) and many
    submitted futures must all resolve, in order (#15633, #17414)."""
    from prefect import flow, get_run_logger

    from flows.params import RunOptions
    from flows.runners import with_runner
    from flows.steps import fan_out
    from flows.tasks import stage_task

    @stage_task(retries=0)
    def where(batch: int, run: RunOptions) -> dict:
        get_run_logger().info("batch %d", batch)
        return {"batch": batch, "pid": os.getpid(), "run": run}

    @flow
    def probe(n: int) -> list[dict]:
        return fan_out(where, range(n), "batch", name="probe", run=RunOptions(batch_size=7))

    results = with_runner(probe, dask_choice)(12)
    assert [r["batch"] for r in results] == list(range(12))
    assert all(r["run"] == RunOptions(batch_size=7) for r in results)
    workers = set(cluster.pids().values())
    assert {r["pid"] for r in results} <= workers and os.getpid() not in workers
