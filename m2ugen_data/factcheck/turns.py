"""One dialogue turn checked the way its dataset needs: a MUEdit request against the pair's measured
difference, every answer (and a MUImage/MUVideo request) against the target clip.

A sample built from the warehouse carries what was heard in both clips (``DialogueSample.target_heard`` and
``source_heard``); one built directly from facts (a test, a benchmark) is checked against those facts, with
the source known only through the edit difference it carries (its tempo and key).
"""

from __future__ import annotations

from typing import Any

from m2ugen_data.facts.measured import MusicFacts
from m2ugen_data.factcheck.check import pair_heard
from m2ugen_data.factcheck.heard import Heard, heard_from_facts
from m2ugen_data.factcheck.policy import DEFAULT_POLICY, FactPolicy, TextCheck, check_text


def _source(sample: Any) -> Heard:
    if sample.source_heard is not None:
        return sample.source_heard
    d = sample.diff
    return heard_from_facts(MusicFacts(sample.input_id, tempo_bpm=d.tempo_src, key=d.key_src))


def check_turn(sample: Any, side: str, text: str | None, policy: FactPolicy = DEFAULT_POLICY) -> TextCheck:
    """The claim check of ``sample``'s ``side`` (human | gpt) turn ``text`` (a ``dialogues.samples.DialogueSample``)."""
    target = sample.target_heard or heard_from_facts(sample.target)
    pair = pair_heard(_source(sample), target, sample.diff) if sample.diff is not None and side == "human" else None
    mask = sample.input_caption if sample.visual else None  # the picture's caption describes the picture
    return check_text(text, target, pair=pair, policy=policy, mask=mask)
