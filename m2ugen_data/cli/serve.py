"""``m2ugen-data serve``: serve the Prefect deployments (``build-muedit/local``, ``build-mucaps/audioset``, ...).

Prefect is imported only when the command runs, so the rest of ``m2ugen-data`` never needs it.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer


class RunnerKind(str, Enum):
    thread = "thread"
    process = "process"
    dask = "dask"


def serve(
    ctx: typer.Context,
    task_runner: Annotated[RunnerKind, typer.Option(help="How flow runs fan out their batches.")] = RunnerKind.thread,
    max_workers: Annotated[int | None, typer.Option(min=1, help="Threads or processes per flow run (default: the cores).")] = None,
    dask_address: Annotated[str | None, typer.Option(help="dask: scheduler address (default: a local cluster per run).")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Flow runs at a time (default: no limit).")] = None,
) -> None:
    """Serve the build-* deployments against $PREFECT_API_URL until interrupted.

    Then: `prefect deployment run build-muedit/local --watch` (parameters with --param key=JSON).
    """
    from m2ugen_data.cli.common import get_warehouse

    root = str(get_warehouse(ctx).root)
    from flows.params import TaskRunnerChoice
    from flows.serve import serve_flows
    from flows.prefect_api import bind_prefect_server

    bind_prefect_server()  # without PREFECT_API_URL: a temporary local API that dies with this process
    serve_flows(root, TaskRunnerChoice(kind=task_runner.value, max_workers=max_workers, dask_address=dask_address), limit)
