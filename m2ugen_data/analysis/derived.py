"""Columns derived from stored measurements: tag words and the music score, recomputed without audio.

The expensive measurements (tag probabilities, music-likeness descriptors) are stored per clip; the words
("piano", "mellow", "female vocal") and the music score are cheap functions of them with calibrated
parameters. Keeping that step here, apart from the analysers, lets a new threshold or a re-fitted
music-likeness model update a whole warehouse (``m2ugen-data analyze filter``) or a dev-set cache
(``bench/bench_hearing.py``) in seconds, with exactly the code the analysis pass itself runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from m2ugen_data.analysis import music_likeness, tag_words, taggers

TAG_NAMES: dict[str, tuple[str, ...]] = {"mtt": tuple(taggers.MTT_TAGS), "msd": tuple(taggers.MSD_TAGS)}


def tag_columns(tags: Mapping[str, np.ndarray] | None, rule: tag_words.TagRule = tag_words.DEFAULT_RULE) -> dict[str, Any]:
    """Probabilities and derived sets; all NULL when the tagger could not run (not measured != none)."""
    if tags is None:
        return dict.fromkeys(("tags_mtt", "tags_msd", "instruments", "genres", "moods", "vocals", "tag_thresholds"))
    sets = tag_words.derive_sets(tags, TAG_NAMES, rule)
    return {
        "tags_mtt": np.asarray(tags["mtt"], dtype=np.float32).tolist(),
        "tags_msd": np.asarray(tags["msd"], dtype=np.float32).tolist(),
        "instruments": sets.instruments,
        "genres": sets.genres,
        "moods": sets.moods,
        "vocals": sets.vocals,
        "tag_thresholds": rule.to_json(),
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
) -> dict[str, Any]:
    """Recompute the tag words and the music score of a features row in place (and return it)."""
    tags = stored_tags(row)
    if tags is not None:
        row.update(tag_columns(tags, rule))
    if row.get("music_descriptors"):
        row["music_score"] = (model or music_likeness.load_model()).score(row["music_descriptors"])
    return row
