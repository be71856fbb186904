"""Fixtures the trainer tests share."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def weights(tiny_model_dir: Path) -> str:
    """conftest's session-wide tiny preset, as the trainer's ``--weights-dir`` (training never writes into it)."""
    return str(tiny_model_dir)
