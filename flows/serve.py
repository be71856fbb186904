"""Deployments for every flow, served from one process with ``prefect.serve``.

Each flow gets a ``local`` deployment (the synthetic corpus, offline text backends: runs anywhere) and an
``audioset`` deployment (the official segment lists and ontology, yt-dlp downloads: needs network). The
warehouse default is resolved to an absolute path here, because flow runs start in their own processes.
Entrypoints are module paths (``flows.build_muedit.build_muedit``), so runs work from any directory where
the package is installed. The task runner choice reaches the runs through the environment (``flows.runners``).
"""

from __future__ import annotations

import os
from typing import Any

from prefect import serve
from prefect.types.entrypoint import EntrypointType

from flows.params import AudioSetSource, TaskRunnerChoice
from flows.runners import choice_env


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


def serve_flows(warehouse: str, runner: TaskRunnerChoice, limit: int | None = None) -> None:
    """Register the deployments and run their flow runs until interrupted (blocks)."""
    os.environ.update(choice_env(runner))
    serve(*deployments(warehouse), limit=limit)
