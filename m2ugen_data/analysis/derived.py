"""Columns derived from stored measurements: tag words and the music score, recomputed without audio.

The expensive measurements (tag probabilities, music-likeness descriptors) are stored per clip; the words
("piano", "mellow", "female vocal") and the music score are cheap functions of them with calibrated
parameters. Keeping that step here, apart from the analysers, lets a new threshold or a re-fitted
music-likeness model update a whole warehouse (``m2ugen-data analyze filter``) or a dev-set cache
(``bench/bench_hearing.py``) in seconds, with exactly the code the analysis pass itself runs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from m2ugen_data.analysis import instrument_head, music_likeness, tag_words, taggers

TAG_NAMES: dict[str, tuple[str, ...]] = {"mtt": tuple(taggers.MTT_TAGS), "msd": tuple(taggers.MSD_TAGS)}


def tag_columns(
    tags: Mapping[str, np.ndarray] | None,
    rule: tag_words.TagRule = tag_words.DEFAULT_RULE,
    timbre: Sequence[float] | None = None,
    head: instrument_head.InstrumentHead | None | bool = True,
) -> dict[str, Any]:
    """Probabilities and derived sets; all NULL when the tagger could not run (not measured != none).

    Instrument words come from the calibrated head (``instrument_head``; ``head=True``: the shipped one) for
    the words it covers, from the tag thresholds for the rest; without a head or a timbre vector, all from
    the thresholds. ``tag_thresholds`` records which head (its version) and rule derived the sets."""
    if tags is None:
        return dict.fromkeys(("tags_mtt", "tags_msd", "instruments", "genres", "moods", "vocals", "tag_thresholds"))
    sets = tag_words.derive_sets(tags, TAG_NAMES, rule)
    model = instrument_head.load_head() if head is True else (head or None)
    instruments = sets.instruments
    if model is not None and timbre is not None and len(timbre) == 24:
        said = model.words_for(instrument_head.features(tags, timbre), rule.max_instruments)
        rest = [w for w in sets.instruments if w not in model.words]
        instruments = (said + rest)[: rule.max_instruments]
    provenance = json.loads(rule.to_json()) | {"instrument_head": model.version if model is not None else None}
    return {
        "tags_mtt": np.asarray(tags["mtt"], dtype=np.float32).tolist(),
        "tags_msd": np.asarray(tags["msd"], dtype=np.float32).tolist(),
        "instruments": instruments,
        "genres": sets.genres,
        "moods": sets.moods,
        "vocals": sets.vocals,
        "tag_thresholds": json.dumps(provenance, sort_keys=True),
    }


def stored_tags(row: Mapping[str, Any]) -> dict[str, np.ndarray] | None:
    """The tag probabilities a features row holds, or None when it has none (old or failed analysis)."""
    mtt, msd = row.get("tags_mtt"), row.get("tags_msd")
    if mtt is None or msd is None:
        return None
    return {"mtt": np.asarray(mtt, dtype=np.float64), "msd": np.asarray(msd, dtype=np.float64)}


def rederive(
    row: dict[str, Any],
    rule: tag_words.TagRule = tag_words.DEFAULT_RULE,
    model: music_likeness.LikenessModel | None = None,
    head: instrument_head.InstrumentHead | None | bool = True,
) -> dict[str, Any]:
    """Recompute the tag words and the music score of a features row in place (and return it)."""
    tags = stored_tags(row)
    if tags is not None:
        row.update(tag_columns(tags, rule, row.get("timbre"), head))
    if row.get("music_descriptors"):
        row["music_score"] = (model or music_likeness.load_model()).score(row["music_descriptors"])
    return row
