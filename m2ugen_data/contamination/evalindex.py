"""Evaluation audio as an index that training audio is looked up in, by sound.

An evaluation set arrives as files: a directory of audio (MusicCaps clips, MusicQA's renamed ``000000.wav``),
or shards (our own ``<dataset>_eval`` splits). Each item is fingerprinted (``analysis.fingerprint``); the
candidate tokens of all items are sorted once, and a training clip's tokens are looked up in them
(``lookup``): items sharing enough tokens are checked with the duplicate rule
(``dedup.match.compare``), which also finds a 10 s evaluation clip inside a long training file. Items also
carry the IDs their names give (a clip id, a YouTube ID) for matching by ID.

An item that cannot be read or is too short to fingerprint is kept in ``unreadable`` with its reason: the
report lists it and the run goes on (it can still match by ID).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from m2ugen_data.analysis import fingerprint as fp_mod
from m2ugen_data.dedup.candidates import token_arrays
from m2ugen_data.dedup.match import DupRules, Verdict, compare
from m2ugen_data.errors import M2UGenError
from m2ugen_data.ids import CLIP_ID_RE

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac")
# <ytid>, <ytid>_<start ms> (our clip ids), <ytid>-<start>-<end> / <ytid>_<start>_<end> (MusicCaps downloads)
_NAME_ID = re.compile(r"^(?P<ytid>[A-Za-z0-9_-]{11})(?:[_-](?P<a>\d+(?:\.\d+)?)(?:[_-](?P<b>\d+(?:\.\d+)?))?)?$")


@dataclass
class EvalItem:
    benchmark: str
    item: str  # the file (relative to the path given) or shard key
    fingerprint: fp_mod.Fingerprint | None
    clip_ids: tuple[str, ...] = ()  # warehouse clip ids its name gives
    ytids: tuple[str, ...] = ()  # YouTube IDs its name gives


@dataclass
class EvalIndex:
    items: list[EvalItem] = field(default_factory=list)
    unreadable: list[tuple[str, str, str]] = field(default_factory=list)  # (benchmark, item, reason)
    _tokens: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    _item: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def add(self, item: EvalItem) -> None:
        fp = item.fingerprint
        if fp is None or not fp.ok:
            reason = "unreadable" if fp is None else f"{fp.status}: {fp.reason}"
            self.unreadable.append((item.benchmark, item.item, reason))  # reported; may still match by ID
        self.items.append(item)

    def freeze(self) -> EvalIndex:
        """Sort every item's candidate tokens once (after the last ``add``)."""
        tok, owner = token_arrays([it.fingerprint or fp_mod.failed("unreadable") for it in self.items])
        order = np.argsort(tok, kind="stable")
        self._tokens, self._item = tok[order], owner[order]
        return self

    def lookup(self, fp: fp_mod.Fingerprint, rules: DupRules = DupRules(), *, min_shared: int = 2
               ) -> list[tuple[EvalItem, Verdict]]:
        """The evaluation items ``fp`` (a training clip) holds, with the verdict that says so."""
        if not fp.ok or not self._tokens.size:
            return []
        tokens = fp.tokens()
        lo, hi = np.searchsorted(self._tokens, tokens, "left"), np.searchsorted(self._tokens, tokens, "right")
        n = hi - lo
        if not n.sum():
            return []
        pos = np.repeat(lo, n) + (np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n))
        owners, counts = np.unique(self._item[pos], return_counts=True)
        found = owners[counts >= min_shared].tolist()
        out = []
        for i in sorted(found):
            item = self.items[i]
            assert item.fingerprint is not None
            verdict = compare(fp, item.fingerprint, rules)
            if verdict.duplicate:
                out.append((item, verdict))
        return out


def ids_from_name(stem: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(clip ids, YouTube IDs) a file or key name gives; none for names such as MusicQA's ``000123``."""
    if CLIP_ID_RE.fullmatch(stem):
        return (stem,), (stem[:11],)
    m = _NAME_ID.fullmatch(stem)
    if m and not stem.isdigit():
        return (), (m.group("ytid"),)
    return (), ()


def _audio_files(root: Path) -> Iterator[Path]:
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES:
            yield p


def _fingerprint_bytes(data: bytes, suffix: str) -> fp_mod.Fingerprint:
    with tempfile.NamedTemporaryFile(suffix=suffix) as tmp:
        tmp.write(data)
        tmp.flush()
        return fp_mod.fingerprint_file(tmp.name)


def items_from_path(benchmark: str, path: Path) -> Iterator[EvalItem]:
    """The evaluation items of one path: an audio file, a directory of audio (recursively), or a directory
    of shards (``*.tar``: keys give clip ids, audio members give the sound)."""
    from m2ugen_data.shards.read import iter_shard_samples

    if path.is_file() and path.suffix.lower() in AUDIO_SUFFIXES:
        clips, ytids = ids_from_name(path.stem)
        yield EvalItem(benchmark, path.name, fp_mod.fingerprint_file(path), clips, ytids)
        return
    tars = sorted(path.glob("*.tar")) if path.is_dir() else []
    for tar in tars:
        try:
            samples = list(iter_shard_samples(tar))
        except M2UGenError as e:  # a damaged shard: recorded as one unreadable item, the others go on
            yield EvalItem(benchmark, tar.name, fp_mod.failed(str(e).splitlines()[0][:200]))
            continue
        for sample in samples:
            key = str(sample["__key__"])
            clips = tuple(c for c in key.split("__") if CLIP_ID_RE.fullmatch(c))
            for name, data in sample.items():
                suffix = "." + name.rsplit(".", 1)[-1].lower()
                if isinstance(data, bytes) and suffix in AUDIO_SUFFIXES:
                    yield EvalItem(benchmark, f"{tar.name}:{key}.{name}", _fingerprint_bytes(data, suffix),
                                   clips, tuple(c[:11] for c in clips))
    if path.is_dir():
        for f in _audio_files(path):
            clips, ytids = ids_from_name(f.stem)
            yield EvalItem(benchmark, f.relative_to(path).as_posix(), fp_mod.fingerprint_file(f), clips, ytids)


def build_index(against: Iterable[tuple[str, Path]], progress=None) -> EvalIndex:
    """Index every item of every (benchmark, path); unreadable items are recorded, never fatal."""
    index = EvalIndex()
    for benchmark, path in against:
        if not path.exists():
            index.unreadable.append((benchmark, str(path), "no such file or directory"))
            continue
        for item in items_from_path(benchmark, path):
            index.add(item)
            if progress:
                progress(1)
    return index.freeze()


__all__ = ["AUDIO_SUFFIXES", "EvalIndex", "EvalItem", "build_index", "ids_from_name", "items_from_path"]
