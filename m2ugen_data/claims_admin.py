"""Listing and releasing claims by hand (``m2ugen-data claims``), for a person who knows a node is gone.

Why: a run on a machine that died holds its claims until their lease expires (ten minutes), and a claim
that cannot be believed is only taken over when a run comes for its bucket. A person who knows better can
see every claim with its holder and free them at once. Releasing removes the claim file (the next run
creates a new one); a claim changed since it was listed is left alone (``claims.discard_claim``). A live
claim of a process still running on this host is refused unless forced: that run is at work.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from m2ugen_data.claim_records import (
    ClaimRecord,
    MalformedClaim,
    claim_state,
    read_claim,
)
from m2ugen_data.claims import CLAIMS_DIR, HOST, discard_claim, owner_dead
from m2ugen_data.errors import M2UGenError


@dataclass(frozen=True)
class ClaimEntry:
    path: Path
    stage: str
    bucket: str  # the file name without .json: "<bucket>.<slot>" for work, the lease's name for a lease
    record: ClaimRecord | None  # None: malformed
    state: str  # live, done, released, stale or malformed
    why: str  # what makes it stale or malformed

    def matches(self, target: str) -> bool:
        """``target``: a bucket (every slot), a bucket.slot or a lease name, optionally as ``stage/...``."""
        stage, _, name = target.rpartition("/")
        return (not stage or stage == self.stage) and name in (self.bucket, self.bucket.split(".")[0])

    @property
    def running_here(self) -> bool:
        """A live claim of a process running on this host: its run is at work."""
        return self.state == "live" and self.record is not None and self.record.host == HOST


def list_claims(root: Path, stage: str | None = None) -> list[ClaimEntry]:
    """Every claim file under ``root/claims`` (of ``stage``), judged now; temporaries are not claims."""
    base = Path(root) / CLAIMS_DIR
    now = time.time()
    out = []
    for stage_dir in _entries(base):
        if not stage_dir.is_dir(follow_symlinks=False) or (stage and stage_dir.name != stage):
            continue
        for f in _entries(Path(stage_dir.path)):
            if f.name.startswith(".") or not f.name.endswith(".json"):
                continue
            path = Path(f.path)
            try:
                rec = read_claim(path)
            except MalformedClaim as e:
                out.append(ClaimEntry(path, stage_dir.name, f.name[:-5], None, "malformed", str(e)))
                continue
            if rec is not None:
                state, why = claim_state(rec, now, owner_dead(rec))
                out.append(ClaimEntry(path, stage_dir.name, f.name[:-5], rec, state, why))
    return out


def _entries(directory: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(directory) as it:
            return sorted(it, key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return []


@dataclass
class Released:
    released: list[ClaimEntry]
    refused: list[ClaimEntry]  # live claims of processes running here (without force)
    changed: list[ClaimEntry]  # changed since listed (renewed, taken over): left alone


def release_claims(
    root: Path, targets: Sequence[str] = (), *, host: str | None = None, stale: bool = False, stage: str | None = None,
    force: bool = False,
) -> Released:
    """Release the claims named (``targets``), those of ``host``, and/or the stale and malformed ones."""
    if not (targets or host or stale):
        raise M2UGenError("name what to release: a bucket (see `m2ugen-data claims list`), --host HOST or --stale")
    entries = list_claims(root, stage)
    unmatched = [t for t in targets if not any(e.matches(t) for e in entries)]
    if unmatched:
        raise M2UGenError(f"no claim matches {unmatched[0]!r} in {Path(root) / CLAIMS_DIR} (see `m2ugen-data claims list`)")
    chosen = [
        e for e in entries
        if any(e.matches(t) for t in targets)
        or (host is not None and e.record is not None and e.record.host == host)
        or (stale and e.state in ("stale", "malformed"))
    ]
    result = Released([], [], [])
    for e in chosen:
        if e.running_here and not force:
            result.refused.append(e)
        elif discard_claim(e.path, e.record.token if e.record else None):
            result.released.append(e)
        else:
            result.changed.append(e)
    return result
