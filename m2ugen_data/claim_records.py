"""One claim file on disk (``claims.py``): its shape, reading it safely, and whether to believe it.

Why a module of its own: the claims directory is shared by every run on every machine, so what a run finds
there may be anything: a record from a host whose clock is years ahead, a lease of ten years, a file of the
wrong shape, a FIFO or a link. A run must neither block for ever on such a claim (a FIFO opened for reading
waits for a writer; a lease from the future never expires) nor die on it. So a claim is validated
(``ClaimRecord``), read only as a regular file that is not a link (``read_claim``), and judged
(``claim_state``): stamped in the future or far beyond its lease term, it is *stale* and taken over with a
warning; of the wrong shape, it is *malformed* and replaced, with a warning.
"""

from __future__ import annotations

import json
import math
import os
import stat
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

DEFAULT_LEASE_S = 600.0  # renewed every third of it while held; a dead owner on another host frees it after this
MAX_LEASE_S = 86_400.0  # no lease term is believed beyond this, whatever a record says of itself
CLOCK_SKEW_S = 300.0  # hosts' clocks may differ this much before a time stamp counts as from the future
MAX_CLAIM_BYTES = 4 << 20  # a bucket's keys at AudioSet scale are ~20 kB; anything this large is not a claim


class MalformedClaim(ValueError):
    """What is at a claim's path is not a claim (wrong shape, not a regular file, unreadable)."""


class ClaimRecord(BaseModel):
    """What a claim file holds; anything else is malformed. Extra fields are ignored (a newer writer)."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False, frozen=True)

    host: str
    pid: int
    pid_start: str | None = None
    token: str
    stage: str = ""
    state: Literal["active", "done", "released"]
    updated_at: float
    expires_at: float
    claimed_at: float | None = None  # absent in records written before it existed: updated_at stands in
    lease_s: float | None = None
    done_at: float | None = None
    keys: list[str] = []

    @property
    def since(self) -> float:
        return self.claimed_at if self.claimed_at is not None else self.updated_at


def read_claim(path: Path) -> ClaimRecord | None:
    """The claim at ``path``, None when there is none; ``MalformedClaim`` when what is there is not one.

    Never opens anything but a regular file and never follows a link: ``lstat`` first, then open with
    O_NOFOLLOW|O_NONBLOCK (a FIFO swapped in meanwhile cannot block the open) and check again what was opened."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise MalformedClaim(f"unreadable: {e.strerror or e}") from e
    if not stat.S_ISREG(st.st_mode):
        raise MalformedClaim(f"not a regular file but a {_kind(st.st_mode)}")
    if st.st_size > MAX_CLAIM_BYTES:
        raise MalformedClaim(f"{st.st_size} bytes, more than any claim ({MAX_CLAIM_BYTES})")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise MalformedClaim(f"unreadable: {e.strerror or e}") from e
    with os.fdopen(fd, "rb") as f:
        mode = os.fstat(f.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise MalformedClaim(f"not a regular file but a {_kind(mode)}")
        data = f.read(MAX_CLAIM_BYTES + 1)
    try:
        return ClaimRecord.model_validate(json.loads(data))
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(part) for part in err["loc"]) or "record"
        raise MalformedClaim(f"{where}: {err['msg']}") from None
    except ValueError as e:  # not JSON (UnicodeDecodeError included)
        raise MalformedClaim(f"not JSON: {str(e).splitlines()[0][:80]}") from None


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISLNK, "symbolic link"), (stat.S_ISFIFO, "FIFO"), (stat.S_ISDIR, "directory"),
                       (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device")):
        if test(mode):
            return name
    return "special file"


def unbelievable(rec: ClaimRecord, now: float) -> str:
    """Why a claim's time stamps cannot be true (stamped in the future, a lease far beyond its term), or "".

    Such a claim would block its bucket for ever (a lease that never expires, a "done" every later plan
    predates): it is stale. A host whose clock runs ahead loses its claims to others meanwhile, which costs
    duplicated work at most (every write is idempotent)."""
    horizon = now + CLOCK_SKEW_S
    if rec.since > horizon or rec.updated_at > horizon:
        return f"written {span(max(rec.since, rec.updated_at) - now)} in the future"
    if rec.state == "done" and (rec.done_at or 0.0) > horizon:
        return f"finished {span((rec.done_at or 0.0) - now)} in the future"
    term = min(rec.lease_s or DEFAULT_LEASE_S, MAX_LEASE_S)
    if rec.state == "active" and rec.expires_at > horizon + term:
        return f"lease runs {span(rec.expires_at - now)} ahead, far beyond its {span(term)} term"
    return ""


ClaimState = Literal["live", "done", "released", "stale"]


def claim_state(rec: ClaimRecord, now: float, owner_dead: bool) -> tuple[ClaimState, str]:
    """(state, why stale): *live* (its owner is at it), *done*, *released*, or *stale* (unbelievable time
    stamps, an expired lease, or ``owner_dead``: its process on this host is gone)."""
    if why := unbelievable(rec, now):
        return "stale", why
    if rec.state != "active":
        return rec.state, ""
    if rec.expires_at < now:
        return "stale", f"lease expired {span(now - rec.expires_at)} ago"
    if owner_dead:
        return "stale", "its process on this host is gone"
    return "live", ""


def describe(rec: ClaimRecord, now: float | None = None) -> str:
    """Who holds a claim and since when, for a person deciding whether that run is still alive."""
    now = time.time() if now is None else now
    who = f"pid {rec.pid} on {rec.host}"
    if rec.state == "done":
        return f"{who} (finished {relative(rec.done_at or rec.updated_at, now)})"
    ends = "ends" if rec.expires_at >= now else "ended"
    return f"{who} (claimed {relative(rec.since, now)}, lease {ends} {relative(rec.expires_at, now)})"


def relative(t: float, now: float) -> str:
    """A time stamp relative to now: "in 9 min", "2.0 h ago"."""
    return f"in {span(t - now)}" if t > now else f"{span(now - t)} ago"


def span(seconds: float) -> str:
    """A duration as a person reads it: 45 s, 12 min, 2.0 h, 3 d, 10 y."""
    s = abs(seconds)
    if not math.isfinite(s):
        return "ever"
    if s < 90:
        return f"{s:.0f} s"
    if s < 90 * 60:
        return f"{s / 60:.0f} min"
    if s < 48 * 3600:
        return f"{s / 3600:.1f} h"
    if s < 2 * 365 * 86400:
        return f"{s / 86400:.0f} d"
    return f"{s / (365 * 86400):.0f} y"
