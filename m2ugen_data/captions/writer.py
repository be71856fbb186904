"""Caption clips in batches into the ``captions`` manifest, skipping what was already captioned.

An item is done when the manifest holds its (item, backend, model, prompt hash): the hash covers every
input that determines the text, so a changed measurement or a new model version captions again, while a
rerun of the same run costs nothing. Each batch is written on its own, so an interrupted run resumes. Every
row carries the backend's evidence (which measurement backs each phrase), null where the backend cannot know.
Music captions of every backend have their claims checked against the clip's measurements (``factcheck``):
the verdicts and the consistency score are stored, and a caption the policy rejects keeps its text only
inside ``factcheck`` (``text`` is null, so no later stage uses it).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from m2ugen_data import defaults
from m2ugen_data.captions import Captioner, CaptionItem
from m2ugen_data.claims import WorkClaims, claimed_batches, stage_name
from m2ugen_data.errors import M2UGenError
from m2ugen_data.factcheck.heard import Heard
from m2ugen_data.factcheck.policy import DEFAULT_POLICY, FactPolicy, check_caption, record_json
from m2ugen_data.warehouse import Warehouse, utc_now


@dataclass
class CaptionSummary:
    total: int = 0
    cached: int = 0
    written: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # item id -> one-line error
    rejected: int = 0  # written, but the claim check rejected the text (reasons in the manifest)
    seconds: float = 0.0
    claimed_elsewhere: int = 0  # to do, but claimed by another live run (claims.py)


def cached_keys(wh: Warehouse, backend: str) -> set[tuple[str, str, str, str]]:
    """(item_id, backend, model, prompt_hash) of every caption ever written by ``backend``."""
    t = wh.read("captions", latest=False, where=f"backend = '{backend.replace(chr(39), chr(39) * 2)}'")
    cols = [t.column(c).to_pylist() for c in ("item_id", "backend", "model", "prompt_hash")]
    return {(i, b, m or "", h) for i, b, m, h in zip(*cols, strict=True)}


def _caption_safely(
    captioner: Captioner, batch: Sequence[CaptionItem], summary: CaptionSummary
) -> list[tuple[CaptionItem, str]]:
    """Caption a batch; if it fails, caption its items one by one so one bad clip costs only itself."""
    try:
        return list(zip(batch, captioner.caption_batch(batch), strict=True))
    except M2UGenError:
        if len(batch) == 1:
            raise
    done = []
    for item in batch:
        try:
            done.append((item, captioner.caption_batch([item])[0]))
        except M2UGenError as e:
            summary.failed[item.item_id] = str(e)
    return done


def _evidence_json(captioner: Captioner, item: CaptionItem) -> str | None:
    """The captioner's evidence for one item as JSON (null when the backend cannot know)."""
    evidence = captioner.evidence(item)
    return None if evidence is None else json.dumps(evidence, sort_keys=True)


def _checked(item: CaptionItem, text: str, policy: FactPolicy | None) -> dict:
    """The text to store and the claim-check columns of one music caption (all null when not checked)."""
    if policy is None:
        return {"text": text, "status": None, "reasons": None, "factcheck": None, "consistency": None}
    result = check_caption(text, Heard(item.facts, item.tag_evidence, item.measured, item.tempo), policy)
    report = json.loads(record_json(result))
    if result.text is None:
        report["rejected_text"] = text
    return {
        "text": result.text,
        "status": "ok" if result.text is not None else "rejected",
        "reasons": result.reasons,
        "factcheck": json.dumps(report, sort_keys=True),
        "consistency": result.consistency,
    }


def write_captions(
    wh: Warehouse,
    captioner: Captioner,
    items: Sequence[CaptionItem],
    *,
    modality: str = "audio",
    batch_size: int = defaults.CAPTION_BATCH_SIZE,
    on_progress: Callable[[int], None] | None = None,
    policy: FactPolicy | None = DEFAULT_POLICY,
) -> CaptionSummary:
    """Caption ``items`` not yet in the manifest; returns counts (cached, written, failed, rejected). Music
    captions are checked under ``policy`` (None: not checked)."""
    start = time.perf_counter()
    summary = CaptionSummary(total=len(items))
    claims = WorkClaims(wh.root, stage_name("captions", captioner.backend))  # before the cache is read
    done = cached_keys(wh, captioner.backend)
    todo: list[tuple[CaptionItem, str]] = []
    for item in items:
        h = captioner.prompt_hash(item)
        if (item.item_id, captioner.backend, captioner.model, h) in done:
            summary.cached += 1
        else:
            todo.append((item, h))
    if on_progress:
        on_progress(summary.cached)
    for chunk in claimed_batches(claims, todo, lambda t: f"{modality}:{t[0].item_id}", batch_size):
        hashes = {item.item_id: h for item, h in chunk}
        captioned = _caption_safely(captioner, [item for item, _ in chunk], summary)
        now = utc_now()
        rows = [
            {
                "item_id": item.item_id,
                "modality": modality,
                "backend": captioner.backend,
                "model": captioner.model,
                "prompt_hash": hashes[item.item_id],
                "evidence": _evidence_json(captioner, item),
                "created_at": now,
                **_checked(item, text, policy if modality == "audio" else None),
            }
            for item, text in captioned
        ]
        summary.rejected += sum(r["status"] == "rejected" for r in rows)
        if rows:
            digest = hashlib.sha1("".join(f"{r['item_id']}:{r['prompt_hash']};" for r in rows).encode()).hexdigest()[
                :16
            ]
            wh.write_batch("captions", rows, batch_id=f"cap-{captioner.backend}-{digest}")
        summary.written += len(rows)
        if on_progress:
            on_progress(len(chunk))
    summary.claimed_elsewhere = claims.skipped
    summary.seconds = time.perf_counter() - start
    return summary
