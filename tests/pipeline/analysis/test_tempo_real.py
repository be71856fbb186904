"""The tempo decision on real renders with exact truth, at the octave cases that went wrong on music from
unseen sources: slow pieces with running eighths or sixteenths (the beat tracker decodes them at double
tempo), a jig in 6/8 (decoded at 3/2 of its dotted-quarter beat), and pieces the tracker already gets right
(a slow air, a fast waltz), which the decision must not break.

Each piece is written here in ABC, read by music21 (``devset.scores``: the beat grid and the tempo are
exact) and rendered by fluidsynth with FluidR3, then analysed by the full pipeline with the shipped tempo
model. What a caption may say follows from ``tempo_prob``: the tests hold the decision to never being
confidently wrong here; being right on most of these cases is the target, marked as not met (strict xfail). Needs fluidsynth, the FluidR3 soundfont and
music21 (``make setup``); skips without them."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

pytestmark = pytest.mark.slow

# name -> (ABC, beats per minute of the metre's beat, GM program per voice, what the plain beat tracker does)
PIECES = {
    "ballad at 66 (running eighths)": (
        "X:1\nM:4/4\nL:1/8\nK:C\nV:1\n|: e4 d2 c2 | d6 z2 | c4 B2 A2 | G6 z2 | e4 f2 g2 | a4 g4 | f2 e2 d2 c2 | c6 z2 :|\n"
        "V:2 clef=bass\n|: C,G,EG C,G,EG | G,,D,B,D G,,D,B,D | A,,E,CE A,,E,CE | E,,B,,G,B, E,,B,,G,B, | C,G,EG C,G,EG"
        " | F,,C,A,C F,,C,A,C | G,,D,B,D G,,D,B,D | C,G,EG C,G,EG :|\n",
        66.0, {0: 0, 1: 0}, "x2",
    ),
    "ballad at 72 (running sixteenths)": (
        "X:2\nM:4/4\nL:1/16\nK:G\nV:1\n|: B8 A4 G4 | A12 z4 | G8 F4 E4 | D12 z4 :|\nV:2 clef=bass\n"
        "|: G,,D,G,B, G,,D,G,B, G,,D,G,B, G,,D,G,B, | D,,A,,D,F, D,,A,,D,F, D,,A,,D,F, D,,A,,D,F,"
        " | E,,B,,E,G, E,,B,,E,G, C,,G,,C,E, C,,G,,C,E, | D,,A,,D,F, D,,A,,D,F, D,,A,,D,F, D,,A,,D,F, :|\n",
        72.0, {0: 73, 1: 0}, "x2",
    ),
    "jig in 6/8 at 104": (
        "X:3\nM:6/8\nL:1/8\nK:D\n|: A | dfa afd | cec ABc | dfa gfe | fdc d2 :|\n|: e | fef gfg | afd d2 e | fef gfe | dBA d2 :|\n",
        104.0, {0: 40}, "x3/2",
    ),
    "slow air at 58": (
        "X:4\nM:4/4\nL:1/8\nK:G\nV:1\n|: GABc dedB | cBAG A2 D2 | GABc dedg | fedc B2 G2 :|\nV:2 clef=bass\n"
        "|: G,,4 D,4 | E,4 D,4 | G,,4 B,,4 | D,4 G,,4 :|\n",
        58.0, {0: 73, 1: 32}, "right",
    ),
    "waltz at 168": (
        "X:5\nM:3/4\nL:1/4\nK:C\nV:1\n|: e2 g | f2 d | e2 c | d3 | e2 g | a2 f | g2 e | c3 :|\nV:2 clef=bass\n"
        "|: C, [EG] [EG] | G,, [FB] [FB] | C, [EG] [EG] | G,, [DG] [DG] | C, [EG] [EG] | F,, [FA] [FA] | G,, [EG] [EG]"
        " | C, [EG] [EG] :|\n",
        168.0, {0: 0, 1: 0}, "right",
    ),
}  # fmt: skip


def _render(abc: str, bpm: float, programs: dict[int, int], path) -> np.ndarray:
    import soundfile as sf
    from music21 import converter

    from m2ugen_data.devset import scores
    from m2ugen_data.devset.gm import cut_excerpt
    from m2ugen_data.devset.render import find_tools, midi_bytes, render_latency_s, render_midi

    tools = find_tools()
    piece = scores.piece_from_score(converter.parse(abc, format="abc"), bpm, programs)
    y = render_midi(tools, midi_bytes(scores.truncated(piece.midi, piece.end_s)))
    sf.write(path, cut_excerpt(y, render_latency_s(tools), -18.0), 44100)
    return piece.beats[piece.beats < 10.0]


@pytest.fixture(scope="module")
def analysed(tmp_path_factory) -> dict[str, tuple[dict, np.ndarray, float]]:
    if shutil.which("fluidsynth") is None:
        pytest.skip("needs fluidsynth (scripts/devset-deps.sh gm)")
    pytest.importorskip("music21")
    from m2ugen_data.analysis.analyze import analyse_file
    from m2ugen_data.errors import MissingDependencyError

    out = {}
    tmp = tmp_path_factory.mktemp("tempo_real")
    for i, (name, (abc, bpm, programs, _)) in enumerate(PIECES.items()):
        try:
            beats = _render(abc, bpm, programs, tmp / f"{i}.flac")
        except MissingDependencyError as e:
            pytest.skip(str(e))
        row, _ = analyse_file(f"tempoReal{i:02d}_0", tmp / f"{i}.flac")
        out[name] = (row, beats, bpm)
    return out


def test_the_plain_beat_tracker_makes_the_octave_errors_these_pieces_are_for(analysed) -> None:
    """The cases are what they say: the DBN's own tempo is off by the stated factor (or right)."""
    from m2ugen_data.devset import metrics

    factors = {"right": 1.0, "x2": 2.0, "x3/2": 1.5}
    for name, (row, _, bpm) in analysed.items():
        expected = factors[PIECES[name][3]]
        assert metrics.tempo_acc1(bpm * expected, row["tempo_raw_bpm"]), (name, row["tempo_raw_bpm"])


def test_a_wrong_tempo_is_never_confident_and_octave_errors_keep_the_truth_as_runner_up(analysed) -> None:
    """What the text layer relies on: where the decision is wrong its tempo_prob stays below the caption
    threshold (no number is said), and where the tracker doubled the tempo the true tempo is the chosen one
    or the runner-up, so a tempo word is said only if it is true at the truth too."""
    from m2ugen_data.facts.measured import facts_from_rows
    from m2ugen_data.facts.rules import TEMPO_PROB_MIN
    from m2ugen_data.devset import metrics

    for name, (row, _, bpm) in analysed.items():
        right = metrics.tempo_acc1(bpm, row["tempo_bpm"])
        assert right or row["tempo_prob"] < TEMPO_PROB_MIN, (name, row["tempo_bpm"], row["tempo_prob"])
        if PIECES[name][3] == "x2":
            assert right or metrics.tempo_acc1(bpm, row["tempo_alt_bpm"]), (name, row["tempo_bpm"], row["tempo_alt_bpm"])
        said = facts_from_rows(row["clip_id"], row, None, str).tempo_bpm
        assert said is None or metrics.tempo_acc1(bpm, said), (name, said)


@pytest.mark.xfail(strict=True, reason="not met: the fitted decision keeps the beat tracker's grid on these slow "
                   "pieces and the jig (leave-one-source-out Acc1 0.69 over the dev sets, docs/BENCHMARKS.md)")
def test_most_octave_cases_are_decided_right(analysed) -> None:
    from m2ugen_data.devset import metrics

    right = sum(metrics.tempo_acc1(bpm, row["tempo_bpm"]) for row, _, bpm in analysed.values())
    assert right >= 4


def test_beats_follow_the_chosen_grid(analysed) -> None:
    from m2ugen_data.devset import metrics

    for name, (row, beats, bpm) in analysed.items():
        if metrics.tempo_acc1(bpm, row["tempo_bpm"]):
            assert metrics.beat_f(beats, row["beats"]) > 0.8, name
