"""Bounded inputs in `m2ugen-eval generation`: a clip past the length cap is a recorded failure (refused from
its header), a folder where audio files are expected is a recorded failure, and the clips are streamed, so the
number held at once does not grow with the number of clips."""

from __future__ import annotations

import json
import weakref
from pathlib import Path

import numpy as np
import pytest
from entry_points import run_main
import soundfile as sf
from eval_models import write_tiny_ast, write_tiny_clap

from m2ugen_model.eval import audio as A
from m2ugen_model.eval.run import evaluate_generation

SR = 16000


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("eval_models")
    return {"clap": write_tiny_clap(d / "clap"), "ast": write_tiny_ast(d / "ast"),
            "ast_tagger": write_tiny_ast(d / "ast_tagger", num_labels=6)}


def _tone(path: Path, freq: float, seconds: float = 1.0) -> Path:
    t = np.arange(int(SR * seconds)) / SR
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), SR)
    return path


def _sets(root: Path, n: int) -> tuple[Path, Path]:
    gen, ref = root / "gen", root / "ref"
    for i in range(n):
        _tone(gen / f"c{i}.wav", 220.0 + 40 * i)
        _tone(ref / f"c{i}.flac", 220.0 + 40 * i)
    return gen, ref


def _hour(path: Path) -> Path:
    """An hour of 8 kHz silence: 89 KB of FLAC, 115 MB once decoded."""
    with sf.SoundFile(path, "w", samplerate=8000, channels=1, format="FLAC") as f:
        minute = np.zeros(8000 * 60, np.float32)
        for _ in range(60):
            f.write(minute)
    return path


def test_hour_long_clip_is_a_recorded_failure_and_the_run_goes_on(models, tmp_path):
    gen, ref = _sets(tmp_path, 3)
    hour = _hour(gen / "hour.flac")
    r = evaluate_generation(gen, ref, fad_model=models["ast"])
    reasons = {f["item"]: f["reason"] for f in r.failures}
    assert str(hour) in reasons, reasons
    assert "3600 s" in reasons[str(hour)] and "600 s" in reasons[str(hour)] and "\n" not in reasons[str(hour)]
    assert r.counts["fad"] == 3


def _cli(*args: str, monkeypatch, capsys) -> tuple[int, str]:
    from m2ugen_model.eval import cli as eval_cli

    return run_main(eval_cli.main, "m2ugen-eval", list(args), monkeypatch, capsys)


def test_max_audio_seconds_option_sets_the_cap(models, tmp_path, monkeypatch, capsys):
    gen, ref = _sets(tmp_path, 3)
    two = _tone(gen / "two.wav", 500.0, seconds=2.0)
    code, err = _cli("generation", "--generated", str(gen), "--reference", str(ref), "--fad-model",
                     str(models["ast"]), "--max-audio-seconds", "1.5", "--out", str(tmp_path / "out"),
                     monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0, err
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    reasons = {f["item"]: f["reason"] for f in res["failures"]}
    assert "1.5 s" in reasons[str(two)] and res["counts"]["fad"] == 3
    code, err = _cli("generation", "--generated", str(gen), "--max-audio-seconds", "0", "--out",
                     str(tmp_path / "out2"), monkeypatch=monkeypatch, capsys=capsys)
    assert code == 2 and "--max-audio-seconds" in err and "\n" not in err.strip()


def test_folders_among_the_audio_files_are_recorded_failures(models, tmp_path):
    gen, ref = _sets(tmp_path, 3)
    (gen / "sub.wav").mkdir()  # named like audio
    (gen / "more").mkdir()  # a folder of clips that would not be read
    _tone(gen / "more" / "c9.wav", 300.0)
    r = evaluate_generation(gen, ref, fad_model=models["ast"])
    reasons = {f["item"]: f["reason"] for f in r.failures}
    assert set(reasons) == {str(gen / "sub.wav"), str(gen / "more")}, reasons
    assert all("folder" in why for why in reasons.values())
    assert r.counts["fad"] == 3


def _max_clips_held(monkeypatch, models, root: Path, n: int) -> int:
    """The most clips (arrays load_audio returned) alive at once during a run over n generated + n reference
    clips with every audio metric on."""
    gen, ref = _sets(root, n)
    prompts = root / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"c{i}", "prompt": "a tone"}) + "\n" for i in range(n)))
    alive, most = [0], [0]
    real = A.load_audio

    def counted(*args, **kwargs):
        clip = real(*args, **kwargs)
        alive[0] += 1
        most[0] = max(most[0], alive[0])
        weakref.finalize(clip, lambda: alive.__setitem__(0, alive[0] - 1))
        return clip

    monkeypatch.setattr(A, "load_audio", counted)
    r = evaluate_generation(gen, ref, prompts=prompts, fad_model=models["ast"], tagger=str(models["ast_tagger"]),
                            clap_model=models["clap"], adherence=False)
    assert r.counts["fad"] == r.counts["kl"] == r.counts["clap"] == n and not r.failures
    return most[0]


@pytest.mark.slow
def test_clips_held_at_once_do_not_grow_with_the_number_of_clips(models, tmp_path, monkeypatch):
    few = _max_clips_held(monkeypatch, models, tmp_path / "few", 10)
    many = _max_clips_held(monkeypatch, models, tmp_path / "many", 20)
    assert many == few < 20


def test_controls_refuse_audio_past_the_cap_instead_of_writing_its_silence(tmp_path):
    """An hour-long request would have become 230 MB of silence in memory and 115 MB on disk."""
    from m2ugen_model.eval.grounding import write_controls

    _tone(tmp_path / "a.wav", 440.0)
    hour = _hour(tmp_path / "hour.flac")
    reqs = tmp_path / "requests.jsonl"
    reqs.write_text("".join(json.dumps({"id": f"r{i}", "task": "caption", "audio": name}) + "\n"
                            for i, name in enumerate(["a.wav", "hour.flac"])))
    with pytest.raises(ValueError) as exc:
        write_controls(reqs, tmp_path / "ctl")
    line = str(exc.value)
    assert str(hour) in line and "600 s" in line and "\n" not in line
    assert not list((tmp_path / "ctl" / "media").glob("silence-3600*"))
    _tone(tmp_path / "two.wav", 440.0, seconds=2.0)
    reqs.write_text(reqs.read_text().replace("hour.flac", "two.wav"))
    with pytest.raises(ValueError, match="1.5 s limit"):
        write_controls(reqs, tmp_path / "ctl", max_audio_seconds=1.5)
    assert write_controls(reqs, tmp_path / "ctl", max_audio_seconds=3)  # the cap raised, as m2ugen-infer's
