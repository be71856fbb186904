"""``caption_visual``: caption every ok image or video in ``visual_media`` with one backend, in batches.

A caption is cached by (item, backend, model, prompt hash): an item whose latest caption for this backend
came from the same model and settings is skipped, so reruns are free and a new model or prompt recaptions.
Rows are written every ``write_every`` items, so an interrupted run keeps what it finished. A batch that
fails (a corrupt JPEG, a video that stopped decoding) is retried one item at a time, and only the items that
fail alone are counted as failed and left out.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from typing import Any

from m2ugen_data.errors import M2UGenError
from m2ugen_data.vision.media_stage import KINDS, batch_id, media_relpath_for
from m2ugen_data.vision.models import Captioner, VisualItem
from m2ugen_data.warehouse import Warehouse, utc_now

BACKENDS = ("grounded", "blip", "video-gpt2", "videomae-labels")
MUSIC_MID = "/m/04rlf"  # on every music segment: says nothing about this one


def make_visual_captioner(backend: str, **options: Any) -> Captioner:
    """Build a backend by name; options are the backend loader's (model_dir, device, dtype, beams...)."""
    if backend == "grounded":
        from m2ugen_data.vision.grounded import load_grounded

        return load_grounded()
    if backend == "blip":
        from m2ugen_data.vision.blip import load_blip

        return load_blip(**options)
    if backend == "video-gpt2":
        from m2ugen_data.vision.video_gpt2 import load_video_gpt2

        return load_video_gpt2(**options)
    if backend == "videomae-labels":
        from m2ugen_data.vision.videomae_labels import load_videomae_labels

        return load_videomae_labels(**options)
    raise M2UGenError(f"unknown visual caption backend {backend!r}; expected one of {', '.join(BACKENDS)}")


def pending_items(
    wh: Warehouse, kind: str, captioner: Captioner, *, limit: int | None = None, redo: bool = False,
    label_namer: Callable[[str], str] | None = None, clip_ids: Collection[str] | None = None,
) -> tuple[list[VisualItem], int]:
    """Items still to caption (among ``clip_ids`` when given) and how many were skipped as cached."""
    if kind not in KINDS:
        raise M2UGenError(f"unknown visual kind {kind!r}; expected image or video")
    con = wh.connect()
    cur = con.execute(
        """
        SELECT v.*, s.labels AS seg_labels,
               EXISTS (SELECT 1 FROM captions_latest c
                       WHERE c.item_id = v.clip_id AND c.modality = v.kind AND c.backend = $backend
                         AND c.model IS NOT DISTINCT FROM $model AND c.prompt_hash = $hash) AS cached
        FROM visual_media_latest v LEFT JOIN segments_latest s USING (clip_id)
        WHERE v.kind = $kind AND v.status = 'ok' AND v.path IS NOT NULL
        ORDER BY v.clip_id
        """,
        {"kind": kind, "backend": captioner.backend, "model": captioner.model, "hash": captioner.prompt_hash},
    )
    columns = [d[0] for d in cur.description]
    rows = [dict(zip(columns, r)) for r in cur.fetchall()]
    if clip_ids is not None:
        wanted = set(clip_ids)
        rows = [r for r in rows if r["clip_id"] in wanted]
    cached = 0 if redo else sum(r["cached"] for r in rows)
    todo = rows if redo else [r for r in rows if not r["cached"]]
    if limit is not None:
        todo = todo[:limit]
    items = []
    for r in todo:
        mids = [m for m in (r.pop("seg_labels") or []) if m != MUSIC_MID]
        names = tuple(label_namer(m) for m in mids) if label_namer else ()
        path = wh.abspath(media_relpath_for(kind, r["clip_id"]))  # validates the id; ignores the row's path
        items.append(VisualItem(r["clip_id"], kind, path, media=r, labels=names))
    return items, cached


def _caption_safely(captioner: Captioner, batch: Sequence[VisualItem]) -> list[tuple[VisualItem, str | None, str | None]]:
    """(item, text, error) per item; a failing batch is retried item by item."""
    try:
        return [(it, t, None) for it, t in zip(batch, captioner.caption(batch), strict=True)]
    except Exception as e:  # noqa: BLE001 - any backend failure: isolate the item(s) responsible
        if len(batch) == 1:
            return [(batch[0], None, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")]
    return [r for it in batch for r in _caption_safely(captioner, [it])]


def caption_visual(
    wh: Warehouse, kind: str, backend: str = "grounded", *, captioner: Captioner | None = None,
    batch_size: int = 16, write_every: int = 256, limit: int | None = None, redo: bool = False,
    label_namer: Callable[[str], str] | None = None, on_batch: Callable[[int], None] | None = None,
    clip_ids: Collection[str] | None = None, **options: Any,
) -> dict[str, Any]:
    """Caption pending ``kind`` items (only ``clip_ids`` when given) with ``backend`` (or a preloaded
    ``captioner``); returns a summary."""
    captioner = captioner or make_visual_captioner(backend, **options)
    if kind not in captioner.kinds:
        raise M2UGenError(f"backend {captioner.backend!r} captions {'/'.join(captioner.kinds)}, not {kind}")
    items, cached = pending_items(
        wh, kind, captioner, limit=limit, redo=redo, label_namer=label_namer, clip_ids=clip_ids
    )
    summary: dict[str, Any] = {"items": len(items) + cached, "cached": cached, "captioned": 0, "empty": 0, "failed": 0}
    errors: list[str] = []
    pending_rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()

    def flush() -> None:
        if pending_rows:
            ids = [r["item_id"] for r in pending_rows]
            tag = f"visual-{kind}-{captioner.backend}"
            wh.write_batch("captions", pending_rows, batch_id(tag, ids, captioner.model or "", captioner.prompt_hash))
            pending_rows.clear()

    for start in range(0, len(items), batch_size):
        batch = items[start : start + batch_size]
        for item, text, err in _caption_safely(captioner, batch):
            if err is not None:
                summary["failed"] += 1
                errors.append(f"{item.clip_id}: {err}")
                continue
            summary["captioned" if text else "empty"] += 1
            pending_rows.append(
                {"item_id": item.clip_id, "modality": kind, "backend": captioner.backend, "model": captioner.model,
                 "prompt_hash": captioner.prompt_hash, "text": text, "evidence": None, "created_at": utc_now(),
                 "status": None, "reasons": None, "factcheck": None, "consistency": None}  # claims: music text only
            )
        if len(pending_rows) >= write_every:
            flush()
        if on_batch is not None:
            on_batch(len(batch))
    flush()
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    summary["errors"] = errors[:20]
    return summary
