"""An evaluation run from files: predictions vs references (understanding), or generated vs reference audio
(generation). Reading, pairing and failure bookkeeping live here; the formulas in ``text`` and ``audio``.

Understanding input: JSON Lines (or a JSON list), one item per row with ``id`` and the prediction (``text``,
``prediction`` or ``answer``, so ``m2ugen-infer`` batch records work as they are) and, inline or from a
separate references file joined on ``id``, ``reference`` (a string or a list of strings).
Generation input: a directory of generated audio and one of references, paired by file stem (``x.wav`` with
``x.flac``); prompts for the CLAP score from JSON Lines rows with ``id`` (= stem) and ``prompt`` or ``text``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from m2ugen_model.eval import audio as A
from m2ugen_model.eval import text as T
from m2ugen_model.eval.report import Report

Item = TypeVar("Item")
PRED_FIELDS = ("prediction", "text", "answer")
REF_FIELDS = ("reference", "references", "caption")
PROMPT_FIELDS = ("prompt", "text", "instruction")


class EvalInputError(ValueError):
    """An input file that cannot be used; the message names it."""


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a JSON Lines file, or of a JSON file holding a list of objects."""
    p = Path(path)
    try:
        raw = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise EvalInputError(f"{p}: {exc.strerror or exc}") from None
    try:
        if raw.lstrip().startswith("["):
            rows = json.loads(raw)
        else:
            rows = [json.loads(line) for line in raw.splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        raise EvalInputError(f"{p}: not JSON or JSON Lines ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise EvalInputError(f"{p}: expected a list of objects (or one object per line)")
    return rows


def _first(row: dict[str, Any], fields: Iterable[str]) -> Any:
    return next((row[f] for f in fields if row.get(f) not in (None, "", [])), None)


def _valid_ref(ref: Any) -> bool:
    return isinstance(ref, str) and bool(ref.strip()) or (
        isinstance(ref, list) and bool(ref) and all(isinstance(x, str) and x.strip() for x in ref))


def understanding_pairs(predictions: str | Path, references: str | Path | None, report: Report
                        ) -> tuple[list[str], list[str | list[str]]]:
    """(predictions, references) in prediction order; rows without an id, a prediction or a reference are
    recorded in ``report.failures``."""
    refs: dict[str, Any] = {}
    if references is not None:
        for i, row in enumerate(read_rows(references)):
            ref = _first(row, REF_FIELDS)
            if "id" not in row or not _valid_ref(ref):
                report.fail(f"{references}#{i}", "reference row without id or reference text")
                continue
            refs[str(row["id"])] = ref
    preds, golds = [], []
    for i, row in enumerate(read_rows(predictions)):
        item = str(row.get("id", f"{predictions}#{i}"))
        pred = _first(row, PRED_FIELDS)
        ref = refs.get(item) if references is not None else _first(row, REF_FIELDS)
        if not isinstance(pred, str):
            report.fail(item, row.get("error") or "no prediction text")
        elif not _valid_ref(ref):
            report.fail(item, "no reference for this id")
        else:
            preds.append(pred)
            golds.append(ref)
    return preds, golds


def _text_scores(preds: list[str], refs: list[str | list[str]], bertscore_dir: str | Path | None,
                 report: Report) -> dict[str, float]:
    """Every understanding metric of one prediction set (notes which were skipped, and why, on ``report``)."""
    from m2ugen_model.eval.wordnet import WordNetMissing

    scores: dict[str, float] = {**T.bleu(preds, refs)}
    try:
        scores["meteor"] = T.meteor(preds, refs)
        report.models["meteor_wordnet"] = "WordNet 3.0"
    except WordNetMissing as exc:  # the other metrics still count; the table says why METEOR is missing
        report.skipped_metrics["meteor"] = str(exc)
    scores.update(T.rouge_l(preds, refs))
    if bertscore_dir is not None:
        bs = T.bertscore(preds, refs, bertscore_dir)
        report.models["bertscore"] = f"{bertscore_dir} (layer {bs.pop('bertscore_layer')})"
        scores.update(bs)
    else:
        report.skipped_metrics["bertscore_f1"] = "no --bertscore-model given"
    return {k: float(v) for k, v in scores.items()}


def evaluate_understanding(predictions: str | Path, references: str | Path | None = None,
                           bertscore_dir: str | Path | None = None,
                           controls: Mapping[str, str | Path] | None = None) -> Report:
    """Text metrics of the predictions; with ``controls`` (name -> predictions of the same requests with the
    audio replaced: ``grounding.write_controls``), the same metrics per control and each one's drop."""
    report = Report("understanding", inputs={"predictions": str(predictions), "references": str(references or "inline")})
    preds, refs = understanding_pairs(predictions, references, report)
    if not preds:
        raise EvalInputError(f"{predictions}: no usable prediction/reference pairs ({len(report.failures)} failed)")
    report.metrics = _text_scores(preds, refs, bertscore_dir, report)
    report.counts = {k: len(preds) for k in report.metrics}
    if not controls:
        report.skipped_metrics["grounding"] = ("no --control given: run the requests again with the audio replaced "
                                               "(m2ugen-eval controls) to see whether the answers depend on it")
        return report
    per_control = {}
    for name, path in controls.items():
        c_preds, c_refs = understanding_pairs(path, references, Report("control"))
        if not c_preds:
            raise EvalInputError(f"{path}: control {name!r} has no usable prediction/reference pairs")
        per_control[name] = _text_scores(c_preds, c_refs, bertscore_dir, Report("control"))
        report.inputs[f"control:{name}"] = str(path)
    report.grounding = drops(report.metrics, per_control)
    return report


def drops(real: Mapping[str, float], controls: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, Any]]:
    """metric -> {"real": v, control: {"value", "drop", "relative_drop"}}: how much each metric falls when the
    audio is taken away (a drop of 0 means the answers did not depend on the audio)."""
    out: dict[str, dict[str, Any]] = {}
    for metric, value in real.items():
        row: dict[str, Any] = {"real": value}
        for name, scores in controls.items():
            if metric in scores:
                c = scores[metric]
                row[name] = {"value": c, "drop": value - c, "relative_drop": (value - c) / value if value else None}
        out[metric] = row
    return out


def _clips(files: Mapping[str, Path], sample_rate: int, max_seconds: float, report: Report, bad: set[str]
           ) -> Iterator[tuple[str, np.ndarray]]:
    """(stem, clip) one at a time, never all at once; a file that cannot be read (or is past the length cap)
    is recorded once and added to ``bad`` so no other metric reads it again."""
    for stem, path in files.items():
        if stem in bad:
            continue
        try:
            clip = A.load_audio(path, sample_rate, max_seconds)
        except A.AudioInputError as exc:
            report.fail(str(path), str(exc).split(": ", 1)[-1])
            bad.add(stem)
            continue
        yield stem, clip


def _per_batch(items: Iterable[Item], fn: Callable[[list[Item]], np.ndarray], size: int = A.BATCH) -> np.ndarray:
    """``fn`` over consecutive batches of ``items``, results concatenated: at most ``size`` clips are held at
    once, so memory does not grow with the number of clips."""
    out, batch = [], []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            out.append(fn(batch))
            batch = []
    if batch:
        out.append(fn(batch))
    return np.concatenate(out) if out else np.zeros(0)


def _record_unread(directory: str | Path, report: Report) -> None:
    for p in A.unread_entries(directory):
        report.fail(str(p), "a folder, not an audio file: only the audio files directly in the given folder are "
                    "read" if p.is_dir() else "not a regular file")


def evaluate_generation(generated: str | Path, reference: str | Path | None = None, *,
                        prompts: str | Path | None = None, fad_model: str | Path | None = None,
                        tagger: str | None = None, clap_model: str | Path | None = None,
                        device: str = "cpu", adherence: bool = True,
                        max_audio_seconds: float = A.MAX_AUDIO_SECONDS) -> Report:
    """FAD (needs ``reference`` + ``fad_model``), KL (``reference`` + ``tagger``), CLAP (``prompts`` +
    ``clap_model``), adherence (``prompts``: tempo, key, chords and instruments the requests named, measured
    by the data pipeline's analysers); a metric whose inputs were not given is listed as not computed, with why.
    Clips are streamed (a batch at a time) and any longer than ``max_audio_seconds`` are recorded failures."""
    report = Report("generation", inputs={"generated": str(generated), "reference": str(reference),
                                          "prompts": str(prompts)})
    gen_files = A.audio_files(generated)
    if not gen_files:
        raise EvalInputError(f"{generated}: no audio files ({', '.join(A.AUDIO_SUFFIXES)})")
    ref_files = A.audio_files(reference) if reference is not None else {}
    for d in (generated, reference) if reference is not None else (generated,):
        _record_unread(d, report)
    bad: set[str] = set()
    cap = max_audio_seconds

    if fad_model and ref_files:
        emb = A.load_embedder(fad_model, device)

        def embed(batch: list[tuple[str, np.ndarray]]) -> np.ndarray:
            return emb.embed_batch([clip for _, clip in batch])

        ref = _per_batch(_clips(ref_files, emb.sample_rate, cap, report, set()), embed)
        gen = _per_batch(_clips(gen_files, emb.sample_rate, cap, report, bad), embed)
        report.metrics["fad"] = A.frechet_distance(ref, gen)
        report.counts["fad"] = len(gen)
        report.models["fad_embedder"] = emb.name
    else:
        report.skipped_metrics["fad"] = "needs --reference and --fad-model"

    if tagger and ref_files:
        tg = A.load_tagger(tagger, device)
        paired = sorted(set(gen_files) & set(ref_files))
        p_ref, p_gen = [], []
        for stem in paired:
            try:
                r = tg.tag(A.load_audio(ref_files[stem], tg.sample_rate, cap))
                g = tg.tag(A.load_audio(gen_files[stem], tg.sample_rate, cap))
            except A.AudioInputError as exc:
                report.fail(stem, f"KL: {exc}")
                continue
            p_ref.append(r)
            p_gen.append(g)
        for stem in sorted(set(gen_files) - set(ref_files)):
            report.fail(stem, "KL: no reference clip with this name")
        if p_ref:
            report.metrics["kl"] = float(A.kl_divergence(np.stack(p_ref), np.stack(p_gen)).mean())
            report.counts["kl"] = len(p_ref)
        else:
            report.skipped_metrics["kl"] = "no generated clip has a readable reference of the same name"
        report.models["kl_tagger"] = tg.name
    else:
        report.skipped_metrics["kl"] = "needs --reference and --kl-tagger"

    if prompts and clap_model:
        texts = {str(r["id"]): _first(r, PROMPT_FIELDS) for r in read_rows(prompts) if "id" in r}
        clap = A.load_clap(clap_model, device)
        prompted = {s: p for s, p in gen_files.items() if isinstance(texts.get(s), str)}
        for s in sorted(set(gen_files) - set(prompted) - bad):
            report.fail(s, "CLAP: no prompt with this id")
        sims = _per_batch(_clips(prompted, clap.sample_rate, cap, report, bad),
                          lambda batch: clap.similarity([texts[s] for s, _ in batch], [c for _, c in batch]))
        if len(sims):
            report.metrics["clap"] = float(sims.mean())
            report.counts["clap"] = len(sims)
        else:
            report.skipped_metrics["clap"] = "no generated clip has a prompt"
        report.models["clap"] = str(clap_model)
    else:
        report.skipped_metrics["clap"] = "needs --prompts and --clap-model"

    if prompts and adherence:
        from m2ugen_model.eval.adherence import adherence as measure_adherence

        rows = {str(r["id"]): r for r in read_rows(prompts) if "id" in r}
        files = {s: p for s, p in gen_files.items() if s not in bad}
        metrics, counts, items, failed = measure_adherence(files, rows, lambda r: _first(r, PROMPT_FIELDS))
        report.metrics.update(metrics)
        report.counts.update(counts)
        report.adherence = items
        for stem, why in failed:
            report.fail(stem, why)
        report.models["adherence"] = "m2ugen_data analysis (madmom tempo/key/chords, MusiCNN instrument words)"
        if not metrics:
            report.skipped_metrics["adherence_tempo"] = "no request names a tempo, key, chord or instrument"
    else:
        report.skipped_metrics["adherence_tempo"] = "needs --prompts (rows naming tempo, key, chords, instruments)"
    return report
