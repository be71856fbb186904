"""Hand-made manifest rows for tests: complete a row with null for the columns a test does not care about."""

from __future__ import annotations

from m2ugen_data.schemas import get_manifest


def with_nulls(manifest: str, row: dict) -> dict:
    """``row`` completed with null for every other column of the manifest (new nullable columns included)."""
    return dict.fromkeys(get_manifest(manifest).schema.names) | row
