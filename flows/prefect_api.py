"""Prefect's temporary API server as a child process that dies with this one.

The flows' entry points that run in one process without a Prefect server (``make demo``, ``m2ugen-data
serve`` without ``PREFECT_API_URL``) call ``bind_prefect_server`` first; the parent-death signal comes from
``m2ugen_data.lifecycle.die_with_parent``. Here, not in ``m2ugen_data``, because it is Prefect code: the
pipeline library never imports Prefect (the layering test checks it).
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from typing import Any

from m2ugen_data.lifecycle import die_with_parent


def bind_prefect_server() -> None:
    """Start Prefect's temporary API server now, as a child that the kernel kills when this process dies.

    Only when no ``PREFECT_API_URL`` is configured (then Prefect would start one itself, from whichever
    thread first needs a client, without the parent-death signal: after ``kill -9`` it kept listening).
    Call it from the main thread before the first flow runs; Prefect then reuses this server (it keeps one
    per port, the default under ``None``) and stops it at exit as usual.
    """
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        return
    from prefect.server.api import server as prefect_server

    class _BoundServer(prefect_server.SubprocessASGIServer):
        def _run_uvicorn_command(self) -> subprocess.Popen[Any]:
            """Prefect 3.9's command and environment for its temporary server, plus the parent-death signal."""
            import prefect
            from prefect.settings import get_current_settings

            cmd = [sys.executable, "-m", "uvicorn", "--app-dir", str(prefect.__module_path__.parent), "--factory",
                   "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port", str(self.port),
                   "--log-level", "error", "--lifespan", "on"]
            env = {**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1",
                   "PREFECT__SERVER_FINAL": "1", **get_current_settings().to_environment_variables(exclude_unset=True)}
            return subprocess.Popen(cmd, env=env, preexec_fn=functools.partial(die_with_parent, os.getpid()))  # noqa: PLW1509

    _BoundServer().start()
