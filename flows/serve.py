"""Deployments for every flow, served from one process with ``prefect.serve``.

Each flow gets a ``local`` deployment (the synthetic corpus, offline text backends: runs anywhere) and an
``audioset`` deployment (the official segment lists and ontology, yt-dlp downloads: needs network). The
warehouse default is resolved to an absolute path here, because flow runs start in their own processes.
Entrypoints are module paths (``flows.build_muedit.build_muedit``), so runs work from any directory where
the package is installed. The task runner choice reaches the runs through the environment (``flows.runners``).

Stopping is bounded: SIGTERM or Ctrl-C starts Prefect's graceful stop (cancel runs, pause the deployments),
and if the API does not answer within ``STOP_GRACE_S`` the process kills its flow-run children and exits 0
with one line (a supervisor's grace period is usually 10 s; Prefect's client retries for over a minute).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
from typing import Any

import httpx
from prefect.exceptions import TerminationSignal
from prefect.runner import Runner
from prefect.settings import PREFECT_API_URL
from prefect.types.entrypoint import EntrypointType

from flows.params import AudioSetSource, TaskRunnerChoice
from flows.runners import choice_env
from m2ugen_data.errors import M2UGenError
from m2ugen_data.lifecycle import terminate_descendants

STOP_GRACE_S = 5.0  # for Prefect's own stop; killing the flow runs and exiting take at most 2 s more


def deployments(warehouse: str) -> list[Any]:
    from flows.build_mucaps import build_mucaps
    from flows.build_muedit import build_muedit
    from flows.build_muimage import build_muimage
    from flows.build_muvideo import build_muvideo

    variants = {
        "local": ({"source": "synthetic"}, "synthetic corpus, grounded captions, template dialogues (offline)"),
        "audioset": (
            {"source": "audioset", "audioset": AudioSetSource().model_dump()},
            "official AudioSet segment lists and ontology, yt-dlp downloads",
        ),
    }
    out = []
    for flow in (build_muedit, build_mucaps, build_muimage, build_muvideo):
        for name, (params, what) in variants.items():
            out.append(
                flow.to_deployment(
                    name=name,
                    parameters={"warehouse": warehouse, **params},
                    description=f"{flow.name}: {what}",
                    tags=["m2ugen", name],
                    entrypoint_type=EntrypointType.MODULE_PATH,
                )
            )
    return out


def check_api() -> None:
    """One line, not a traceback after a minute of retries, when ``PREFECT_API_URL`` names no running server.

    Only an unreachable server counts: an HTTP error (a hosted API that wants auth for ``/health``) is
    left to Prefect's client. Without ``PREFECT_API_URL`` Prefect runs a temporary local API instead.
    """
    url = PREFECT_API_URL.value()
    if not url:
        return
    try:
        httpx.get(f"{url.rstrip('/')}/health", timeout=10)
    except httpx.TransportError as exc:
        raise M2UGenError(
            f"no Prefect API at {url} ({type(exc).__name__}): start one (`prefect server start`) or unset "
            "PREFECT_API_URL to serve on a temporary local API"
        ) from None


class _BoundedStopRunner(Runner):
    """Prefect's runner, with a deadline on its graceful stop."""

    def handle_sigterm(self, *args: Any, **kwargs: Any) -> None:
        if not getattr(self, "_deadline_started", False):
            self._deadline_started = True
            print(f"serve: stopping on {signal.Signals(args[0]).name if args else 'request'} "
                  f"(at most {STOP_GRACE_S:.0f} s for the Prefect API)", file=sys.stderr, flush=True)
            threading.Thread(target=_exit_after_grace, name="serve-stop-deadline", daemon=True).start()
        super().handle_sigterm(*args, **kwargs)


def _exit_after_grace() -> None:
    threading.Event().wait(STOP_GRACE_S)
    print(f"serve: stopped; Prefect's graceful stop did not finish within {STOP_GRACE_S:.0f} s (is the API "
          "reachable?), so the deployments may not be paused and running flow runs were killed",
          file=sys.stderr, flush=True)
    terminate_descendants()
    os._exit(0)


def serve_flows(warehouse: str, runner: TaskRunnerChoice, limit: int | None = None) -> None:
    """Register the deployments and run their flow runs until SIGTERM or Ctrl-C (blocks)."""
    os.environ.update(choice_env(runner))
    if runner.kind == "dask" and runner.dask_address:
        from flows.dask_checks import check_scheduler

        check_scheduler(runner.dask_address)  # one line now, not a comm traceback in every flow run
    check_api()
    served = _BoundedStopRunner(limit=limit)
    # Both signals stop the same bounded way, from the first moment (registration talks to the API too).
    signal.signal(signal.SIGTERM, served.handle_sigterm)
    signal.signal(signal.SIGINT, served.handle_sigterm)
    try:
        names = []
        for deployment in deployments(warehouse):
            served.add_deployment(deployment)
            names.append(deployment.full_name)
        print(f"serving {', '.join(names)}; run one with `prefect deployment run build-muedit/local`; "
              "stop with Ctrl-C or SIGTERM", flush=True)
        asyncio.run(served.start())
    except (KeyboardInterrupt, TerminationSignal):
        pass
    except Exception as exc:
        what = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if served.stopping:  # Prefect's stop failed fast (the API refused): the stop itself still happened
            print(f"serve: stopped; pausing the deployments failed: {what}", file=sys.stderr, flush=True)
        elif isinstance(exc, httpx.TransportError):
            raise M2UGenError(f"lost the Prefect API at {PREFECT_API_URL.value()}: {what}") from None
        else:
            raise
