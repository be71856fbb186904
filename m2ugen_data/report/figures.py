"""The card's figures: matplotlib (object API on the Agg canvas, no pyplot state) written as PNG files.

Each function draws one figure from a dataset's stats and returns its file name, or None when there is
nothing to draw (an absent dataset or a column no row has), so the page shows only figures with data.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from m2ugen_data.report.queries import DatasetStats

VERSION = "3"  # bump when a figure's drawing changes, so cards stop reusing figures drawn the old way
DPI = 100
KEPT, DROPPED, ACCENT = "#3b75af", "#e07b39", "#6a9f58"
TOP_WORDS = 15


@dataclass(frozen=True)
class FigureFile:
    file: str  # relative to the dataset's directory, e.g. figures/tempo.png
    title: str
    alt: str


def _new(width: float = 5.4, height: float = 3.2, ncols: int = 1) -> tuple[Figure, list]:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    for ax in axes:
        ax.spines[["top", "right"]].set_visible(False)
        ax.grid(axis="y", alpha=0.3)
    return fig, list(axes)


def _bars(ax, labels: Sequence[str], values: Sequence[int], color: str | Sequence[str]) -> None:
    """Vertical count bars that stay bar-shaped when there are only one or two categories."""
    ax.bar(labels, values, color=color, width=0.6)
    ax.set_xlim(-0.5 - max(0, 3 - len(labels)) / 2, len(labels) - 0.5 + max(0, 3 - len(labels)) / 2)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))


def _save(fig: Figure, out_dir: Path, name: str) -> str:
    out_dir.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_dir / name, dpi=DPI)
    return f"{out_dir.name}/{name}"


def _hist(ax, values: Sequence[float], xlabel: str, bins: int = 20, color: str = KEPT) -> None:
    """A histogram that also draws values equal up to float noise (every pair at tempo ratio 1.0 within
    1e-16), for which numpy cannot cut ``bins`` finite-width bins: those get a unit-wide range around them."""
    lo, hi = min(values), max(values)
    flat = hi - lo <= 1e-9 * max(1.0, abs(hi))
    ax.hist(values, bins=bins, range=(lo - 0.5, hi + 0.5) if flat else None, color=color, edgecolor="white")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")


def _barh(ax, items: Sequence[tuple[str, int]], color: str = KEPT) -> None:
    labels = [k for k, _ in items][::-1]
    ax.barh(labels, [n for _, n in items][::-1], color=color)
    ax.grid(axis="x", alpha=0.3)
    ax.grid(axis="y", visible=False)


def funnel(stats: DatasetStats, out_dir: Path) -> FigureFile | None:
    """Kept vs dropped per stage (left) and every rejection reason by stage (right)."""
    stages = [s for s in stats.funnel if s.entered]
    if not stages:
        return None
    reasons = [(f"{s.name}: {r}", n) for s in stages for r, n in s.reasons]
    fig, axes = _new(11, max(3.2, 0.32 * max(len(stages), len(reasons)) + 1.2), ncols=2)
    names = [f"{s.name} ({s.unit})" for s in stages][::-1]
    kept = [s.kept for s in stages][::-1]
    dropped = [max(s.entered - s.kept, 0) for s in stages][::-1]
    axes[0].barh(names, kept, color=KEPT, label="kept")
    axes[0].barh(names, dropped, left=kept, color=DROPPED, label="dropped or pending")
    axes[0].set_xlabel("items")
    axes[0].legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncols=2, fontsize=8, frameon=False)
    axes[0].set_title("funnel")
    if reasons:
        _barh(axes[1], reasons, DROPPED)
        axes[1].set_xlabel("clips or samples")
    else:
        axes[1].text(0.5, 0.5, "no rejections", ha="center", va="center", transform=axes[1].transAxes)
        axes[1].set_axis_off()
    axes[1].set_title("rejections by stage and reason")
    return FigureFile(_save(fig, out_dir, "funnel.png"), "Rejection funnel", "kept and dropped items per stage, and rejections by reason")


def rhythm(stats: DatasetStats, out_dir: Path) -> FigureFile | None:
    tempo, meter = stats.features["tempo_bpm"], stats.features["meter"]
    if not tempo and not meter:
        return None
    fig, (ax_t, ax_m) = _new(9, 3.2, ncols=2)
    _hist(ax_t, tempo, "tempo (BPM)")
    ax_t.set_title("tempo")
    counts = sorted(Counter(meter).items())
    _bars(ax_m, [f"{m}/4" if m in (2, 3, 4) else str(m) for m, _ in counts], [n for _, n in counts], ACCENT)
    ax_m.set_xlabel("meter (beats per bar)")
    ax_m.set_title("meter")
    return FigureFile(_save(fig, out_dir, "rhythm.png"), "Tempo and meter", "histogram of measured tempo and bar chart of meter")


def keys(stats: DatasetStats, out_dir: Path) -> FigureFile | None:
    values = stats.features["key"]
    if not values:
        return None
    counts = Counter(values).most_common()
    fig, (ax,) = _new(max(5.4, 0.32 * len(counts) + 1.5), 3.2)
    colors = [KEPT if k.endswith("major") else DROPPED for k, _ in counts]
    _bars(ax, [k.replace(" major", "").replace(" minor", "m") for k, _ in counts], [n for _, n in counts], colors)
    ax.set_xlabel("key (blue major, orange minor)")
    ax.set_ylabel("clips")
    ax.tick_params(axis="x", labelrotation=60)
    return FigureFile(_save(fig, out_dir, "key.png"), "Key", "bar chart of measured keys")


def loudness(stats: DatasetStats, out_dir: Path) -> FigureFile | None:
    values = stats.features["loudness_lufs"]
    if not values:
        return None
    fig, (ax,) = _new()
    _hist(ax, values, "integrated loudness (LUFS)", color=ACCENT)
    return FigureFile(_save(fig, out_dir, "loudness.png"), "Loudness", "histogram of integrated loudness")


def content(stats: DatasetStats, out_dir: Path) -> FigureFile | None:
    """Measured instruments, genres and moods (from the audio, not the AudioSet labels), most frequent first."""
    kinds = [(k, v[:TOP_WORDS]) for k, v in stats.words.items() if v]
    if not kinds:
        return None
    rows = max(len(v) for _, v in kinds)
    fig, axes = _new(4.0 * len(kinds), 0.3 * rows + 1.4, ncols=len(kinds))
    for ax, (kind, items) in zip(axes, kinds):
        _barh(ax, items)
        ax.set_title(f"measured {kind}")
        ax.set_xlabel("music clips")
    return FigureFile(_save(fig, out_dir, "content.png"), "Measured instruments, genres and moods", "bar charts of measured content words")


def pairs(stats: DatasetStats, out_dir: Path) -> FigureFile | None:
    ratio, harmony = stats.pairs["tempo_ratio"], stats.pairs["harmony_sim"]
    if stats.spec.name != "muedit" or (not ratio and not harmony):
        return None
    fig, (ax_r, ax_h) = _new(9, 3.2, ncols=2)
    for ax, values, label, color in ((ax_r, ratio, "tempo ratio (target / source)", KEPT), (ax_h, harmony, "harmony similarity (0..1)", ACCENT)):
        if values:
            _hist(ax, values, label, color=color)
        else:
            ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes)
    ax_r.set_title("pair tempo ratio")
    ax_h.set_title("pair harmony similarity")
    return FigureFile(_save(fig, out_dir, "pairs.png"), "Pairs", "histograms of pair tempo ratio and harmony similarity")


def text_lengths(stats: DatasetStats, out_dir: Path) -> FigureFile | None:
    captions = {k: v for k, v in stats.caption_words.items() if v}
    turns = {k: v for k, v in stats.dialogue_words.items() if v}
    panels = [("caption length", captions), ("dialogue turn length", turns)]
    panels = [(t, d) for t, d in panels if d]
    if not panels:
        return None
    fig, axes = _new(4.5 * len(panels), 3.2, ncols=len(panels))
    for ax, (title, data) in zip(axes, panels):
        ax.hist(list(data.values()), bins=15, label=list(data), color=[KEPT, DROPPED, ACCENT][: len(data)])
        ax.set_xlabel("words")
        ax.set_ylabel("count")
        ax.set_title(title)
        ax.legend(fontsize=8)
    return FigureFile(_save(fig, out_dir, "text.png"), "Caption and dialogue length", "histograms of words per caption and per dialogue turn")


def consistency(stats: DatasetStats, out_dir: Path) -> FigureFile | None:
    """Per record: the share of its checkable claims that the measurements support."""
    c = stats.claims
    if not c.consistency:
        return None
    fig, (ax,) = _new()
    _hist(ax, c.consistency, "supported / (supported + contradicted)", bins=10)
    ax.set_title(f"claim consistency of the {c.texts}")
    return FigureFile(_save(fig, out_dir, "consistency.png"), "Claims checked against the measurements",
                      f"histogram of the consistency score per {c.texts[:-1]}")


def dataset_figures(stats: DatasetStats, out_dir: Path) -> list[FigureFile]:
    """Every figure that has data, in page order."""
    drawn = (f(stats, out_dir) for f in (funnel, rhythm, keys, loudness, content, pairs, text_lengths, consistency))
    return [f for f in drawn if f is not None]


def overview(all_stats: Sequence[DatasetStats], out_dir: Path) -> FigureFile | None:
    """The index page's figure: samples and music hours per dataset."""
    present = [s for s in all_stats if s.present]
    if not present:
        return None
    fig, (ax_n, ax_h) = _new(9, 3.0, ncols=2)
    names = [s.spec.title for s in present]
    _bars(ax_n, names, [s.counts["samples"] for s in present], KEPT)
    ax_n.set_title("samples in shards")
    ax_h.bar(names, [s.hours["music"] for s in present], color=ACCENT, width=0.6)
    ax_h.set_xlim(ax_n.get_xlim())
    ax_h.set_title("hours of music (analysed, passed the filter)")
    return FigureFile(_save(fig, out_dir, "overview.png"), "Datasets", "samples and hours per dataset")
