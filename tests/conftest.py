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
