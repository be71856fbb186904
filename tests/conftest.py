"""Shared fixtures. Each area adds its own fixtures here only when several test modules need them."""

from __future__ import annotations

from pathlib import Path

import pytest

from m2ugen_data.warehouse import Warehouse, open_warehouse


@pytest.fixture
def warehouse(tmp_path: Path) -> Warehouse:
    """An empty warehouse in a temporary directory."""
    return open_warehouse(tmp_path / "wh")


@pytest.fixture(scope="session")
def synth_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A rendered synthetic corpus (24 clips, seed 7): 6 sibling groups and every kind of trouble.

    Its truth is ``m2ugen_data.synth.load_truth(path)``; audio under ``path/audio``, the AudioSet-format
    segment list at ``path/segments.csv``. Rendered once per session (a few seconds).
    """
    from m2ugen_data.synth import render_corpus

    out = tmp_path_factory.mktemp("synth_corpus")
    render_corpus(n=24, seed=7, out_dir=out, sibling_fraction=0.8, trouble_fraction=0.2)
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny M2UGen preset written in the real on-disk formats (HF LLaMA, encoders, MusicGen)."""
    from m2ugen_model.presets import write_tiny_weights

    return write_tiny_weights(tmp_path_factory.mktemp("tiny_m2ugen"))


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models spend their time in thread hand-offs, not arithmetic: one thread is ~10x faster on a
    busy 2-core machine. Modules of tiny-model tests use it (``pytestmark = usefixtures(...)``)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def published_m2ugen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """M2UGen with every part written tiny in its published layout (m2ugen_model/testing/published_layouts.py):
    preset.json naming the HF-layout LLaMA-2, Meta's download beside it, and the released checkpoint.pth.
    Read-only: a test that breaks it copies it first."""
    from m2ugen_model.testing.published_layouts import write_m2ugen_release

    return write_m2ugen_release(tmp_path_factory.mktemp("published_m2ugen"), llama_layout="hf")


@pytest.fixture(scope="session")
def published_mu_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MU-LLaMA's released ckpts folder (LLaMA/7B + tokenizer.model, MERT-v1-330M, checkpoint.pth), tiny."""
    from m2ugen_model.testing.published_layouts import write_mu_llama_release

    return write_mu_llama_release(tmp_path_factory.mktemp("published_mu_llama") / "ckpts")


@pytest.fixture(scope="session")
def synth_videos(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One rendered 10 s MP4 per synthetic scene: ``{scene: (path, VideoTruth)}`` (clip id ``scn<scene#>..._0``).

    Used by the vision tests (frames, clips, captioners); rendered once per session (about 3 s).
    """
    from m2ugen_data.vision.synth_video import SCENES, plan_video, render_video

    out = tmp_path_factory.mktemp("synth_videos")
    videos = {}
    for i, scene in enumerate(SCENES):
        truth = plan_video(f"scn{i:08d}_0", scene=scene)
        videos[scene] = (render_video(out / f"{scene}.mp4", truth), truth)
    return videos


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory):
    """A real Prefect server on loopback for the flow tests: ``{"url": api_url, "env": env}``.

    It has its own PREFECT_HOME in a temporary directory and is started once per session (about 15-60 s on a
    busy 2-core machine); in-process flow runs use it through ``temporary_settings``, subprocesses through
    ``env``. Stopped (its process group) at the end of the session.
    """
    import os
    import socket
    import subprocess
    import sys
    import time

    import httpx
    from processes import stop_process_group

    home = tmp_path_factory.mktemp("prefect_home")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    prefect = str(Path(sys.executable).parent / "prefect")
    log = open(home / "server.log", "wb")
    proc = subprocess.Popen(
        [prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port), "--no-services"],
        env={k: v for k, v in env.items() if k != "PREFECT_API_URL"}, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"prefect server exited: {(home / 'server.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("prefect server did not become healthy in 300 s")
            time.sleep(0.5)
        yield {"url": url, "env": env}
    finally:
        stop_process_group(proc)
        log.close()


def _in_process(prefect_api: dict):
    """This process's Prefect settings pointed at the session's server, for in-process flow runs. No log
    shipping from this process: its handler would still be flushing when the server stops."""
    from prefect.settings import PREFECT_API_URL, PREFECT_LOGGING_TO_API_ENABLED, temporary_settings

    return temporary_settings({PREFECT_API_URL: prefect_api["url"], PREFECT_LOGGING_TO_API_ENABLED: False})


@pytest.fixture(scope="module")
def flow_api(prefect_api):
    """``prefect_api`` with this process's Prefect settings pointed at it (``_in_process``)."""
    with _in_process(prefect_api):
        yield prefect_api


@pytest.fixture(scope="session")
def thread_built(prefect_api, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """``build-muedit`` and ``build-mucaps`` run once per session with the thread runner on ``dask_flow``'s small
    corpora: ``{dataset: {"wh", "corpus", "summary"}}``. The Dask tests compare against it and the flow tests
    that only read a built warehouse inspect it, so the session builds each once. Never write to it."""
    from dask_flow import SOURCES, run_flow

    from flows.params import TaskRunnerChoice
    from m2ugen_data.warehouse import open_warehouse

    base = tmp_path_factory.mktemp("thread_built")
    out = {}
    with _in_process(prefect_api):
        for dataset in SOURCES:
            root, corpus = base / f"wh_{dataset}", base / f"corpus_{dataset}"
            summary = run_flow(dataset, root, corpus, TaskRunnerChoice(kind="thread", max_workers=2))
            out[dataset] = {"wh": open_warehouse(root), "corpus": corpus, "summary": summary}
    return out


@pytest.fixture(scope="module")
def weights(tiny_model_dir: Path) -> str:
    """The session-wide tiny preset as the trainer's ``--weights-dir`` (training never writes into it)."""
    return str(tiny_model_dir)
