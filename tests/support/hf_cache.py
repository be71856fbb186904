"""A fake local Hugging Face hub cache: models "already downloaded" for the tests that resolve hub ids."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def install_in_hf_cache(cache: Path, hub_id: str, files: Path) -> Path:
    """``files`` as ``hub_id``'s snapshot in a hub cache (refs/main -> snapshots/<commit>), as `hf download`
    leaves it."""
    repo = cache / f"models--{hub_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    shutil.copytree(files, repo / "snapshots" / COMMIT)
    return repo / "snapshots" / COMMIT


@pytest.fixture
def hf_cache(tmp_path, monkeypatch) -> Path:
    """An empty hub cache that ``snapshot_download(local_files_only=True)`` reads."""
    import huggingface_hub.constants

    cache = tmp_path / "hf_cache"
    cache.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache
