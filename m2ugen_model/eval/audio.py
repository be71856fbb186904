"""Music generation metrics: FAD, KL over a tagger's outputs, CLAP score, with every model read from a local
directory (no hub access at run time).

- **FAD** (Fréchet Audio Distance, Kilgour et al. 2019): the Fréchet distance between Gaussians fitted to
  clip embeddings of the reference and the generated set, computed with scipy (``frechet_distance``). The
  released evaluation used VGGish, which exists only as TensorFlow/torch-hub weights; here the embedder is any
  local transformers audio model: a CLAP model (``ClapModel``, its projected audio embedding, as the
  ``frechet-audio-distance`` package's CLAP mode does) or an Audio Spectrogram Transformer fine-tuned on
  AudioSet (``ASTModel``, pooled output: the AudioSet-classifier role VGGish had). The table names the model,
  so numbers from different embedders are never compared by accident.
- **KL**: for each generated clip and its reference (paired by file stem), the KL divergence of the reference's
  tag distribution from the generated one's, KL(ref || gen), averaged (as MusicGen/AudioLDM report it). Tags come
  from our MusiCNN taggers (MagnaTagATune + Million Song Dataset, 100 sigmoid outputs, real and offline:
  ``m2ugen_data.analysis.taggers``; the only place the model package uses the pipeline, imported lazily) or from
  a local transformers audio classifier (softmax, or sigmoid when it is multi-label). Sigmoid outputs are
  normalised to sum to one before the KL.
- **CLAP score**: mean cosine similarity between the CLAP text embedding of each prompt and the CLAP audio
  embedding of the music generated for it (``ClapModel`` from a local directory).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr
import torch
from scipy import linalg

from m2ugen_model.infer.media_io import MAX_AUDIO_SECONDS, MediaInputError, read_audio

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg")
KL_EPS = 1e-6
BATCH = 8  # clips embedded at once: what the generation metrics hold in memory, whatever the number of clips


# One reader for the model's front doors: the same length cap, refusal and mono mix as m2ugen-infer.
AudioInputError = MediaInputError


def load_audio(path: str | Path, sample_rate: int, max_seconds: float = MAX_AUDIO_SECONDS) -> np.ndarray:
    """Mono float32 at ``sample_rate``; a bad file, or one longer than ``max_seconds`` (judged from its header
    before decoding), is one ``AudioInputError`` naming it."""
    y, sr = read_audio(path, max_seconds)
    return y if sr == sample_rate else soxr.resample(y, sr, sample_rate).astype(np.float32)


def audio_files(directory: str | Path) -> dict[str, Path]:
    """stem -> file for the audio files directly in ``directory`` (what pairs a generated clip with its reference)."""
    d = _folder(directory)
    return {p.stem: p for p in sorted(d.iterdir()) if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()}


def unread_entries(directory: str | Path) -> list[Path]:
    """What in ``directory`` looks like input but is not read: sub-folders (only the files directly inside are
    read) and audio-named entries that are not regular files. The run records each, so none is left out
    silently."""
    return [p for p in sorted(_folder(directory).iterdir())
            if p.is_dir() or (p.suffix.lower() in AUDIO_SUFFIXES and not p.is_file())]


def _folder(directory: str | Path) -> Path:
    d = Path(directory)
    if not d.is_dir():
        raise FileNotFoundError(f"audio directory {d} " + ("is a file, not a folder of audio files" if d.exists()
                                                            else "does not exist"))
    return d


# ---------------------------------------------------------------------------------------------- formulas
def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to the rows of ``a`` and ``b`` (n x d each):
    |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^1/2). A singular product gets the usual eps * I offset."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    a, b = (a[:, None] if a.ndim == 1 else a), (b[:, None] if b.ndim == 1 else b)  # 1-D: n values
    if len(a) < 2 or len(b) < 2:
        raise ValueError("FAD needs at least two clips per set")
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    covmean = linalg.sqrtm(s_a @ s_b)
    if not np.isfinite(covmean).all():
        offset = np.eye(len(s_a)) * 1e-6
        covmean = linalg.sqrtm((s_a + offset) @ (s_b + offset))
    covmean = covmean.real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2 * np.trace(covmean))


def kl_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """KL(p || q) per row of two (n x k) arrays of non-negative scores, each row normalised to sum to one."""
    p = np.asarray(p, np.float64) + KL_EPS
    q = np.asarray(q, np.float64) + KL_EPS
    p, q = p / p.sum(-1, keepdims=True), q / q.sum(-1, keepdims=True)
    return (p * np.log(p / q)).sum(-1)


# ---------------------------------------------------------------------------------------------- models
def _local_dir(model_dir: str | Path, what: str) -> Path:
    path = Path(model_dir)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{what} model directory {path} has no config.json (models are read locally only)")
    return path


def _pooled(out) -> torch.Tensor:
    """transformers >= 5 returns model outputs from ``get_*_features``; older versions a tensor."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


@dataclass
class AudioEmbedder:
    """One embedding per clip from a local CLAP or AST (or any audio encoder) directory."""

    name: str
    sample_rate: int
    embed_batch: Callable[[list[np.ndarray]], np.ndarray]


@torch.no_grad()
def load_embedder(model_dir: str | Path, device: str = "cpu") -> AudioEmbedder:
    from transformers import AutoConfig, AutoFeatureExtractor, AutoModel, ClapModel, ClapProcessor

    path = _local_dir(model_dir, "embedding")
    model_type = AutoConfig.from_pretrained(path, local_files_only=True).model_type
    if model_type == "clap":
        model = ClapModel.from_pretrained(path, local_files_only=True).to(device).eval()
        fe = ClapProcessor.from_pretrained(path, local_files_only=True).feature_extractor

        def run(clips: list[np.ndarray]) -> np.ndarray:
            inputs = fe(clips, sampling_rate=fe.sampling_rate, return_tensors="pt").to(device)
            with torch.no_grad():
                return _pooled(model.get_audio_features(**inputs)).float().cpu().numpy()
    else:
        model = AutoModel.from_pretrained(path, local_files_only=True).to(device).eval()
        fe = AutoFeatureExtractor.from_pretrained(path, local_files_only=True)

        def run(clips: list[np.ndarray]) -> np.ndarray:
            inputs = fe(clips, sampling_rate=fe.sampling_rate, return_tensors="pt").to(device)
            with torch.no_grad():
                out = model(**inputs)
            pooled = getattr(out, "pooler_output", None)
            return (pooled if pooled is not None else out.last_hidden_state.mean(1)).float().cpu().numpy()

    return AudioEmbedder(f"{model_type}:{path.name}", int(fe.sampling_rate), run)


@dataclass
class Tagger:
    """Tag scores per clip (one row per clip); ``name`` goes into the results table."""

    name: str
    sample_rate: int
    tag: Callable[[np.ndarray], np.ndarray]


def musicnn_tagger() -> Tagger:
    """The pipeline's MusiCNN taggers (MTT + MSD, 100 sigmoid outputs), run on onnxruntime."""
    from m2ugen_data.analysis import taggers  # lazy: the model package otherwise stays free of the pipeline
    from m2ugen_data.errors import M2UGenError

    try:
        models = taggers.load_taggers()
    except M2UGenError as exc:  # checkpoints not installed: the CLI's one-line error
        raise FileNotFoundError(str(exc)) from None

    def tag(y16: np.ndarray) -> np.ndarray:
        out = taggers.tag_audio(y16, models)
        if out is None:
            raise AudioInputError(f"clip too short or not finite for MusiCNN (needs >= {taggers.ONE_PATCH_SAMPLES / taggers.SAMPLE_RATE:.1f} s)")
        return np.concatenate([out["mtt"], out["msd"]])

    return Tagger(taggers.TAGGER_VERSION, taggers.SAMPLE_RATE, tag)


def classifier_tagger(model_dir: str | Path, device: str = "cpu") -> Tagger:
    """A local transformers audio classifier (e.g. AST fine-tuned on AudioSet): softmax over its labels, or
    sigmoid when its config says multi-label."""
    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

    path = _local_dir(model_dir, "tagger")
    model = AutoModelForAudioClassification.from_pretrained(path, local_files_only=True).to(device).eval()
    fe = AutoFeatureExtractor.from_pretrained(path, local_files_only=True)
    multi = model.config.problem_type == "multi_label_classification"

    def tag(y: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            logits = model(**fe([y], sampling_rate=fe.sampling_rate, return_tensors="pt").to(device)).logits[0]
        return (torch.sigmoid(logits) if multi else torch.softmax(logits, -1)).float().cpu().numpy()

    return Tagger(f"{model.config.model_type}:{path.name}", int(fe.sampling_rate), tag)


def load_tagger(spec: str, device: str = "cpu") -> Tagger:
    """``musicnn`` or a local classifier directory."""
    return musicnn_tagger() if spec == "musicnn" else classifier_tagger(spec, device)


@dataclass
class ClapScorer:
    """Cosine similarity of each (text, clip) pair's CLAP embeddings; clips at ``sample_rate``."""

    name: str
    sample_rate: int
    similarity: Callable[[list[str], list[np.ndarray]], np.ndarray]


def load_clap(model_dir: str | Path, device: str = "cpu") -> ClapScorer:
    """A local ClapModel, loaded once and applied to batches of (prompt, clip) pairs."""
    from transformers import ClapModel, ClapProcessor

    path = _local_dir(model_dir, "CLAP")
    model = ClapModel.from_pretrained(path, local_files_only=True).to(device).eval()
    proc = ClapProcessor.from_pretrained(path, local_files_only=True)
    fe = proc.feature_extractor

    def similarity(texts: list[str], clips: list[np.ndarray]) -> np.ndarray:
        with torch.no_grad():
            t_in = proc.tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
            a_in = fe(clips, sampling_rate=fe.sampling_rate, return_tensors="pt")
            t = torch.nn.functional.normalize(_pooled(model.get_text_features(**t_in.to(device))), dim=-1)
            a = torch.nn.functional.normalize(_pooled(model.get_audio_features(**a_in.to(device))), dim=-1)
            return (t * a).sum(-1).float().cpu().numpy()

    return ClapScorer(str(path), int(fe.sampling_rate), similarity)
