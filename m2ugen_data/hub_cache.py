"""Models already on this disk: a hub id's snapshot in the local Hugging Face cache, never a download.

Every model stage reads weights from disk only (a directory, or a hub id's cached snapshot), so a machine
without them gets one line naming the model and how to fetch it instead of a network traceback.
"""

from __future__ import annotations

from pathlib import Path


def cached_snapshot(hub_id: str) -> Path | None:
    """The snapshot directory of ``hub_id`` in the local HF cache, or None when it is not there."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(hub_id, local_files_only=True))
    except Exception:  # LocalEntryNotFoundError, a bad id, an unreadable cache: all mean "not on this disk"
        return None
