"""Write the whole card: one directory per dataset (page, README, figures, sample media) and an index.

The card is built in a hidden sibling directory and swapped in under a lock, so a reader (or a crash)
sees the old card or the new one, a rerun replaces it entirely (no stale figures or media), and two
flows finishing at once do not interleave their files. A directory that is not a card written here is
never replaced.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import fcntl
import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import matplotlib

from m2ugen_data.errors import WarehouseError
from m2ugen_data.report import figures, render
from m2ugen_data.report.datasets import DATASETS
from m2ugen_data.report.contamination import contamination_stats
from m2ugen_data.report.queries import DatasetStats, dataset_stats
from m2ugen_data.report.samples import display_samples
from m2ugen_data.warehouse import Warehouse

log = logging.getLogger(__name__)

MARKER = ".m2ugen-report"  # present in every card directory; only such a directory is ever replaced
FIGURES_INDEX = ".figures.json"  # the figures of a dataset and the digest of the data they were drawn from
SAMPLES = 4


def write_report(wh: Warehouse, out: Path | None = None, *, samples: int = SAMPLES) -> Path:
    """Write the dataset card of every dataset in ``wh`` to ``out`` (default ``<warehouse>/report``).

    Returns the path of ``index.html``. Datasets that are absent or empty get a page that says so.
    """
    out = (Path(out) if out is not None else wh.root / "report").expanduser().resolve()
    _check_replaceable(out)
    con = wh.connect()
    try:
        all_stats = [dataset_stats(con, spec, samples=samples) for spec in DATASETS]
        clean = contamination_stats(wh, con)
    finally:
        con.close()
    context = {
        "code": render.code_version(), "warehouse": str(wh.root), "clean": clean,
        "generated_at": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    tmp = out.parent / f".{out.name}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        tmp.mkdir(parents=True)
        for stats in all_stats:
            _write_dataset(wh, stats, tmp / stats.spec.name, context, out)
        overview = figures.overview(all_stats, tmp / "figures")
        (tmp / "index.html").write_text(render.index_page(all_stats, overview, context), encoding="utf-8")
        (tmp / MARKER).write_text("dataset card written by m2ugen-data report; replaced on every run\n")
        _swap_in(tmp, out)
    except OSError as e:
        raise WarehouseError(f"cannot write the dataset card to {out}: {e.strerror or e}") from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out / "index.html"


def _write_dataset(wh: Warehouse, stats: DatasetStats, directory: Path, context: dict, previous: Path) -> None:
    directory.mkdir()
    figs = _dataset_figures(stats, directory / "figures", previous / stats.spec.name / "figures") if stats.present else []
    rows = display_samples(wh, stats, directory / "media")
    (directory / "index.html").write_text(render.dataset_page(stats, figs, rows, context), encoding="utf-8")
    (directory / "README.md").write_text(render.dataset_readme(stats, figs, rows, context), encoding="utf-8")
    log.info("report: %s %s", stats.spec.name, "written" if stats.present else "absent")


def _figures_key(stats: DatasetStats) -> str:
    """A digest of everything the figures are drawn from (and of how they are drawn). The value lists are
    digested as multisets: DuckDB returns rows in no fixed order, and the figures do not depend on it."""

    def unordered(columns: dict[str, list]) -> dict[str, list]:
        return {k: sorted(v, key=repr) for k, v in columns.items()}

    data = {
        "figures": figures.VERSION, "matplotlib": matplotlib.__version__, "dataset": stats.spec.name,
        "funnel": [dataclasses.asdict(s) for s in stats.funnel], "features": unordered(stats.features),
        "words": stats.words, "pairs": unordered(stats.pairs), "captions": unordered(stats.caption_words),
        "dialogues": unordered(stats.dialogue_words), "consistency": sorted(stats.claims.consistency),
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def _dataset_figures(stats: DatasetStats, directory: Path, previous: Path) -> list[figures.FigureFile]:
    """Draw the figures, or reuse the previous card's when their data is unchanged.

    Every build flow rewrites the card of all four datasets when it finishes; the datasets it did not touch
    keep their figures instead of being redrawn (matplotlib is most of the card's time).
    """
    key = _figures_key(stats)
    try:
        index = json.loads((previous / FIGURES_INDEX).read_text())
        if index["key"] == key:
            shutil.copytree(previous, directory)
            return [figures.FigureFile(**f) for f in index["figures"]]
    except (OSError, ValueError, KeyError, TypeError):
        shutil.rmtree(directory, ignore_errors=True)  # no previous card, or it changed under us: draw
    figs = figures.dataset_figures(stats, directory)
    if figs:
        (directory / FIGURES_INDEX).write_text(json.dumps({"key": key, "figures": [dataclasses.asdict(f) for f in figs]}))
    return figs


def _check_replaceable(out: Path) -> None:
    if out.exists() and not (out.is_dir() and (not any(out.iterdir()) or (out / MARKER).exists())):
        raise WarehouseError(
            f"refusing to replace {out}: it is not a dataset card written by m2ugen-data report (choose another --out)"
        )


@contextlib.contextmanager
def _locked(out: Path) -> Iterator[None]:
    with open(out.parent / f".{out.name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _swap_in(new: Path, out: Path) -> None:
    """Move ``new`` to ``out``, replacing a previous card (renames only; the old one is deleted after)."""
    old = out.parent / f".{out.name}.{uuid.uuid4().hex[:12]}.old"
    with _locked(out):
        _check_replaceable(out)
        if out.exists():
            os.rename(out, old)
        os.rename(new, out)
    shutil.rmtree(old, ignore_errors=True)
