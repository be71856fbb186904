"""Task runners for the flows: threads by default, a process pool, or a Dask cluster, chosen without code changes.

A served flow is re-imported from its entrypoint in a fresh process, so ``with_options`` on the serving side
would be lost there; the flows therefore take their default runner from the environment
(``M2UGEN_TASK_RUNNER=thread|process|dask``, ``M2UGEN_MAX_WORKERS``, ``M2UGEN_DASK_ADDRESS``), which the
serve process passes on to its flow runs. In-process callers use ``with_runner`` (or plain
``flow.with_options(task_runner=...)`` with any Prefect task runner, e.g. ``prefect_dask.DaskTaskRunner``).
The dask choice connects when a flow run starts and names an address that does not answer in one line
(``flows.dask_runner``); its workers must mount the warehouse at the flow's path (``flows.dask_checks``).
"""

from __future__ import annotations

import os
from typing import Any

from flows.params import TaskRunnerChoice
from m2ugen_data.errors import MissingDependencyError

ENV_KIND, ENV_WORKERS, ENV_DASK = "M2UGEN_TASK_RUNNER", "M2UGEN_MAX_WORKERS", "M2UGEN_DASK_ADDRESS"


def choice_from_env() -> TaskRunnerChoice:
    workers = os.environ.get(ENV_WORKERS)
    return TaskRunnerChoice(
        kind=os.environ.get(ENV_KIND) or "thread",
        max_workers=int(workers) if workers else None,
        dask_address=os.environ.get(ENV_DASK) or None,
    )


def choice_env(choice: TaskRunnerChoice) -> dict[str, str]:
    """The environment that makes flow runs started from this process use ``choice``."""
    env = {ENV_KIND: choice.kind}
    if choice.max_workers:
        env[ENV_WORKERS] = str(choice.max_workers)
    if choice.dask_address:
        env[ENV_DASK] = choice.dask_address
    return env


def make_task_runner(choice: TaskRunnerChoice | None = None) -> Any:
    """A Prefect task runner for ``choice`` (default: from the environment, else threads on every core)."""
    choice = choice or choice_from_env()
    workers = choice.max_workers or os.cpu_count() or 1
    if choice.kind == "thread":
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner(max_workers=workers)
    if choice.kind == "process":
        from prefect.task_runners import ProcessPoolTaskRunner

        return ProcessPoolTaskRunner(max_workers=workers)
    try:
        from flows.dask_runner import CheckedDaskTaskRunner
    except ImportError as e:
        raise MissingDependencyError("the dask task runner needs `pip install 'm2ugen[dask]'` (prefect-dask)") from e
    if choice.dask_address:
        return CheckedDaskTaskRunner(address=choice.dask_address)
    return CheckedDaskTaskRunner(cluster_kwargs={"n_workers": workers, "threads_per_worker": 1})


def with_runner(flow: Any, choice: TaskRunnerChoice) -> Any:
    """The same flow with another task runner (the flow's code and parameters are unchanged)."""
    return flow.with_options(task_runner=make_task_runner(choice))
