"""MusiCNN taggers on onnxruntime: equal to the original TF network, musicnn's front-end, and honest failures.

The reference outputs in ``tests/data/musicnn_reference.npz`` were recorded once by
``tools/musicnn_reference.py`` from musicnn's own TF graph, restored from the same checkpoints, on log-mel
patches of real instrument audio (fluidsynth renders). The tests feed the same patches to our conversion,
through the same onnxruntime sessions and code path that ``tag_audio`` uses.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import librosa
import numpy as np
import pytest
from scipy.special import expit

from m2ugen_data.analysis import taggers
from m2ugen_data.analysis.tf_checkpoint import crc32c
from m2ugen_data.errors import M2UGenError
from paths import DATA

REFERENCE = DATA / "musicnn_reference.npz"
SR = taggers.SAMPLE_RATE
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
ONE_PATCH_SAMPLES = taggers.ONE_PATCH_SAMPLES


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh converted-weights cache, so the module exercises the conversion, not a user's cache."""
    root = tmp_path_factory.mktemp("m2ugen_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("M2UGEN_CACHE", str(root))
        yield root / "musicnn"


@pytest.fixture(scope="module")
def models(cache_dir: Path) -> taggers.TagModels:
    return taggers.load_taggers()


# ---------------------------------------------------------------------------------------------- equality


@pytest.mark.parametrize("key", ["mtt", "msd"])
def test_conversion_equals_original_network(models: taggers.TagModels, key: str) -> None:
    ref = np.load(REFERENCE)
    assert tuple(ref[f"{key}_tags"]) == {"mtt": taggers.MTT_TAGS, "msd": taggers.MSD_TAGS}[key]
    logits = taggers.patch_logits(getattr(models, key), ref["patches"])
    assert logits.dtype == np.float32
    assert np.abs(expit(logits) - ref[f"{key}_probs"]).max() <= 1e-4
    assert np.abs(logits - ref[f"{key}_logits"]).max() <= 1e-4  # logits: a saturated sigmoid hides nothing


def test_tag_audio_equals_original_network(models: taggers.TagModels, monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole inference path of ``tag_audio`` (runs of ``BATCH_PATCHES``, sigmoid, mean over patches) on the
    reference patches: equal to the original network's mean probabilities."""
    ref = np.load(REFERENCE)
    monkeypatch.setattr(taggers, "mel_patches", lambda y: ref["patches"])
    monkeypatch.setattr(taggers, "BATCH_PATCHES", 3)  # 4 patches: two runs
    tags = taggers.tag_audio(np.zeros(SR * 12, np.float32), models)
    assert tags is not None
    for key in ("mtt", "msd"):
        assert tags[key].dtype == np.float32
        assert np.abs(tags[key] - ref[f"{key}_probs"].mean(axis=0)).max() <= 1e-4


def test_cache_is_written_once_and_reloads_identically(models: taggers.TagModels, cache_dir: Path) -> None:
    cached = sorted(cache_dir.glob("*.onnx"))
    assert [path.name.split("-")[0] for path in cached] == ["MSD_musicnn", "MTT_musicnn"]
    written = [(path.stat().st_mtime_ns, path.read_bytes()) for path in cached]
    again = taggers.load_taggers()
    assert [(path.stat().st_mtime_ns, path.read_bytes()) for path in cached] == written  # read, not rewritten
    patches = np.load(REFERENCE)["patches"]
    np.testing.assert_array_equal(taggers.patch_logits(again.mtt, patches), taggers.patch_logits(models.mtt, patches))


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda p: p.write_bytes(b"not an onnx model"), id="garbage"),
        pytest.param(lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), id="truncated"),
        pytest.param(lambda p: p.write_bytes(b""), id="empty"),
    ],
)
def test_unusable_cache_is_converted_again(models: taggers.TagModels, cache_dir: Path, damage) -> None:
    path = next(cache_dir.glob("MTT_musicnn-*.onnx"))
    good = path.read_bytes()
    damage(path)
    ref = np.load(REFERENCE)
    logits = taggers.patch_logits(taggers.load_taggers().mtt, ref["patches"])
    assert np.abs(logits - ref["mtt_logits"]).max() <= 1e-4
    assert path.read_bytes() == good  # rewritten; the conversion is deterministic


def test_sessions_run_on_one_thread(models: taggers.TagModels) -> None:
    """Analysis workers are one process per core; a tagger that spawned its own threads would oversubscribe."""
    for session in (models.mtt, models.msd):
        options = session.get_session_options()
        assert options.intra_op_num_threads == 1 and options.inter_op_num_threads == 1


# ---------------------------------------------------------------------------------------------- front-end


def test_mel_patches_is_musicnn_front_end() -> None:
    t = np.arange(int(SR * 7.0)) / SR
    y = 0.3 * np.sin(2 * np.pi * (200 + 300 * t) * t) + 0.05 * np.random.default_rng(0).standard_normal(t.size)
    y = y.astype(np.float32)
    mel = librosa.feature.melspectrogram(y=y, sr=SR, n_fft=512, hop_length=256, n_mels=96, pad_mode="reflect").T
    expected = np.log10(10000 * mel.astype(np.float16).astype(np.float32) + 1)
    patches = taggers.mel_patches(y)
    assert patches.shape == (2, 187, 96) and patches.dtype == np.float32
    np.testing.assert_array_equal(patches.reshape(-1, 96), expected[: 2 * 187])
    assert librosa.time_to_frames(3, sr=SR, n_fft=512, hop_length=256) + 1 == taggers.PATCH_FRAMES  # musicnn's


def test_loud_audio_stays_finite() -> None:
    """numpy 2 keeps ``10000 * float16`` in float16 (inf above 6.55); a full-scale sine must still be finite."""
    y = np.sin(2 * np.pi * 440 * np.arange(SR * 4) / SR).astype(np.float32)
    assert np.isfinite(taggers.mel_patches(y)).all()


def test_patch_count_boundary() -> None:
    assert taggers.mel_patches(np.zeros(ONE_PATCH_SAMPLES, np.float32)).shape == (1, 187, 96)
    assert taggers.mel_patches(np.zeros(ONE_PATCH_SAMPLES - 1, np.float32)).shape == (0, 187, 96)


@pytest.mark.parametrize(
    "audio",
    [
        pytest.param(np.zeros(ONE_PATCH_SAMPLES - 1, np.float32), id="shorter-than-a-patch"),
        pytest.param(np.zeros(0, np.float32), id="empty"),
        pytest.param(np.full(SR * 5, np.nan, np.float32), id="nan"),
        pytest.param(np.concatenate([np.zeros(SR * 5), [np.inf]]).astype(np.float32), id="inf"),
    ],
)
def test_no_tags_for_unusable_audio(models: taggers.TagModels, audio: np.ndarray) -> None:
    assert taggers.tag_audio(audio, models) is None


def test_stereo_is_a_caller_bug(models: taggers.TagModels) -> None:
    with pytest.raises(ValueError, match="mono"):
        taggers.tag_audio(np.zeros((2, SR * 5), np.float32), models)


def test_tag_audio_shapes(models: taggers.TagModels) -> None:
    y = 0.1 * np.random.default_rng(1).standard_normal(SR * 10).astype(np.float32)
    tags = taggers.tag_audio(y, models)
    assert tags is not None and set(tags) == {"mtt", "msd"}
    for probs in tags.values():
        assert probs.shape == (50,) and probs.dtype == np.float32
        assert ((probs >= 0) & (probs <= 1)).all()


# ---------------------------------------------------------------------------------------------- failures


@pytest.fixture
def model_copy(tmp_path: Path, cache_dir: Path) -> Path:
    """A private copy of the two checkpoints (index and data only) to damage."""
    src = taggers.find_musicnn_dir()
    for name in taggers.MODELS:
        (tmp_path / name).mkdir()
        for part in (".index", ".data-00000-of-00001"):
            shutil.copyfile(src / name / part, tmp_path / name / part)
    return tmp_path


def _flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(path: Path, keep: float) -> None:
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * keep)])


DATA = ".data-00000-of-00001"


@pytest.mark.parametrize(
    ("damage", "bad_file"),
    [
        pytest.param(lambda p: p.unlink(), ".index", id="missing-index"),
        pytest.param(lambda p: p.unlink(), DATA, id="missing-data"),
        pytest.param(lambda p: _truncate(p, 0.5), ".index", id="truncated-index"),
        pytest.param(lambda p: _truncate(p, 0.5), DATA, id="truncated-data"),
        pytest.param(lambda p: _flip_byte(p, 40), ".index", id="corrupt-index-block"),
        # the first variable's bytes (batch_normalization/beta, offset 0) are read and CRC-checked
        pytest.param(lambda p: _flip_byte(p, 1), DATA, id="corrupt-data"),
    ],
)
def test_damaged_checkpoint_is_one_line_error_naming_the_file(model_copy: Path, damage, bad_file: str) -> None:
    path = model_copy / "MTT_musicnn" / bad_file
    damage(path)
    with pytest.raises(M2UGenError) as err:
        taggers.load_taggers(model_copy)
    message = str(err.value)
    assert str(path) in message and "\n" not in message


def test_missing_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("M2UGEN_MUSICNN_DIR", raising=False)
    monkeypatch.setattr(taggers.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(M2UGenError, match=r"pip install --no-deps musicnn==0\.1\.0"):
        taggers.find_musicnn_dir()


def test_env_dir_that_does_not_exist(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("M2UGEN_MUSICNN_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(M2UGenError, match="nowhere"):
        taggers.find_musicnn_dir()


def test_crc32c_check_value() -> None:
    assert crc32c(b"123456789") == 0xE3069283  # the standard CRC-32C check value


# ---------------------------------------------------------------------------------------------- hearing


CHORDS = ((60, 64, 67), (57, 60, 64), (53, 57, 60), (55, 59, 62)) * 2
MELODY = (72, 74, 76, 77, 79, 77, 76, 74, 72, 71, 72, 74, 76, 74, 72, 72)


def _alberti_piece() -> list[tuple[float, float, int, int]]:
    """Eight seconds at 120 bpm of (start beat, beats, pitch, velocity): a quarter-note melody over an
    Alberti bass, the texture on which the MTT tagger hears a GM piano as "piano" (block chords it hears
    as guitar; a tagger trained on recordings has its habits)."""
    notes = []
    for i, (root, third, fifth) in enumerate(CHORDS):
        bass = (root - 12, fifth - 12, third - 12, fifth - 12)
        notes += [(2 * i + 0.5 * k, 0.5, pitch, 60) for k, pitch in enumerate(bass)]
        notes += [(2 * i + k, 1.0, MELODY[2 * i + k], 90) for k in range(2)]
    return notes


def _render(tmp_path: Path, program: int) -> np.ndarray:
    """The piece on one General-MIDI program, rendered by fluidsynth, as 16 kHz mono."""
    import mido
    import soundfile
    import soxr

    events = sorted(
        [(round(start * 480), 1, pitch, vel) for start, _, pitch, vel in _alberti_piece()]
        + [(round((start + beats) * 480), 0, pitch, 0) for start, beats, pitch, _ in _alberti_piece()],
        key=lambda event: (event[0], event[1]),
    )
    track = mido.MidiTrack([mido.Message("program_change", program=program, time=0)])
    now = 0
    for tick, on, pitch, vel in events:
        track.append(mido.Message("note_on" if on else "note_off", note=pitch, velocity=vel, time=tick - now))
        now = tick
    midi = mido.MidiFile(ticks_per_beat=480)
    midi.tracks.append(track)
    mid, wav = tmp_path / "piece.mid", tmp_path / "piece.wav"
    midi.save(mid)
    cmd = ["fluidsynth", "-ni", "-q", "-g", "0.5", "-r", "44100", "-F", str(wav), str(SOUNDFONT), str(mid)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    audio, sr = soundfile.read(wav, dtype="float32", always_2d=True)
    return soxr.resample(audio.mean(axis=1), sr, SR).astype(np.float32)


@pytest.mark.skipif(
    shutil.which("fluidsynth") is None or not SOUNDFONT.is_file(),
    reason="needs Debian's fluidsynth and fluid-soundfont-gm (make setup installs them)",
)
@pytest.mark.parametrize(
    ("program", "tag"),
    [(0, "piano"), (24, "guitar"), (40, "violin"), (73, "flute")],
    ids=["piano", "nylon-guitar", "violin", "flute"],
)
def test_rendered_instrument_is_among_top_tags(models: taggers.TagModels, tmp_path: Path, program: int, tag: str):
    """The same notes on four GM instruments: the tagger names each instrument among its top 3 MTT tags."""
    tags = taggers.tag_audio(_render(tmp_path, program), models)
    assert tags is not None
    top = [taggers.MTT_TAGS[i] for i in np.argsort(-tags["mtt"])[:3]]
    assert tag in top, top
