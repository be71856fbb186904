"""Work claims: any number of runs, on any number of machines sharing the warehouse, divide the work.

Why: every stage skips what the warehouse already holds, but two runs started together both see the same
work to do and would both do all of it. Before a run works on a clip it claims it; a run that finds a clip
claimed by a live run leaves it to that run.

How, cheaply at AudioSet scale: items (clip ids, ...) are hashed into 4096 buckets and claimed a bucket at a
time, lazily, as the run's workers need more work, so concurrent runs interleave bucket by bucket. A claim is
one small JSON file ``<warehouse>/claims/<stage>/<bucket>.<slot>.json`` made visible with ``link()`` (atomic
and exclusive on local filesystems and NFSv3+: it fails if the name exists), holding the owner (host, pid,
token), a lease expiry renewed by a heartbeat thread, its state (active, done, released) and the item keys it
covers. A bucket normally has one slot; runs whose work in a bucket differs (other pools, other batches of the
same flow) add slots, each subtracting the keys of the slots before it, so nobody skips work that no one
holds. The directory never grows past buckets x slots files: slots are reused, not deleted.

A claim is *relevant* to a run when it is active and its lease has not expired (its owner is at it), or when
it was finished after this run read the warehouse (``planned_at``: the run's plan predates those results).
Anything else (expired, released, finished before we planned, or on this host by a dead process) is taken
over, and so is a claim no run could have written honestly (``claim_records.py``: stamped in the future, a
lease far beyond its term, the wrong shape, not a regular file), with a warning. The duplicates that remain
possible (a lease that expired while its owner still worked, three runs racing on one slot) are harmless:
every write is idempotent and the ``latest`` views keep one row per key.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from m2ugen_data.claim_records import (
    DEFAULT_LEASE_S,
    ClaimRecord,
    MalformedClaim,
    claim_state,
    describe,
    read_claim,
    unbelievable,
)
from m2ugen_data.errors import WarehouseError

T = TypeVar("T")
log = logging.getLogger(__name__)

CLAIMS_DIR = "claims"
BUCKET_DIGITS = 3  # 16**3 = 4096 buckets: ~500 clips each at AudioSet scale, one per clip on a small warehouse
MAX_SLOTS = 64
_STAGE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,80}$")
HOST = socket.gethostname()


def bucket_of(key: str, digits: int = BUCKET_DIGITS) -> str:
    return hashlib.sha1(key.encode()).hexdigest()[:digits]


def _proc_start(pid: int) -> str | None:
    """The process's start time in clock ticks (Linux), so a recycled pid is not taken for the old owner."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


_SELF = {"host": HOST, "pid": os.getpid(), "pid_start": _proc_start(os.getpid())}


def owner_dead(rec: ClaimRecord) -> bool:
    """True only when we can tell: the owner ran on this host and that process is gone."""
    if rec.host != HOST:
        return False
    pid = rec.pid
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):  # OverflowError: a pid no process can have
        pass
    start = rec.pid_start
    return start is not None and _proc_start(pid) not in (None, start)


def _token(path: Path) -> str | None:
    """The token of the claim at ``path``; None when there is none or it is malformed."""
    try:
        rec = read_claim(path)
    except MalformedClaim:
        return None
    return rec.token if rec is not None else None


@dataclass(frozen=True)
class _Seen:
    """What a run found at a claim's path, judged: ``record`` None when malformed."""

    record: ClaimRecord | None
    free: bool
    warning: str = ""  # to log if the run takes it over


def _look(path: Path, planned_at: float) -> _Seen | None:
    """Judge the claim at ``path`` for a run that planned at ``planned_at``; None when there is none."""
    try:
        rec = read_claim(path)
    except MalformedClaim as e:
        return _Seen(None, True, f"{path}: malformed claim ({e}); replaced by this run's claim")
    if rec is None:
        return None
    now = time.time()
    state, _ = claim_state(rec, now, owner_dead(rec))
    free = (rec.done_at or 0.0) < planned_at if state == "done" else state != "live"  # done: our plan saw it?
    odd = unbelievable(rec, now)
    return _Seen(rec, free, f"{path}: stale claim of {describe(rec, now)}: {odd}; taken over" if odd else "")


def _write_temp(path: Path, rec: dict[str, Any]) -> Path:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    tmp.write_bytes(json.dumps(rec, separators=(",", ":")).encode())
    return tmp


def _create(path: Path, rec: dict[str, Any]) -> bool:
    """Make ``path`` exist with ``rec`` iff it did not: link() of a complete temp file (NFS-safe O_EXCL)."""
    tmp = _write_temp(path, rec)
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    except OSError:  # NFS can report a link that happened as failed: the link count tells
        return tmp.stat().st_nlink == 2
    finally:
        tmp.unlink(missing_ok=True)


def _replace_own(path: Path, token: str, rec: dict[str, Any]) -> bool:
    """Rewrite our own claim (renew, finish, release); False if it is no longer ours."""
    if _token(path) != token:
        return False
    tmp = _write_temp(path, rec)
    try:
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return True


def discard_claim(path: Path, seen_token: str | None) -> bool:
    """Remove the claim at ``path`` unless someone changed it since it was judged (its token then was
    ``seen_token``; None for a malformed one): move it aside (only one mover wins), check it is the one
    judged, delete it. A claim moved by mistake is put back. True when the path is free now."""
    grave = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.old")
    try:
        os.rename(path, grave)
    except FileNotFoundError:
        return True
    try:
        if _token(grave) != seen_token:
            with contextlib.suppress(OSError):
                os.link(grave, path)  # put the live claim back (fails only if another run already re-claimed)
            return False
        return True
    finally:
        with contextlib.suppress(IsADirectoryError):  # a directory in place of a claim: left, hidden
            grave.unlink(missing_ok=True)


def _take_over(path: Path, seen_token: str | None, rec: dict[str, Any]) -> bool:
    """Replace a claim we judged free, unless someone changed it meanwhile."""
    return discard_claim(path, seen_token) and _create(path, rec)


def _take_seen(path: Path, seen: _Seen, rec: dict[str, Any]) -> bool:
    """Take over a claim judged free, saying so when it was one no honest run could have written."""
    if not _take_over(path, seen.record.token if seen.record else None, rec):
        return False
    if seen.warning:
        log.warning(seen.warning)
    return True


@dataclass
class _Held:
    path: Path
    keys: set[str]
    outstanding: set[str]
    claimed_at: float


@dataclass
class WorkClaims:
    """Claims of one run on one stage's work. Create it *before* reading what the warehouse holds (its
    ``planned_at`` must predate the plan), take items through ``take``, call ``finish`` once their results
    are durably written, and close it (a ``with`` block) to release what was not finished."""

    root: Path
    stage: str
    lease_s: float = DEFAULT_LEASE_S
    planned_at: float = field(default_factory=time.time)
    skipped: int = 0  # items left to other runs (held, or done by them since we planned)
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    holders: dict[str, ClaimRecord] = field(default_factory=dict)  # the runs (by token) we left items to
    _held: dict[str, _Held] = field(default_factory=dict)  # by path name
    _by_key: dict[str, _Held] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _beat: threading.Thread | None = None

    def __post_init__(self) -> None:
        if not _STAGE.match(self.stage):
            raise ValueError(f"bad claim stage name {self.stage!r}")
        self.directory = Path(self.root) / CLAIMS_DIR / self.stage
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise WarehouseError(f"cannot claim work in {self.directory}: {e.strerror or e} (read-only warehouse?)") from e
        if not os.access(self.directory, os.W_OK):
            raise WarehouseError(f"cannot claim work in {self.directory}: the warehouse is read-only")

    # -- taking work -------------------------------------------------------------------------------------
    def take(self, items: Iterable[T], key: Callable[[T], str]) -> Iterator[T]:
        """Yield the items this run claimed, bucket by bucket, claiming the next bucket only when the
        consumer asks for more (so runs started together interleave). Buckets come in a fixed order and items
        in their given order within one, so a run alone forms the same batches every time (batch ids that
        hash their contents then replace, not duplicate)."""
        by_bucket: dict[str, list[T]] = {}
        for item in items:
            by_bucket.setdefault(bucket_of(key(item)), []).append(item)
        for b in sorted(by_bucket):
            group = by_bucket[b]
            mine = self._claim(b, [key(i) for i in group])
            self.skipped += len(group) - sum(1 for i in group if key(i) in mine)
            for item in group:
                if key(item) in mine:
                    yield item

    def _claim(self, bucket: str, keys: list[str]) -> set[str]:
        want = set(keys)
        slot = 0
        while want and slot < MAX_SLOTS:
            path = self.directory / f"{bucket}.{slot}.json"
            if path.name in self._held:  # our own earlier claim on this slot (take called twice)
                slot += 1
                continue
            rec = self._record(sorted(want))
            if _create(path, rec):
                return self._hold(path, want, rec)
            seen = _look(path, self.planned_at)
            if seen is None:
                continue  # vanished: try the same slot again
            if seen.free:
                if _take_seen(path, seen, rec):
                    return self._hold(path, want, rec)
                continue  # lost the race for it: look again
            assert seen.record is not None  # a malformed claim is always free
            if want & set(seen.record.keys):
                self.holders[seen.record.token] = seen.record
            want -= set(seen.record.keys)
            slot += 1
        if want:  # every slot busy with other keys: work unclaimed rather than skip it (duplicates are safe)
            return want
        return set()

    def _record(
        self, keys: list[str], state: str = "active", claimed_at: float | None = None, **extra: Any
    ) -> dict[str, Any]:
        now = time.time()
        return {
            **_SELF, "token": self.token, "stage": self.stage, "state": state, "claimed_at": claimed_at or now,
            "updated_at": now, "expires_at": now + self.lease_s, "lease_s": self.lease_s, "keys": keys, **extra,
        }

    def holders_note(self) -> str:
        """Who holds the items this run left to others, for the skip line of a summary ("" if nobody)."""
        now = time.time()
        shown = [describe(r, now) for r in list(self.holders.values())[:3]]
        more = len(self.holders) - len(shown)
        return "; ".join(shown) + (f"; and {more} other run(s)" if more > 0 else "")

    def _hold(self, path: Path, keys: set[str], rec: dict[str, Any]) -> set[str]:
        held = _Held(path, set(keys), set(keys), rec["claimed_at"])
        with self._lock:
            self._held[path.name] = held
            for k in keys:
                self._by_key[k] = held
        self._start_heartbeat()
        return keys

    # -- finishing ---------------------------------------------------------------------------------------
    def finish(self, keys: Iterable[str] | None = None) -> None:
        """Results for these keys (None: everything taken so far) are written: a claim with nothing left
        outstanding becomes *done*, which tells runs that planned before now to leave its keys alone."""
        with self._lock:
            if keys is None:
                keys = list(self._by_key)
            finished = []
            for k in keys:
                held = self._by_key.pop(k, None)
                if held is None:
                    continue
                held.outstanding.discard(k)
                if not held.outstanding:
                    finished.append(held)
            for held in finished:
                self._held.pop(held.path.name, None)
        for held in finished:
            done = self._record(sorted(held.keys), "done", held.claimed_at, done_at=time.time())
            _replace_own(held.path, self.token, done)

    def close(self) -> None:
        """Release every claim not finished (an interrupted run): other runs may take it at once."""
        self._stop.set()
        with self._lock:
            held, self._held, self._by_key = list(self._held.values()), {}, {}
        for h in held:
            with contextlib.suppress(OSError):
                _replace_own(h.path, self.token, self._record(sorted(h.keys), "released", h.claimed_at))

    def __enter__(self) -> WorkClaims:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- leases ------------------------------------------------------------------------------------------
    def _start_heartbeat(self) -> None:
        if self._beat is None:
            self._beat = threading.Thread(target=self._renew_loop, name=f"claims-{self.stage}", daemon=True)
            self._beat.start()

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.lease_s / 3):
            with self._lock:
                held = list(self._held.values())
            for h in held:
                with contextlib.suppress(OSError):
                    _replace_own(h.path, self.token, self._record(sorted(h.keys), claimed_at=h.claimed_at))


def stage_name(*parts: str) -> str:
    """A claims directory name from free-form parts (a backend's name, ...)."""
    return re.sub(r"[^a-z0-9._-]+", "-", "-".join(parts).lower()).strip("-.")[:80] or "stage"


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    it = iter(items)
    while batch := list(itertools.islice(it, max(1, size))):
        yield batch


def claimed_batches(claims: WorkClaims, items: Iterable[T], key: Callable[[T], str], size: int) -> Iterator[list[T]]:
    """Batches of the items this run claims. A batch counts as finished when the consumer asks for the next
    one (its results are written by then); leaving the loop early or by an exception releases the rest."""
    with claims:
        for batch in batched(claims.take(items, key), size):
            yield batch
            claims.finish(key(i) for i in batch)


@dataclass
class Lease:
    """An exclusive, expiring lock on one name under ``claims/`` (one compaction per manifest at a time).

    Same files and rules as work claims: taken over when expired, released, its owner died on this host, or
    it cannot be believed (``claim_records.py``); renewed by a heartbeat while held."""

    root: Path
    name: str
    lease_s: float = DEFAULT_LEASE_S
    _claims: WorkClaims | None = None

    def acquire(self) -> ClaimRecord | None:
        """Take the lease; returns None on success, else the current holder's record."""
        claims = WorkClaims(Path(self.root), "leases", self.lease_s, planned_at=float("inf"))
        path = claims.directory / f"{self.name}.json"
        while True:
            rec = claims._record([self.name])
            if _create(path, rec):
                break
            seen = _look(path, float("inf"))
            if seen is None:
                continue
            if not seen.free:
                assert seen.record is not None
                return seen.record
            if _take_seen(path, seen, rec):
                break
        claims._hold(path, {self.name}, rec)
        self._claims = claims
        return None

    def release(self) -> None:
        if self._claims is not None:
            self._claims.close()
            self._claims = None
