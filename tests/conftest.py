"""Shared fixtures. Each area adds its own fixtures here only when several test modules need them."""

from __future__ import annotations

from pathlib import Path

import pytest

from m2ugen_data.warehouse import Warehouse, open_warehouse

SHARED = Path(__file__).resolve().parents[2] / "shared"
AUDIOSET_DIR = SHARED / "audioset"


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
