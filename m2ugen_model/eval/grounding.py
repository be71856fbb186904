"""Grounding controls: does a model's answer depend on the audio it was given?

Text metrics of music QA and captioning (BLEU, METEOR, BERTScore) barely move when a model gets unrelated
audio: fluent generic answers score well. So every understanding run is repeated with the audio replaced by
silence and by another clip of the same set, and the report shows each metric's drop from the real run. A
model that listens loses a clear share of its score under both controls; one that does not shows none.

Two steps, because ``m2ugen-eval`` scores files and never loads a model:

1. ``write_controls`` (``m2ugen-eval controls requests.jsonl --out ctl/``) writes the ``m2ugen-infer batch``
   request files of the controls: ``silence.jsonl`` (each audio replaced by digital silence of the same
   length) and ``swapped.jsonl`` (each audio replaced by another request's, a seeded derangement, so no
   request keeps its own), with the silence files under ``ctl/media/``;
2. ``m2ugen-eval understanding --predictions real.jsonl --control silence=... --control swapped=...`` scores
   the real run and each control against the same references (``control_report``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from m2ugen_model.eval.run import EvalInputError, read_rows
from m2ugen_model.infer.media_io import MAX_AUDIO_SECONDS, too_long

CONTROLS = ("silence", "swapped")
UNDERSTANDING_TASKS = ("caption", "answer")


def _audio_seconds(path: Path) -> float:
    import soundfile as sf

    try:
        return float(sf.info(str(path)).duration)
    except (RuntimeError, OSError) as exc:
        raise EvalInputError(f"{path}: cannot read its length ({exc})") from None


def write_controls(requests: str | Path, out: str | Path, *, seed: int = 0,
                   max_audio_seconds: float = MAX_AUDIO_SECONDS) -> dict[str, Path]:
    """The control request files for the understanding requests (with audio) of an ``m2ugen-infer`` batch
    file; media paths in them are absolute. Returns control name -> file. Audio past ``max_audio_seconds``
    (m2ugen-infer's cap, which would refuse it) is refused before any silence is written."""
    import soundfile as sf

    req_path = Path(requests)
    base = req_path.parent
    rows = [r for r in read_rows(req_path) if r.get("task") in UNDERSTANDING_TASKS and r.get("audio")]
    if len(rows) < 2:
        raise EvalInputError(f"{req_path}: grounding controls need at least 2 caption/answer requests with audio "
                             f"(found {len(rows)})")
    out_dir = Path(out)
    media = out_dir / "media"
    media.mkdir(parents=True, exist_ok=True)
    audio = [str(Path(r["audio"]) if Path(r["audio"]).is_absolute() else (base / r["audio"]).resolve())
             for r in rows]
    lengths = [_audio_seconds(Path(path)) for path in audio]
    for path, seconds in zip(audio, lengths):
        if seconds > max_audio_seconds:
            raise too_long(Path(path), seconds, max_audio_seconds)
    silence = []
    for length in lengths:
        seconds = round(length, 1)
        target = media / f"silence-{seconds:g}s.wav"
        if not target.is_file():
            sf.write(target, np.zeros(max(1, int(seconds * 16000)), np.float32), 16000)
        silence.append(str(target.resolve()))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(rows))
    swapped = [""] * len(rows)
    for k, i in enumerate(order):  # each takes the next one's audio round the shuffled cycle: never its own
        swapped[i] = audio[order[(k + 1) % len(rows)]]
    written = {}
    for name, paths in (("silence", silence), ("swapped", swapped)):
        target = out_dir / f"{name}.jsonl"
        target.write_text("".join(json.dumps({**r, "audio": p}) + "\n" for r, p in zip(rows, paths)))
        written[name] = target
    return written


__all__ = ["CONTROLS", "write_controls"]
