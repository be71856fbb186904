"""The vectorised STFT equals madmom's per-frame loop: on the STFT itself and on the downbeat RNN's
activations, chords and key of a real recording (a General-MIDI render), so installing it changes no result."""

from __future__ import annotations

import numpy as np
import pytest

from m2ugen_data.analysis import fast_stft


@pytest.fixture
def original_stft():
    """madmom's own loop for the duration of a test, whatever an earlier test installed."""
    fast_stft.install()
    fast_stft.uninstall()
    yield
    fast_stft.install()


@pytest.mark.parametrize("frame_size,origin,n", [(2048, 0, 44100), (1024, 0, 1000), (4096, 512, 30000), (2048, 0, 300)])
def test_frames_and_stft_equal_madmoms_loop(original_stft, frame_size: int, origin: int, n: int) -> None:
    from madmom.audio.signal import FramedSignal, Signal
    from madmom.audio.stft import stft as madmom_loop

    y = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    frames = FramedSignal(Signal(y, sample_rate=44100), frame_size=frame_size, fps=100, origin=origin)
    expected = np.stack([frames[i] for i in range(len(frames))])
    assert np.array_equal(fast_stft.frame_matrix(frames), expected)
    window = np.hanning(frame_size)
    for fft_size, nyquist in ((None, False), (frame_size * 2, True)):
        ours = fast_stft.batched_stft(frames, window, fft_size=fft_size, include_nyquist=nyquist)
        theirs = madmom_loop(frames, window, fft_size=fft_size, include_nyquist=nyquist)
        assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
        assert np.allclose(ours, theirs, rtol=1e-5, atol=1e-4 * np.abs(theirs).max())


@pytest.mark.slow
def test_analysers_give_the_same_results_on_real_audio(original_stft, tmp_path) -> None:
    from m2ugen_data.analysis import harmony, rhythm, tonal
    from m2ugen_data.audio_io import load_audio
    from m2ugen_data.devset.gm import build_gm
    from m2ugen_data.devset.truth import read_truth
    from m2ugen_data.errors import MissingDependencyError

    try:
        build_gm(tmp_path, n=2, seed=3)
    except MissingDependencyError as e:
        pytest.skip(f"GM dev-set tools not installed: {e}")
    path = tmp_path / read_truth(tmp_path).to_pylist()[0]["path"]
    y, _ = load_audio(path, sr=rhythm.SAMPLE_RATE)
    models, chords, key = rhythm.load_rhythm_models(), harmony.load_chord_models(), tonal.load_key_model()

    def run() -> tuple:
        act = rhythm.beat_activations(y, models)
        return act, rhythm.decode_rhythm(act, models), harmony.chord_segments(y, chords), tonal.analyse_key(y, key)

    act0, rh0, ch0, key0 = run()
    fast_stft.install()
    act1, rh1, ch1, key1 = run()
    assert np.abs(act1 - act0).max() < 1e-4
    assert np.array_equal(rh1.beats, rh0.beats) and rh1.tempo_bpm == rh0.tempo_bpm
    assert ch1 == ch0 and key1.name == key0.name
