"""One evaluation run's results: a JSON record and a Markdown table, written atomically side by side.

The JSON keeps everything needed to compare runs honestly: each metric's value and scale, the model that
produced it (embedder, tagger, CLAP, BERTScore directories), the inputs, and every input that failed with its
reason (a failed clip is recorded and the run goes on; it never silently shrinks the set).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from m2ugen_model.atomic import write_bytes_atomic

# metric -> (label, scale/direction) for the table
METRIC_INFO: dict[str, tuple[str, str]] = {
    "bleu": ("BLEU (BLEU-1, corpus)", "0-100, higher better"),
    "bleu4": ("BLEU-4 (corpus)", "0-100, higher better"),
    "meteor": ("METEOR", "0-1, higher better"),
    "rougeL": ("ROUGE-L F", "0-1, higher better"),
    "rougeL_recall": ("ROUGE-L recall", "0-1, higher better"),
    "bertscore_f1": ("BERTScore F1", "0-1, higher better"),
    "bertscore_precision": ("BERTScore P", "0-1, higher better"),
    "bertscore_recall": ("BERTScore R", "0-1, higher better"),
    "fad": ("FAD", ">= 0, lower better"),
    "kl": ("KL (ref || gen)", ">= 0, lower better"),
    "clap": ("CLAP score (cosine)", "-1..1, higher better"),
    "adherence_tempo": ("adherence: tempo within 4%", "share of requests naming a tempo"),
    "adherence_tempo_any_octave": ("adherence: tempo within 4%, any octave", "share of requests naming a tempo"),
    "adherence_key": ("adherence: key", "share of requests naming a key"),
    "adherence_chords": ("adherence: chords (half of them heard)", "share of requests naming chords"),
    "adherence_instruments_present": ("adherence: instruments asked for, heard", "share of requests naming them"),
    "adherence_instruments_absent": ("adherence: instruments asked away, not heard", "share of requests naming them"),
}


@dataclass
class Report:
    kind: str  # "understanding" or "generation"
    metrics: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    models: dict[str, str] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)
    failures: list[dict[str, str]] = field(default_factory=list)
    skipped_metrics: dict[str, str] = field(default_factory=dict)  # metric -> why it was not computed
    grounding: dict[str, dict[str, Any]] = field(default_factory=dict)  # metric -> real value and control drops
    adherence: list[dict[str, Any]] = field(default_factory=list)  # per generated clip: asked vs measured
    created_at: str = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))

    def fail(self, item: str, reason: str) -> None:
        self.failures.append({"item": item, "reason": reason})


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4f}"
    return str(v)


def markdown(report: Report, title: str | None = None) -> str:
    lines = [f"## {title or f'm2ugen-eval: {report.kind}'}", "", "| metric | value | scale | n |", "|---|---|---|---|"]
    for name, value in report.metrics.items():
        label, scale = METRIC_INFO.get(name, (name, ""))
        lines.append(f"| {label} | {_fmt(value)} | {scale} | {report.counts.get(name, '')} |")
    for name, why in report.skipped_metrics.items():
        lines.append(f"| {METRIC_INFO.get(name, (name,))[0]} | not computed | {why} | |")
    lines += _grounding_lines(report.grounding)
    if report.models:
        lines += ["", "Models: " + "; ".join(f"{k}: `{v}`" for k, v in report.models.items())]
    if report.failures:
        lines += ["", f"{len(report.failures)} input(s) failed (listed in results.json), e.g. "
                  f"`{report.failures[0]['item']}`: {report.failures[0]['reason']}"]
    return "\n".join(lines) + "\n"


def _grounding_lines(grounding: dict[str, dict[str, Any]]) -> list[str]:
    """Each metric with the audio, and with it replaced (silence, another clip): a model that listens drops."""
    if not grounding:
        return []
    names = [k for k in next(iter(grounding.values())) if k != "real"]
    head = "| metric | with the audio | " + " | ".join(f"{n} (drop)" for n in names) + " |"
    lines = ["", "### Grounding controls: the same requests with the audio replaced", "", head,
             "|---|---|" + "---|" * len(names)]
    for metric, row in grounding.items():
        cells = []
        for n in names:
            c = row.get(n)
            rel = c and c.get("relative_drop")
            cells.append("" if c is None else f"{_fmt(c['value'])} ({_fmt(c['drop'])}"
                         + (f", {100 * rel:.0f}%)" if rel is not None else ")"))
        lines.append(f"| {METRIC_INFO.get(metric, (metric,))[0]} | {_fmt(row['real'])} | " + " | ".join(cells) + " |")
    lines += ["", "A model whose answers depend on the audio loses a clear share under both controls; no drop means "
              "the scores measure fluency, not listening."]
    return lines


def write_report(report: Report, out_dir: str | Path) -> tuple[Path, Path]:
    """``results.json`` and ``results.md`` in ``out_dir`` (each written to a temporary name, then renamed)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    js, md = out / "results.json", out / "results.md"
    write_bytes_atomic(js, json.dumps(asdict(report), indent=2, default=str).encode())
    write_bytes_atomic(md, markdown(report).encode())
    return js, md
