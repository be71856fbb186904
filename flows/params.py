"""Typed flow parameters, grouped so a deployment run can override one group at a time.

Prefect merges a run's parameters over the deployment's at the top level only, so each group is one
top-level flow parameter: ``--param synthetic='{"n": 12}'`` replaces the ``synthetic`` group, and fields left
out of it take the defaults below (never another group's values). Every model is frozen and forbids unknown
fields, so a typo in a parameter fails the run at validation instead of being silently ignored.
The default values live once in ``m2ugen_data.defaults`` (and ``PairRules``), shared with the CLI.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from m2ugen_data import defaults as D
from m2ugen_data.pairs.rules import PairRules

Source = Literal["synthetic", "audioset"]
Pool = Literal["mucaps", "muedit", "muimage", "muvideo"]
CaptionBackend = Literal["grounded", "mu-llama"]
DialogueBackend = Literal["template", "transformers", "openai", "vllm"]
VisualCaptionBackend = Literal["grounded", "blip", "video-gpt2", "videomae-labels"]
RunnerKind = Literal["thread", "process", "dask"]
OFFICIAL_SEGMENT_LISTS = D.SEGMENT_LISTS


class _Params(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SyntheticSource(_Params):
    """The synthetic corpus (``m2ugen_data.synth``): rendered once into ``corpus_dir``, then imported."""

    corpus_dir: str | None = Field(None, description="Corpus directory (default <warehouse>/synth).")
    n: int = Field(D.SYNTH_CLIPS, ge=1, description="Clips to render.")
    seed: int = D.SYNTH_SEED
    sibling_fraction: float = Field(D.SYNTH_SIBLING_FRACTION, ge=0.0, le=1.0, description="Clips rendered as sibling groups (MUEdit pairs).")
    trouble_fraction: float = Field(D.SYNTH_TROUBLE_FRACTION, ge=0.0, le=1.0, description="Clips with silence, clipping, speech or too short.")
    plant_contamination: bool = Field(
        False, description="Add two labelled clips: one under a MusicCaps evaluation ID (selection rejects it) and "
        "a shifted, quieter copy of another clip (dedup groups them). The demo turns it on.",
    )


class AudioSetSource(_Params):
    """The official AudioSet lists and ontology; downloads through yt-dlp (needs network)."""

    segments: list[str] = Field(
        default_factory=lambda: list(OFFICIAL_SEGMENT_LISTS),
        description="Segment CSVs: official names (balanced_train, eval, unbalanced_train), paths or URLs.",
    )
    ontology: str | None = Field(None, description="Ontology path or URL (default: the bundled copy).")
    limit: int | None = Field(None, ge=1, description="Select at most this many segments (trial runs).")
    exclude_labels: list[str] = Field(default_factory=list, description="Drop segments with labels in these subtrees.")
    exclude_eval: list[str] = Field(
        default_factory=list, description="Evaluation lists (CSV paths, NAME=PATH) whose segments training must not "
        "hold, added to the bundled ones (MusicCaps).",
    )
    default_eval: bool = Field(True, description="Also exclude the bundled evaluation lists (MusicCaps).")
    require_instrument: bool = False
    url_template: str = D.URL_TEMPLATE
    download_concurrency: int = Field(D.DOWNLOAD_CONCURRENCY, ge=1)
    download_limit: int | None = Field(None, ge=1, description="Attempt at most this many downloads per run.")
    requests_per_s: float | None = Field(D.REQUESTS_PER_S, gt=0, description="Per host; null: unlimited.")
    retry_failed: bool = Field(False, description="Also retry clips that failed permanently before.")
    span: Literal["auto", "segment", "window", "full"] = Field(
        D.DOWNLOAD_SPAN,  # type: ignore[arg-type]
        description="What is kept of each video: auto = as the paper (MUCaps the whole audio, the others the 10 s "
        "segment); segment; window (window_s around the segment); full (the whole audio, up to max_duration_s).",
    )
    window_s: float = Field(D.SPAN_WINDOW_S, gt=0, description="span=window: seconds kept around the segment.")
    max_duration_s: float | None = Field(
        D.MAX_AUDIO_S, gt=0, description="window/full: longest audio kept (longer videos: this much around the segment)."
    )


class TextBackends(_Params):
    """Who writes the captions and the dialogues (defaults: offline, grounded in the measurements)."""

    caption_backend: CaptionBackend = D.CAPTION_BACKEND  # type: ignore[assignment]
    caption_model_dir: str | None = Field(None, description="mu-llama: local model directory.")
    device: str = D.TEXT_DEVICE
    dialogue_backend: DialogueBackend = D.DIALOGUE_BACKEND  # type: ignore[assignment]
    dialogue_model: str | None = Field(
        None, description="A preset (mpt-7b-chat, llama-3.1-8b-instruct, qwen2.5-7b-instruct), a model directory "
        "(transformers, vllm) or a served name (openai).")
    prompt_format: Literal["auto", "chatml", "chat-template"] = Field(
        D.DIALOGUE_PROMPT_FORMAT, description="ChatML for MPT, else the tokenizer's chat template (auto).")
    base_url: str = Field(D.OPENAI_BASE_URL, description="openai backend: server base URL.")
    dtype: str = D.MODEL_DTYPE
    max_attempts: int = Field(D.DIALOGUE_MAX_ATTEMPTS, ge=1, description="Tries per dialogue turn before a sample is rejected.")
    seed: int = D.TEXT_SEED
    concurrency: int = Field(D.OPENAI_CONCURRENCY, ge=1, description="openai backend: requests in flight.")
    timeout_s: float = Field(D.OPENAI_TIMEOUT_S, gt=0)
    retry_rejected: bool = Field(False, description="Ask again for dialogues rejected before under the same prompt.")


_RULES = PairRules()  # the defaults live once, in PairRules


class PairOptions(_Params):
    """MUEdit pair mining rules (see ``m2ugen_data.pairs.rules.PairRules``)."""

    tolerance: float = Field(_RULES.tolerance, gt=0.0, lt=0.3)
    allow_double: bool = _RULES.allow_double
    key_rule: Literal["same", "relative", "any"] = _RULES.key_rule  # type: ignore[assignment]
    k: int = Field(_RULES.k, ge=1, description="Pairs per clip at most.")
    min_harmony_sim: float = Field(
        _RULES.min_harmony_sim, ge=0.0, le=1.0, description="Keep only pairs sharing this fraction of beat chords (0: any music)."
    )


class VisualOptions(_Params):
    """MUImage/MUVideo: frame choice or clip normalisation, the image/video captioner, the music-overlap rule."""

    caption_backend: VisualCaptionBackend = Field(
        D.VISUAL_CAPTION_BACKEND, description="grounded (offline, from measurements); blip (images); video-gpt2, videomae-labels (videos)."
    )
    caption_model_dir: str | None = Field(None, description="A save_pretrained directory (default: the model id in the local HF cache).")
    device: str = Field(D.VISUAL_DEVICE, description="auto | cpu | cuda | cuda:N")
    dtype: str = Field(D.MODEL_DTYPE, description="auto | float32 | float16 | bfloat16")
    caption_batch_size: int = Field(D.VISUAL_CAPTION_BATCH_SIZE, ge=1, description="Images or videos per captioner call.")
    frame_candidates: int = Field(D.FRAME_CANDIDATES, ge=1, description="MUImage: evenly spaced frames examined per video.")
    fps: int = Field(D.VIDEO_FPS, ge=1, description="MUVideo: frame rate of the normalised clips.")
    short_side: int = Field(D.VIDEO_SHORT_SIDE, ge=32, description="MUVideo: bound on the shorter side in pixels.")
    allow_music_overlap: bool = Field(
        False, description="Write shards even when this dataset's music also appears in MUCaps or MUEdit (reported either way)."
    )


class RunOptions(_Params):
    """How the work is cut into tasks, and shard sizes."""

    batch_size: int = Field(16, ge=1, description="Clips per analysis task (the unit of fan-out and of resume).")
    caption_batch_size: int = Field(D.CAPTION_BATCH_SIZE, ge=1, description="Clips per caption task.")
    dialogue_batch_size: int = Field(D.DIALOGUE_BATCH_SIZE, ge=1, description="Samples per dialogue task.")
    shard_max_samples: int = Field(D.SHARD_MAX_SAMPLES, ge=1)
    shard_max_bytes: int = Field(D.SHARD_MAX_BYTES, ge=1 << 16)
    shard_workers: int = Field(D.SHARD_WORKERS, ge=1, description="Shards written in parallel (threads).")


class TaskRunnerChoice(_Params):
    """Which Prefect task runner fans the batches out (not a flow parameter: a flow's runner is fixed when
    the run starts, so it is chosen by ``with_options`` in-process or by environment for served flows)."""

    kind: RunnerKind = "thread"
    max_workers: int | None = Field(None, ge=1, description="Threads or processes (default: the cores).")
    dask_address: str | None = Field(None, description="dask: scheduler address (default: a local cluster).")


# Module-level defaults for the flow signatures (the models are frozen, so sharing one instance is safe).
SYNTHETIC = SyntheticSource()
AUDIOSET = AudioSetSource()
TEXT = TextBackends()
PAIRS = PairOptions()
RUN = RunOptions()
VISUAL = VisualOptions()
