"""Which measurements may contradict a claim: the analysed tempo and metre (also when too uncertain for a text
to state), and an instrument's absence only under a threshold no present instrument reached."""

from __future__ import annotations

from m2ugen_data.captions import CaptionItem
from m2ugen_data.captions.writer import write_captions
from m2ugen_data.dialogues.samples import DialogueSample, _heard
from m2ugen_data.factcheck.check import CONTRADICTED, SUPPORTED, UNVERIFIABLE
from m2ugen_data.factcheck.heard import Heard, MeasuredTempo, heard_from_rows
from m2ugen_data.factcheck.policy import check_text
from m2ugen_data.factcheck.turns import check_turn
from m2ugen_data.facts.measured import MusicFacts


def _row(bpm: float, conf: float, prob: float, alt: float, meter: int = 4) -> dict:
    return {"status": "ok", "tempo_bpm": bpm, "tempo_conf": conf, "tempo_prob": prob, "tempo_alt_bpm": alt, "meter": meter}


def verdicts(text: str, heard: Heard) -> dict[str, str]:
    return {v.claim.label: v.verdict for v in check_text(text, heard).verdicts}


def test_a_tempo_too_uncertain_to_state_still_contradicts_a_claim_false_at_every_octave():
    h = heard_from_rows("c", _row(176.5, 0.45, 0.79, 117.6, meter=3), None, str)
    assert h.facts.tempo_bpm is None  # a text may not state it (tempo_prob under 0.85) ...
    assert verdicts("The tempo is very slow.", h) == {"tempo very slow": CONTRADICTED}  # ... but 88 and 59 are too fast
    assert verdicts("It runs at about 229 BPM.", h) == {"229 bpm": CONTRADICTED}  # 1.3x: no octave explains it
    assert verdicts("It runs at about 88 BPM.", h) == {"88 bpm": UNVERIFIABLE}  # half: the octave is not sure
    slow = heard_from_rows("c", _row(69.0, 0.45, 0.6, 138.0), None, str)
    assert verdicts("The tempo is very fast.", slow) == {"tempo very fast": UNVERIFIABLE}  # true at double tempo


def test_the_calibrated_tempo_probability_decides_whether_the_octave_is_trusted():
    sure = heard_from_rows("c", _row(78.0, 0.5, 0.87, 156.0), None, str)  # a clear octave, a middling beat clarity
    assert verdicts("The tempo is very fast.", sure) == {"tempo very fast": CONTRADICTED}
    unsure = heard_from_rows("c", _row(78.0, 0.9, 0.6, 156.0), None, str)  # a clear beat, an unsure octave
    assert verdicts("The tempo is very fast.", unsure) == {"tempo very fast": UNVERIFIABLE}


def test_the_metre_speaks_from_a_tempo_probability_of_0_7_with_a_clear_beat():
    assert verdicts("It is in 3/4 time.", heard_from_rows("c", _row(120.0, 0.45, 0.75, 60.0), None, str)) == {
        "meter 3/4": CONTRADICTED}
    assert verdicts("It is in 4/4 time.", heard_from_rows("c", _row(120.0, 0.45, 0.75, 60.0), None, str)) == {
        "meter 4/4": SUPPORTED}
    for row in (_row(120.0, 0.45, 0.6, 60.0), _row(120.0, 0.2, 0.9, 60.0)):  # unsure grid, or no clear beat
        assert verdicts("It is in 3/4 time.", heard_from_rows("c", row, None, str)) == {"meter 3/4": UNVERIFIABLE}


def test_an_instrument_is_absent_only_under_half_its_lowest_present_probability():
    base = {"piano": 0.3, "guitar": 0.3, "strings": 0.3, "violin": 0.3, "cello": 0.3, "flute": 0.3, "synth": 0.3}
    facts = MusicFacts("c", instruments=())
    assert verdicts("A guitar.", Heard(facts, base | {"guitar": 0.025})) == {"guitar": UNVERIFIABLE}  # a real guitar scored 0.018
    assert verdicts("A guitar.", Heard(facts, base | {"guitar": 0.01})) == {"guitar": CONTRADICTED}
    assert verdicts("A flute.", Heard(facts, base | {"flute": 0.001})) == {"flute": UNVERIFIABLE}  # a real flute scored 0.0005
    quiet = base | {"cello": 0.0005, "strings": 0.01}
    assert verdicts("A cello.", Heard(facts, quiet)) == {"cello": CONTRADICTED}


class _VerySlow:
    backend, model = "free", "v1"

    def prompt_hash(self, item: CaptionItem) -> str:
        return "h-" + item.item_id

    def caption_batch(self, items):
        return ["A very slow piece." for _ in items]

    def evidence(self, item):
        return None


def test_caption_and_dialogue_checks_see_the_analysed_tempo(warehouse):
    fast = MeasuredTempo(176.5, 0.45, 0.79, 3)
    item = CaptionItem("abcdefghijk_0", MusicFacts("abcdefghijk_0"), tempo=fast)
    assert write_captions(warehouse, _VerySlow(), [item]).rejected == 1
    facts = MusicFacts("abcdefghijk_0")
    heard = _heard(facts, _row(176.5, 0.45, 0.79, 117.6, meter=3))  # how the dialogue writer reads the warehouse
    sample = DialogueSample("muimage", "abcdefghijk_0", "abcdefghijk_0", "abcdefghijk_0", "a", "b", facts, target_heard=heard)
    assert check_turn(sample, "gpt", "It is a very slow piece.").reasons == ["contradicted:tempo very slow"]
