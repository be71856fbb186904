"""HTML pages and the Hugging Face README, from Jinja templates (HTML escaped in both: captions are data, and
hubs render a README's Markdown with its inline HTML)."""

from __future__ import annotations

import functools
import shutil
import subprocess
from html import escape as escape_html
from importlib import metadata
from pathlib import Path
from typing import Any

import jinja2
import yaml
from markupsafe import Markup

from m2ugen_data.report.figures import FigureFile
from m2ugen_data.report.queries import DatasetStats
from m2ugen_data.schemas import SCHEMA_VERSION

_TEMPLATES = jinja2.PackageLoader("m2ugen_data.report", "templates")


def _counted(rows: list[tuple[str, int]], code: bool = False, sep: str = ", ") -> str:
    """``[(value, n)]`` as ``value (n), ...`` for Markdown (values in backticks when ``code``)."""
    return sep.join(f"`{v}` ({n})" if code else f"{v} ({n})" for v, n in rows) or "none"


def _markdown_text(value: object) -> object:
    """A README value as Markdown text: its HTML escaped (``&``, ``<``, ``>``; quotes stay readable), unless
    it is ``Markup`` (the YAML front matter)."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return escape_html(value, quote=False)
    return value


@functools.cache
def _env(html: bool) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=_TEMPLATES, autoescape=html, finalize=None if html else _markdown_text,
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
    )
    env.filters["counted"] = _counted
    return env


def code_version() -> dict[str, Any]:
    """Package version, and the git commit (and whether the tree has uncommitted changes) when run from a clone."""
    try:
        version = metadata.version("m2ugen")
    except metadata.PackageNotFoundError:
        version = "unknown"
    info: dict[str, Any] = {"version": version, "commit": None, "dirty": False, "schema_version": SCHEMA_VERSION}
    repo = Path(__file__).resolve().parents[2]
    git = shutil.which("git")
    if git is None or not (repo / ".git").exists():
        return info
    try:
        head = subprocess.run([git, "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=False)
        status = subprocess.run(
            [git, "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10, check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return info
    if head.returncode == 0:
        info["commit"] = head.stdout.strip()
        info["dirty"] = status.returncode == 0 and bool(status.stdout.strip())
    return info


def headline(stats: DatasetStats) -> list[tuple[str, str]]:
    """The numbers at the top of a page (and the README's size table)."""
    c, h = stats.counts, stats.hours
    items = [
        ("segments selected", f"{c['segments']} ({c['videos']} videos)"),
        ("downloaded", f"{c['downloaded']} clips, {h['downloaded']:.2f} h"),
        ("music clips", f"{c['music']}, {h['music']:.2f} h"),
    ]
    if stats.spec.name == "muedit":
        items.append(("pairs", str(c["pairs"])))
    if stats.spec.visual_kind:
        items.append((f"{stats.spec.visual_kind}s extracted", str(c["visual_ok"])))
    items.append(("captioned items", str(c["captioned"])))
    if stats.spec.name != "mucaps":
        items.append(("dialogues accepted", str(c["dialogues"])))
    items.append(("samples in shards", f"{c['samples']} in {c['shards']} shard(s), {c['shard_bytes'] / 2**20:.1f} MiB"))
    return items


def _provenance_lists(prov: dict[str, Any]) -> list[tuple[str, list[tuple[str, int]]]]:
    return [
        ("sources", prov["sources"]), ("audio span (of the video)", prov["audio_spans"]),
        ("analyser versions", prov["analyser_versions"]),
        ("pair miner", prov["miner_versions"]), ("caption backends", prov["caption_backends"]),
        ("dialogue backends", prov["dialogue_backends"]), ("media extractor", prov["extractor_versions"]),
    ]


def _size_category(n: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return label
    return "n>1M"


def front_matter(stats: DatasetStats) -> str:
    """The YAML header the Hugging Face Hub reads (task, size, tags, the WebDataset files)."""
    spec = stats.spec
    meta = {
        "pretty_name": spec.title,
        "license": "other",
        "task_categories": list(spec.task_categories),
        "tags": ["music", "audioset", "m2ugen", spec.name] + ([spec.visual_kind] if spec.visual_kind else []),
        "size_categories": [_size_category(stats.counts["samples"])],
        "configs": [{"config_name": "default", "data_files": f"{spec.name}-*.tar"}],
    }
    return yaml.safe_dump(meta, sort_keys=False)


def dataset_page(stats: DatasetStats, figures: list[FigureFile], samples: list[dict[str, Any]], context: dict[str, Any]) -> str:
    return _env(True).get_template("dataset.html.j2").render(
        spec=stats.spec, stats=stats, prov=stats.provenance, figures=figures, samples=samples,
        headline=headline(stats), provenance_lists=_provenance_lists(stats.provenance), **context,
    )


def dataset_readme(stats: DatasetStats, figures: list[FigureFile], samples: list[dict[str, Any]], context: dict[str, Any]) -> str:
    return _env(False).get_template("README.md.j2").render(
        spec=stats.spec, stats=stats, prov=stats.provenance, figures=figures, samples=samples,
        headline=headline(stats), front_matter=Markup(front_matter(stats)), **context,
    )


def index_page(all_stats: list[DatasetStats], overview: FigureFile | None, context: dict[str, Any]) -> str:
    return _env(True).get_template("index.html.j2").render(datasets=all_stats, overview=overview, **context)
