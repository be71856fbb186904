"""Identifiers and the paths derived from them.

Everything that reaches a filesystem path or a subprocess argument is validated here first, so a hostile
CSV row (``../../etc/x``, ``--exec=...``) can never name a file outside the warehouse or an option.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from m2ugen_data.errors import InvalidIdError

if TYPE_CHECKING:
    import pyarrow as pa

YTID_RE = re.compile(r"^[A-Za-z0-9_-]{11}$")
CLIP_ID_RE = re.compile(r"^([A-Za-z0-9_-]{11})_(\d{1,9})$")
BATCH_ID_RE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,199}$")
MEDIA_KINDS = ("audio", "video", "image")


def validate_ytid(ytid: object) -> str:
    """Return the YouTube ID unchanged, or raise with a message that quotes the bad value."""
    if not isinstance(ytid, str) or not YTID_RE.fullmatch(ytid):
        raise InvalidIdError(f"invalid YouTube ID {ytid!r}: expected 11 characters from [A-Za-z0-9_-]")
    return ytid


def make_clip_id(ytid: str, start_s: float) -> str:
    """``<YTID>_<start_ms>``: AudioSet segments are unique by video and start time."""
    validate_ytid(ytid)
    if not (start_s >= 0) or start_s > 1e6:
        raise InvalidIdError(f"invalid segment start {start_s!r} for {ytid}")
    return f"{ytid}_{int(round(start_s * 1000))}"


def validate_clip_id(clip_id: object) -> str:
    if not isinstance(clip_id, str) or not CLIP_ID_RE.fullmatch(clip_id):
        raise InvalidIdError(f"invalid clip id {clip_id!r}: expected <11-char YouTube ID>_<start_ms>")
    return clip_id


def ytid_of(clip_id: str) -> str:
    """The YouTube ID a clip id starts with (the id is validated first)."""
    return validate_clip_id(clip_id)[:11]


def ytids_of(clip_ids: pa.Array) -> pa.Array:
    """``ytid_of`` over an Arrow string array, vectorised and unchecked: for ids read back from manifests,
    which were validated when they were written."""
    import pyarrow.compute as pc

    return pc.utf8_slice_codeunits(clip_ids, 0, 11)


def validate_batch_id(batch_id: object) -> str:
    if not isinstance(batch_id, str) or not BATCH_ID_RE.fullmatch(batch_id) or ".." in batch_id:
        raise InvalidIdError(f"invalid batch id {batch_id!r}: use letters, digits, '_', '-', '.'")
    return batch_id


def media_relpath(kind: str, clip_id: str, ext: str) -> Path:
    """``media/<kind>/<first two chars of YTID>/<clip_id>.<ext>`` relative to the warehouse root."""
    if kind not in MEDIA_KINDS:
        raise InvalidIdError(f"unknown media kind {kind!r}; expected one of {MEDIA_KINDS}")
    if not re.fullmatch(r"[a-z0-9]{1,5}", ext):
        raise InvalidIdError(f"invalid media extension {ext!r}")
    validate_clip_id(clip_id)
    return Path("media") / kind / clip_id[:2] / f"{clip_id}.{ext}"
