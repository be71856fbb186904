"""Claim files as other runs (or hostile hands) leave them in a warehouse's ``claims/`` directory."""

from __future__ import annotations

import json
import time
from pathlib import Path

from m2ugen_data.claims import bucket_of
from m2ugen_data.warehouse import Warehouse

KEY = "clip0000001_0"
TEN_YEARS = 10 * 365 * 86400.0


def plant(wh: Warehouse, stage: str, key: str = KEY, body: object = None, **fields: object) -> Path:
    """A claim file another run left: well formed (host node-b's live claim on ``key``, slot 0 of its bucket)
    with ``fields`` changed, unless ``body`` replaces the whole content."""
    directory = wh.root / "claims" / stage
    directory.mkdir(parents=True, exist_ok=True)
    now = time.time()
    rec = {"host": "node-b", "pid": 4242, "pid_start": None, "token": "f" * 32, "stage": stage, "state": "active",
           "updated_at": now - 60, "expires_at": now + 540, "keys": [key], **fields}
    path = directory / f"{bucket_of(key)}.0.json"
    path.write_text(json.dumps(rec if body is None else body))
    return path
