"""Bounded input in ``m2ugen-eval generation``: clips stream a batch at a time (memory constant in the number
of clips), a clip longer than the limit is a recorded failure refused from its header, and an entry named like
audio that is not a file (a directory ``x.wav``) is a recorded failure, not silently left out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from m2ugen_model.eval.report import Report
from m2ugen_model.eval.run import _clip_batches, evaluate_generation


def _tone(path: Path, seconds: float, sr: int = 16000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    sf.write(path, (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), sr)
    return path


def test_clips_stream_in_batches_and_a_long_clip_is_a_failure_not_decoded(tmp_path, monkeypatch):
    files = {f"c{i:02d}": _tone(tmp_path / f"c{i:02d}.wav", 0.2) for i in range(20)}
    files["long"] = _tone(tmp_path / "long.flac", 30.0, sr=8000)
    real_read = sf.read

    def read(path, *args, **kwargs):
        assert not str(path).endswith("long.flac"), "the long clip was decoded"
        return real_read(path, *args, **kwargs)

    monkeypatch.setattr(sf, "read", read)
    report, bad = Report("generation"), set()
    sizes = [len(clips) for _, clips in _clip_batches(files, 16000, report, bad, max_seconds=10.0, size=8)]
    assert sizes == [8, 8, 4]
    assert bad == {"long"} and len(report.failures) == 1
    assert report.failures[0]["item"].endswith("long.flac") and "10 s limit" in report.failures[0]["reason"]


def test_a_directory_named_like_audio_is_a_recorded_failure(tmp_path):
    gen = tmp_path / "gen"
    _tone(gen / "a.wav", 0.5)
    (gen / "b.wav").mkdir()
    report = evaluate_generation(gen, adherence=False)
    assert [f["item"] for f in report.failures] == [str(gen / "b.wav")]
    assert "not a regular file" in report.failures[0]["reason"]
