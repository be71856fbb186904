"""Fit the hearing layer's shipped parameters on every dev-set clip and write them as package data.

- ``m2ugen_data/analysis/data/tempo_octave.json``: the tempo decision (conditional logit over candidate
  grids) on every GM and scores clip, its calibration on out-of-source predictions
  (``tempo_octave.fit_model``);
- ``data/instrument_head.json``: the instrument head on every GM and scores clip, thresholds from
  out-of-soundfont predictions (``instrument_head.fit_head``);
- ``data/music_likeness.json``: the music-likeness score on every clip of the three sets
  (``music_likeness.fit_model``).

Each file records what it was fitted on (sets, sources, soundfonts, clip counts, date). How well these
fits do on music they have not seen is what ``bench/bench_hearing.py`` measures, leave-one-source-out, with
the same fitting functions. A new tempo model changes ``analyze.ANALYSER_VERSION`` (warehouses re-analyse);
a new head or likeness model re-derives stored rows without audio (``m2ugen-data analyze filter``).

    .venv/bin/python bench/fit_hearing.py [--devsets .devsets] [--only tempo,instruments,likeness]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hearing_sets import head_inputs, load_clips  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PARTS = ("tempo", "instruments", "likeness")


def _provenance(clips, key) -> dict:
    return {
        "clips": len(clips),
        "by_set": dict(sorted(Counter(c.set for c in clips).items())),
        "by_" + key: dict(sorted(Counter(getattr(c, key) or "?" for c in clips).items())),
        "date": dt.date.today().isoformat(),
        "tool": "bench/fit_hearing.py",
    }


def _write(path: Path, spec: dict) -> None:
    from m2ugen_data.atomic import write_bytes_atomic

    write_bytes_atomic(path, (json.dumps(spec, indent=1) + "\n").encode())
    print(f"wrote {path}")


def main() -> None:
    from m2ugen_data.analysis import instrument_head, music_likeness, tempo_octave

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devsets", type=Path, default=REPO / ".devsets")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--only", default=",".join(PARTS), help=f"comma-separated subset of {PARTS}")
    args = ap.parse_args()
    parts = set(args.only.split(","))
    clips = load_clips(args.devsets, args.workers)
    today = dt.date.today().isoformat()
    if "tempo" in parts:
        tc = [c for c in clips if c.has_tempo_truth and c.octave_inputs() is not None]
        model = tempo_octave.fit_model([c.octave_inputs() for c in tc], [c.truth["tempo_bpm"] for c in tc],
                                       [c.source for c in tc], f"octave-fit-{today}")  # fmt: skip
        _write(tempo_octave.MODEL_FILE, model.to_json(_provenance(tc, "source")))
    if "instruments" in parts:
        ic = [c for c in clips if c.has_tempo_truth and c.row.get("tags_mtt") is not None]
        head = instrument_head.fit_head(head_inputs(ic), [c.truth["families"] for c in ic], [c.soundfont or "?" for c in ic],
                                        f"head-fit-{today}")  # fmt: skip
        _write(instrument_head.MODEL_FILE, head.to_json(_provenance(ic, "soundfont") | {"thresholds_from": "leave-one-soundfont-out"}))
        for w, t in zip(head.words, head.thresholds):
            print(f"  {w}: threshold {t:.3f}" if np.isfinite(t) else f"  {w}: never said (no threshold reaches the precision target)")
    if "likeness" in parts:
        lc = [c for c in clips if c.row.get("status") == "ok" and c.row.get("music_descriptors")]
        x = np.array([c.row["music_descriptors"] for c in lc])
        y = np.array([float(c.truth.get("is_music", True)) for c in lc])
        model = music_likeness.fit_model(x, y, f"likeness-fit-{today}")
        _write(music_likeness.MODEL_FILE, music_likeness.model_to_json(model, _provenance(lc, "source") | {"music": int(y.sum()), "non_music": int((1 - y).sum())}))


if __name__ == "__main__":
    main()
