"""Stream training batches from WebDataset shards: discovery, per-stage mixture, and a resumable position.

Exact resume is the design constraint. Each data worker runs a *logical* stream that is a pure function of
(seed, rank, logical worker id): the shard order, the shuffle buffer, the mixture draws and the batch order
all come from RNGs seeded by those, never from wall clock or process ids. A batch carries where its worker
stood when it was formed: raw samples pulled so far (before decoding) and its index inside the current
length-bucket pool. To resume, each worker pulls and throws away that many raw samples (tar reading only,
no decoding), rebuilds the pool and drops the batches already used. ``torch.utils.data.DataLoader`` hands
out batches round-robin over workers, so after ``S`` batches the next one is due from logical worker
``S % W``: the resumed loader rotates physical worker ``p`` to logical ``(p + S) % W`` to keep that order.
"""

from __future__ import annotations

import hashlib
import logging
import random
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import braceexpand
import fsspec
import pyarrow.parquet as pq
import torch
import webdataset as wds
from fsspec.implementations.local import LocalFileSystem
from webdataset.tariterators import group_by_keys, tar_file_expander

from m2ugen_model.train.collate import Tokenised, Tokenizer, collate, tokenise
from m2ugen_model.train.config import DEFAULT_MIXTURES
from m2ugen_model.train.errors import TrainError
from m2ugen_model.train.examples import SkipSample, to_example
from m2ugen_model.train.media import MediaSpec
from m2ugen_model.train.stopping import ignore_stop_signals

log = logging.getLogger("m2ugen.train.data")

EVAL_SUFFIX = "_eval"  # shards/<dataset>_eval: held-out splits, skipped when a warehouse is scanned
SHARD_NAME = re.compile(r"^(?P<dataset>[A-Za-z0-9_]+)-\d+\.tar$")
# A member must be a plain relative name: no absolute path, no '..' component, no backslash, no control chars.
SAFE_MEMBER = re.compile(r"^(?!/)(?!.*(?:^|/)\.\.(?:/|$))[^\\\x00-\x1f]+$")
MAX_WARNINGS_PER_REASON = 5


# ---------------------------------------------------------------------------------------------- discovery
def _fs_and_path(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    fs, path = fsspec.core.url_to_fs(url)
    return fs, path


def _unstrip(url: str, fs: fsspec.AbstractFileSystem, path: str) -> str:
    """fsspec globs return protocol-less paths; put the protocol back for remote filesystems."""
    proto = url.split("://", 1)[0] if "://" in url else None
    return fs.unstrip_protocol(path) if proto and proto != "file" else path


def _dataset_of(url: str) -> str:
    name = PurePosixPath(url.split("://", 1)[-1]).name
    m = SHARD_NAME.match(name)
    return m.group("dataset") if m else PurePosixPath(url.split("://", 1)[-1]).parent.name or "extra"


def _expand_one(spec: str) -> dict[str, list[str]]:
    """One ``--shards`` entry: a warehouse, a shards/ dir, a dataset dir, a .tar URL or a brace pattern."""
    if "{" in spec:
        urls = list(braceexpand.braceexpand(spec))
        out: dict[str, list[str]] = {}
        for u in urls:
            out.setdefault(_dataset_of(u), []).append(u)
        return out
    if spec.endswith(".tar"):
        return {_dataset_of(spec): [spec]}
    fs, root = _fs_and_path(spec)
    root = root.rstrip("/")
    warehouse = None
    if fs.isdir(f"{root}/shards"):
        warehouse, root = root, f"{root}/shards"
    found: dict[str, list[str]] = {}
    nested = set(fs.glob(f"{root}/*/*.tar"))
    for path in sorted(fs.glob(f"{root}/*.tar") + list(nested)):
        if PurePosixPath(path).name.startswith("."):  # a shard still being written (temp name)
            continue
        if path in nested and PurePosixPath(path).parent.name.endswith(EVAL_SUFFIX):
            continue  # a held-out split (m2ugen_data.eval_splits): only ever read when named explicitly
        found.setdefault(_dataset_of(path), []).append(_unstrip(spec, fs, path))
    if warehouse is not None and isinstance(fs, LocalFileSystem):
        found = _vouched_for(Path(warehouse), found)
    return found


def _vouched_for(warehouse: Path, found: dict[str, list[str]]) -> dict[str, list[str]]:
    """Only the shard files the warehouse's ``shards`` manifest lists, at the size it records.

    ``shards write`` renames each finished tar into place and records the set afterwards, so a run killed in
    between leaves files the manifest does not vouch for: new shards of an unfinished set, or a set that
    mixes two runs. Training on them would silently read a different dataset; they are skipped with a
    warning instead. A warehouse without a shards manifest (shards copied by hand) is read as found.
    """
    files = sorted((warehouse / "manifests" / "shards").glob("*.parquet"))
    if not files:
        return found
    newest: dict[str, tuple[int, Any]] = {}
    for f in files:
        t = pq.read_table(f, columns=["path", "bytes", "created_at"]).to_pydict()
        for rel, size, created in zip(t["path"], t["bytes"], t["created_at"], strict=True):
            if rel not in newest or created > newest[rel][1]:
                newest[rel] = (size, created)
    out: dict[str, list[str]] = {}
    for dataset, urls in found.items():
        ok, bad = [], []
        for url in urls:
            rel = Path(url).relative_to(warehouse).as_posix()
            (ok if rel in newest and Path(url).stat().st_size == newest[rel][0] else bad).append(url)
        if bad:
            log.warning("%s: %d shard file(s) not in the warehouse's shards manifest or of another size (an "
                        "interrupted `shards write`?), skipped: %s; rerun `m2ugen-data shards write --dataset %s`",
                        Path(bad[0]).parent, len(bad), ", ".join(Path(u).name for u in bad[:5]), dataset)
        if ok:
            out[dataset] = ok
    return out


def discover_shards(specs: list[str], extra: list[str] = ()) -> dict[str, list[str]]:
    """Map dataset name -> sorted shard URLs; ``extra`` entries are ``NAME=URL`` or a URL (dataset from its name)."""
    found: dict[str, list[str]] = {}
    for spec in specs:
        for name, urls in _expand_one(spec).items():
            found.setdefault(name, []).extend(urls)
    for entry in extra:
        name, _, url = entry.partition("=") if "=" in entry.split("://", 1)[0] else ("", "", entry)
        for ds, urls in _expand_one(url).items():
            found.setdefault(name or ds, []).extend(urls)
    for name in [k for k in found if k.endswith(EVAL_SUFFIX)]:  # named explicitly (--eval-shards): its dataset's
        found.setdefault(name.removesuffix(EVAL_SUFFIX), []).extend(found.pop(name))  # mixture weight applies
    found = {k: sorted(set(v)) for k, v in found.items() if v}
    if not found:
        where = ", ".join(specs) or "(none given)"
        raise TrainError(f"no shards found at {where}: expected <warehouse>/shards/<dataset>/<dataset>-NNNNNN.tar")
    return found


@dataclass(frozen=True)
class Source:
    name: str
    weight: float
    urls: tuple[str, ...]


def stage_mixture(stage: int, shards: dict[str, list[str]], weights: dict[str, float] | None = None,
                  extra_names: tuple[str, ...] = ()) -> list[Source]:
    """The stage's datasets that exist, with their weights; user extras join at weight 1 unless weighted."""
    wanted = dict(weights) if weights else dict(DEFAULT_MIXTURES[stage])
    for name in extra_names:
        wanted.setdefault(name, 1.0)
    sources = [Source(n, w, tuple(shards[n])) for n, w in sorted(wanted.items()) if w > 0 and n in shards]
    missing = sorted(n for n in wanted if n not in shards)
    if missing:
        log.warning("stage %d: no shards for %s; mixing the rest", stage, ", ".join(missing))
    if not sources:
        raise TrainError(f"stage {stage} needs shards of {', '.join(sorted(wanted))}; found only "
                         f"{', '.join(sorted(shards)) or 'none'}")
    return sources


# ---------------------------------------------------------------------------------------------- the stream
@dataclass
class Position:
    """Where each logical worker of one rank stands: ``(raw samples before the pool, batches used from it)``."""

    batches: int = 0
    workers: dict[int, tuple[int, int]] = field(default_factory=dict)

    def advance(self, meta: dict[str, int]) -> None:
        self.batches += 1
        self.workers[meta["worker"]] = (meta["pool_start"], meta["pool_index"] + 1)

    def state_dict(self) -> dict[str, Any]:
        return {"batches": self.batches, "workers": {str(k): list(v) for k, v in self.workers.items()}}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Position:
        return cls(int(state["batches"]), {int(k): (int(v[0]), int(v[1])) for k, v in state["workers"].items()})


@dataclass(frozen=True)
class StreamSpec:
    stage: int
    batch_size: int
    max_len: int
    truncate: bool
    media: MediaSpec
    seed: int = 0
    rank: int = 0
    world: int = 1
    num_workers: int = 0
    shuffle_buffer: int = 256
    resample: bool = True
    pool_batches: int = 8  # length bucketing: sort this many batches' worth of examples by length


class Skips:
    """Counted, rate-limited warnings: every skipped input is counted; only the first few of a kind are logged."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def __call__(self, reason: str, detail: str = "") -> None:
        self.counts[reason] += 1
        if self.counts[reason] <= MAX_WARNINGS_PER_REASON:
            log.warning("skipped input (%s)%s", reason, f": {detail}" if detail else "")

    def handler(self, exn: Exception) -> bool:
        """A webdataset handler: count a corrupt shard or member and carry on."""
        self("corrupt_shard", str(exn).splitlines()[0][:200])
        return True


def _seed(*parts: int | str) -> int:
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "little")


def _open_shards(urls: Iterator[str], skips: Skips) -> Iterator[dict[str, Any]]:
    """Open each shard through fsspec (local paths, s3://, gs://, http://) for webdataset's tar expander."""
    for url in urls:
        try:
            stream = fsspec.open(url, "rb").open()
        except OSError as exc:
            skips("unreadable_shard", f"{url}: {exc}")
            continue
        try:
            yield {"url": url, "stream": stream}
        finally:
            stream.close()


def _safe_members(samples: Iterator[dict[str, Any]], skips: Skips) -> Iterator[dict[str, Any]]:
    for s in samples:
        if "fname" not in s or SAFE_MEMBER.match(s["fname"]):  # no fname: webdataset's end-of-shard marker
            yield s
        else:
            skips("unsafe_member", repr(s["fname"]))


class ShardStream(torch.utils.data.IterableDataset):
    """Collated batches from a weighted mixture of sources; see the module docstring for the position rules."""

    def __init__(self, sources: list[Source], spec: StreamSpec, tokenizer: Tokenizer,
                 aud_ids: list[int] | None = None, start: Position | None = None, max_empty_draws: int = 0):
        super().__init__()
        self.sources, self.spec, self.tokenizer, self.aud_ids = sources, spec, tokenizer, aud_ids
        self.start = start or Position()
        self.max_empty_draws = max_empty_draws
        if not spec.resample:
            need = spec.world * max(1, spec.num_workers)
            few = [s.name for s in sources if len(s.urls) < need]
            if few:
                raise TrainError(f"{', '.join(few)}: fewer shards than ranks x workers ({need}) without resampling; "
                                 "pass --resample or write more shards")

    @property
    def logical_workers(self) -> int:
        return max(1, self.spec.num_workers)

    # -- raw samples -------------------------------------------------------------------------------------
    def _shard_urls(self, source: Source, logical: int) -> Iterator[str]:
        """Epoch-less: draw with replacement; else split by node then worker (as ``wds.split_by_node``/
        ``split_by_worker`` do) after a per-epoch seeded shuffle of the list, and repeat."""
        sp = self.spec
        rng = random.Random(_seed(sp.seed, source.name, sp.rank, logical, "shards"))
        epoch = 0
        while True:
            if sp.resample:
                yield rng.choice(source.urls)
                continue
            urls = list(source.urls)
            random.Random(_seed(sp.seed, source.name, epoch)).shuffle(urls)
            yield from urls[sp.rank:: sp.world][logical:: self.logical_workers]
            epoch += 1

    def _source_samples(self, source: Source, logical: int, skips: Skips) -> Iterator[dict[str, Any]]:
        """Grouped samples of one source, shuffled; raises instead of spinning when no shard yields anything."""
        limit = self.max_empty_draws or 2 * len(source.urls) + 4
        urls = iter(self._shard_urls(source, logical))

        def guarded() -> Iterator[dict[str, Any]]:
            empty = 0
            while True:
                n = 0
                members = _safe_members(tar_file_expander(_open_shards(iter([next(urls)]), skips),
                                                          handler=skips.handler), skips)
                for sample in group_by_keys(members, handler=skips.handler):
                    n += 1
                    yield sample
                empty = 0 if n else empty + 1
                if empty >= limit:
                    raise TrainError(f"{source.name}: no readable samples in {empty} consecutive shard reads")

        rng = random.Random(_seed(self.spec.seed, source.name, self.spec.rank, logical, "shuffle"))
        return wds.filters.shuffle(self.spec.shuffle_buffer, min(self.spec.shuffle_buffer, 64), rng=rng)(guarded())

    def _raw(self, logical: int, skips: Skips) -> Iterator[tuple[str, dict[str, Any]]]:
        streams = [self._source_samples(s, logical, skips) for s in self.sources]
        weights = [s.weight for s in self.sources]
        rng = random.Random(_seed(self.spec.seed, self.spec.rank, logical, "mix"))
        while True:
            i = rng.choices(range(len(streams)), weights)[0]
            yield self.sources[i].name, next(streams[i])

    # -- batches ---------------------------------------------------------------------------------------
    def _examples(self, raw: Iterator[tuple[str, dict[str, Any]]], skips: Skips, counter: list[int]) -> Iterator[Tokenised]:
        sp = self.spec
        bad_run = 0
        for name, sample in raw:
            counter[0] += 1
            try:
                ex = to_example(sample, name, sp.stage, sp.media)
                yield tokenise(ex, self.tokenizer, sp.max_len, sp.truncate, self.aud_ids)
                bad_run = 0
            except SkipSample as exc:
                skips(str(exc), sample.get("__key__", "?"))
                bad_run += 1
                if bad_run >= 1000 + 10 * sp.batch_size * sp.pool_batches:
                    raise TrainError(f"{bad_run} samples in a row unusable for stage {sp.stage}: "
                                     f"{dict(skips.counts)}") from None

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = torch.utils.data.get_worker_info()
        physical = info.id if info is not None else 0
        logical = (physical + self.start.batches) % self.logical_workers
        pool_start, done = self.start.workers.get(logical, (0, 0))
        skips = Skips()
        raw = self._raw(logical, skips)
        for _ in range(pool_start):  # fast-forward: tar reading only, nothing decoded
            next(raw)
        counter = [pool_start]
        examples = self._examples(raw, skips, counter)
        sp = self.spec
        while True:
            start = counter[0]
            pool = [next(examples) for _ in range(sp.batch_size * sp.pool_batches)]
            pool.sort(key=lambda t: len(t.input_ids))
            batches = [pool[i: i + sp.batch_size] for i in range(0, len(pool), sp.batch_size)]
            random.Random(_seed(sp.seed, sp.rank, logical, start, "batches")).shuffle(batches)
            for index, items in enumerate(batches):
                if index < done:
                    continue
                batch = collate(items, self.tokenizer.pad_token_id or 0)
                batch["meta"] = {"worker": logical, "pool_start": start, "pool_index": index}
                batch["skips"] = dict(skips.counts)
                yield batch
            done = 0


def make_loader(stream: ShardStream) -> torch.utils.data.DataLoader:
    """Batches are formed in the workers (``batch_size=None``); ``in_order`` keeps the round-robin exact."""
    n = stream.spec.num_workers
    return torch.utils.data.DataLoader(stream, batch_size=None, num_workers=n, persistent_workers=False,
                                       prefetch_factor=2 if n else None, in_order=True,
                                       worker_init_fn=ignore_stop_signals if n else None)


class SkipTally:
    """Sum of the latest per-worker skip counters (each worker reports its own running totals)."""

    def __init__(self) -> None:
        self.per_worker: dict[int, dict[str, int]] = {}

    def update(self, batch: dict[str, Any]) -> None:
        self.per_worker[batch["meta"]["worker"]] = batch["skips"]

    def total(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for c in self.per_worker.values():
            out.update(c)
        return dict(out)


def describe(sources: list[Source]) -> list[tuple[str, float, int]]:
    total = sum(s.weight for s in sources)
    return [(s.name, s.weight / total, len(s.urls)) for s in sources]

