"""Music tags from MusiCNN (MagnaTagATune and Million Song Dataset top-50), offline, on onnxruntime.

Why this model: the ``musicnn`` 0.1.0 wheel is the only pip-installable package here that carries trained
music taggers (instruments, voice, genre, mood, era). Its code needs TensorFlow 1 and numpy < 1.17, so we use
its checkpoints only: ``pip install --no-deps musicnn==0.1.0`` puts them on disk, ``tf_checkpoint`` reads
them without TensorFlow and ``musicnn_net`` turns them into an ONNX graph that onnxruntime runs on one thread
(why onnxruntime, and what else was measured: ``musicnn_net``'s docstring). The conversion runs once per
checkpoint and is cached as an ONNX file, keyed by the checkpoint's hash.

The front-end is musicnn's: librosa mel power (16 kHz, n_fft 512, hop 256, 96 bands), rounded to float16
as musicnn stores it, then log10(10000 x + 1) in float32, cut into non-overlapping 187-frame (3 s) patches
(musicnn's default for tagging). Checked against musicnn's own ``batch_data`` (numpy 1.26, librosa 0.11):
bit-identical except the first and last frame, where we pin librosa's padding to "reflect", the default of
the librosa that musicnn was released and trained with (librosa >= 0.10 pads with zeros). A clip's tags are
the mean over its patches of the per-patch sigmoid probabilities, as musicnn's ``top_tags`` computes them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import librosa
import numpy as np
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors
from scipy.special import expit

from m2ugen_data.analysis import tf_checkpoint
from m2ugen_data.analysis.musicnn_net import INPUT_NAME, onnx_model, tf_variable_names, weights_from_tf
from m2ugen_data.atomic import atomic_path
from m2ugen_data.errors import M2UGenError

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
N_FFT = 512
HOP = 256
N_MELS = 96
PATCH_FRAMES = 187  # librosa.time_to_frames(3 s, sr 16000, n_fft 512, hop 256) + 1, as musicnn computes it
ONE_PATCH_SAMPLES = (PATCH_FRAMES - 1) * HOP  # centred frames: a clip of n samples has 1 + n // HOP frames
LOG_GAIN = 10000.0
BATCH_PATCHES = 16  # patches per run: bounds memory on long clips (one patch's largest conv map is ~10 MB)

MTT_TAGS: tuple[str, ...] = (
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast", "piano",
    "ambient", "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male", "singing",
    "vocals", "no vocals", "harpsichord", "loud", "quiet", "flute", "woman", "male vocal", "no vocal", "pop",
    "soft", "sitar", "solo", "man", "classic", "choir", "voice", "new age", "dance", "male voice",
    "female vocal", "beats", "harp", "cello", "no voice", "weird", "country", "metal", "female voice", "choral",
)  # fmt: skip
MSD_TAGS: tuple[str, ...] = (
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s",
    "alternative rock", "jazz", "beautiful", "metal", "chillout", "male vocalists", "classic rock", "soul",
    "indie rock", "Mellow", "electronica", "80s", "folk", "90s", "chill", "instrumental", "punk", "oldies",
    "blues", "hard rock", "ambient", "acoustic", "experimental", "female vocalist", "guitar", "Hip-Hop", "70s",
    "party", "country", "easy listening", "sexy", "catchy", "funk", "electro", "heavy metal",
    "Progressive rock", "60s", "rnb", "indie pop", "sad", "House", "happy",
)  # fmt: skip

MUSICNN_VERSION = "0.1.0"
CONVERTER_VERSION = "ort1"  # bump when musicnn_net's graph or the runtime changes: invalidates caches
MODELS: dict[str, tuple[str, ...]] = {"MTT_musicnn": MTT_TAGS, "MSD_musicnn": MSD_TAGS}
TAGGER_VERSION = f"musicnn-{MUSICNN_VERSION}:{'+'.join(MODELS)}:{CONVERTER_VERSION}"
INSTALL_HINT = f"install its checkpoints with 'pip install --no-deps musicnn=={MUSICNN_VERSION}'"


# what onnxruntime raises for bytes that are not a model it can run (they derive from Exception only)
_ORT_LOAD_ERRORS = (
    ort_errors.InvalidProtobuf, ort_errors.InvalidGraph, ort_errors.InvalidArgument, ort_errors.Fail,
    ort_errors.NotImplemented, ort_errors.RuntimeException,
)  # fmt: skip


@dataclass(frozen=True)
class TagModels:
    """The two converted taggers as onnxruntime sessions (input (batch, 187, 96) patches, output logits)."""

    mtt: ort.InferenceSession
    msd: ort.InferenceSession
    source: Path  # the musicnn package directory the checkpoints came from


# ---------------------------------------------------------------------------------------------- locating


def find_musicnn_dir(explicit: Path | None = None) -> Path:
    """The directory holding ``MTT_musicnn/`` and ``MSD_musicnn/``: explicit, $M2UGEN_MUSICNN_DIR, or the
    installed ``musicnn`` package, located without importing it (its ``__init__`` is harmless, but its
    modules import TensorFlow)."""
    chosen = explicit or (Path(os.environ["M2UGEN_MUSICNN_DIR"]) if os.environ.get("M2UGEN_MUSICNN_DIR") else None)
    if chosen is not None:
        if not chosen.is_dir():
            raise M2UGenError(f"MusiCNN model directory {chosen} does not exist; {INSTALL_HINT}")
        return chosen
    spec = importlib.util.find_spec("musicnn")
    if spec is None or not spec.submodule_search_locations:
        raise M2UGenError(f"the musicnn package is not installed; {INSTALL_HINT} or set M2UGEN_MUSICNN_DIR")
    return Path(next(iter(spec.submodule_search_locations)))


def _cache_dir() -> Path:
    """$M2UGEN_CACHE (shared with other converted models) or ~/.cache/m2ugen/musicnn."""
    root = os.environ.get("M2UGEN_CACHE")
    return Path(root) / "musicnn" if root else Path.home() / ".cache" / "m2ugen" / "musicnn"


# ---------------------------------------------------------------------------------------------- loading


def _checkpoint_hash(index: tf_checkpoint.CheckpointIndex) -> str:
    """SHA-256 over the index and data files: a changed or re-downloaded checkpoint gets a new cache entry."""
    digest = hashlib.sha256(CONVERTER_VERSION.encode())
    for path in (index.path, *(index.data_path(shard) for shard in range(index.num_shards))):
        try:
            with path.open("rb") as fh:
                digest.update(hashlib.file_digest(fh, "sha256").digest())
        except OSError as exc:
            raise M2UGenError(f"cannot read TensorFlow checkpoint file {path}: {exc.strerror}") from None
    return digest.hexdigest()


def _read_cache(path: Path) -> bytes | None:
    """A cached ONNX model's bytes, or None when absent or unreadable (then we convert again)."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("ignoring unreadable MusiCNN cache %s (%s); converting again", path, exc.strerror)
        return None


def _write_cache(path: Path, model: bytes) -> None:
    """Atomic write; a read-only cache directory costs a conversion per process, not a failure."""
    try:
        with atomic_path(path) as tmp:
            tmp.write_bytes(model)
    except OSError as exc:
        log.warning("cannot cache converted MusiCNN model at %s (%s); it will be converted again", path, exc)


def _session(model: bytes, num_tags: int) -> ort.InferenceSession:
    """One-thread session (analysis workers are one process per core) with every graph optimization: MLAS's
    blocked conv layout is what makes onnxruntime fast here. ValueError when the model is not a tagger of
    ``num_tags`` tags; onnxruntime's own errors (``_ORT_LOAD_ERRORS``) when it is not a model at all."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    if inp.name != INPUT_NAME or inp.shape[1:] != ["time", N_MELS] or out.shape[1:] != [num_tags]:
        raise ValueError(f"input {inp.name} {inp.shape}, output {out.shape}; expected {num_tags} tags")
    return session


def _first_line(exc: Exception) -> str:
    """onnxruntime's messages can span lines; ours are one line."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def load_model(checkpoint_dir: Path, num_tags: int) -> ort.InferenceSession:
    """One tagger from the cached ONNX file when its checkpoint hash matches and it loads, else converted from
    the checkpoint (and cached)."""
    index = tf_checkpoint.read_index(checkpoint_dir / ".index")
    cache = _cache_dir() / f"{checkpoint_dir.name}-{_checkpoint_hash(index)[:16]}.onnx"
    cached = _read_cache(cache)
    if cached is not None:
        try:
            return _session(cached, num_tags)
        except (*_ORT_LOAD_ERRORS, ValueError) as exc:
            log.warning("ignoring unusable MusiCNN cache %s (%s); converting again", cache, _first_line(exc))
    weights = weights_from_tf(tf_checkpoint.read_tensors(index, tf_variable_names()))
    if weights.num_classes != num_tags:
        raise M2UGenError(f"{checkpoint_dir} has {weights.num_classes} outputs, expected {num_tags} tags")
    model = onnx_model(weights, N_MELS)
    try:
        session = _session(model, num_tags)
    except (*_ORT_LOAD_ERRORS, ValueError) as exc:  # a bug or an onnxruntime too old for the graph's opset
        raise M2UGenError(
            f"onnxruntime {ort.__version__} cannot load the MusiCNN graph converted from {checkpoint_dir}: "
            f"{_first_line(exc)}"
        ) from None
    _write_cache(cache, model)
    return session


def load_taggers(model_dir: Path | None = None) -> TagModels:
    """Both taggers from the musicnn package (see ``find_musicnn_dir``); call once per process."""
    root = find_musicnn_dir(model_dir)
    mtt, msd = (load_model(root / name, len(tags)) for name, tags in MODELS.items())
    return TagModels(mtt=mtt, msd=msd, source=root)


# ---------------------------------------------------------------------------------------------- inference


def log_mel(y16: np.ndarray) -> np.ndarray:
    """musicnn's log-mel (frames, 96) of 16 kHz mono audio.

    The mel power is rounded to float16 as musicnn does (and as its training data was stored); the log is
    taken in float32 explicitly. Under musicnn's numpy (< 2) ``10000 * x`` on a float16 array is promoted to
    float32 by value-based casting; numpy 2 keeps float16 and would overflow to inf above x = 6.55, which a
    -10 dBFS sine already reaches. ``pad_mode="reflect"`` was librosa's default when musicnn was released
    (librosa >= 0.10 pads with zeros); it only changes the first and last frame.
    """
    mel = librosa.feature.melspectrogram(
        y=np.asarray(y16, dtype=np.float32), sr=SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS,
        pad_mode="reflect",
    )  # fmt: skip
    with np.errstate(over="ignore"):  # a mel power above float16's range becomes inf; tag_audio refuses it
        mel16 = mel.T.astype(np.float16).astype(np.float32)
    return np.log10(LOG_GAIN * mel16 + 1.0)


def mel_patches(y16: np.ndarray) -> np.ndarray:
    """Non-overlapping 187-frame (3 s) log-mel patches, (n_patches, 187, 96) float32; the tail that does
    not fill a patch is dropped, as musicnn does. Shorter than one patch: zero patches."""
    if len(y16) < ONE_PATCH_SAMPLES:  # also spares librosa signals too short to pad
        return np.zeros((0, PATCH_FRAMES, N_MELS), np.float32)
    frames = log_mel(y16)
    n_patches = len(frames) // PATCH_FRAMES
    return np.ascontiguousarray(frames[: n_patches * PATCH_FRAMES].reshape(n_patches, PATCH_FRAMES, N_MELS))


def patch_logits(session: ort.InferenceSession, patches: np.ndarray) -> np.ndarray:
    """Tag logits per patch (n_patches, n_tags) float32, in runs of ``BATCH_PATCHES`` patches."""
    chunks = [
        session.run(None, {INPUT_NAME: np.ascontiguousarray(patches[i : i + BATCH_PATCHES], dtype=np.float32)})[0]
        for i in range(0, len(patches), BATCH_PATCHES)
    ]
    return np.concatenate(chunks)


def tag_audio(y16: np.ndarray, models: TagModels) -> dict[str, np.ndarray] | None:
    """{"mtt": (50,), "msd": (50,)} mean per-patch probabilities of a 16 kHz mono clip.

    None (never a guessed tag) when the clip is shorter than one 3 s patch, or when the audio, its log-mel
    or the network's output is not finite. Multi-channel input is the caller's bug: ValueError.
    """
    y = np.asarray(y16, dtype=np.float32)
    if y.ndim != 1:
        raise ValueError(f"tag_audio wants mono audio (one dimension), got shape {y.shape}")
    if not np.isfinite(y).all():
        return None
    patches = mel_patches(y)
    if len(patches) == 0 or not np.isfinite(patches).all():
        return None
    tags = {key: expit(patch_logits(getattr(models, key), patches)).mean(axis=0) for key in ("mtt", "msd")}
    if not all(np.isfinite(p).all() for p in tags.values()):
        return None
    return tags
