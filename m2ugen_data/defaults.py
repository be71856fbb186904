"""The defaults every front door shares, defined once: the ``m2ugen-data`` commands, the Prefect flows and
their deployments (``flows/params.py``) and the library functions they call.

A user must get the same dataset whichever door they use; when each door had its own literal they drifted
(the synthetic corpus' sibling fraction, the caption batch, the shard writer's threads). Defaults owned by a
library object stay with it and are read from there: pair mining (``pairs.rules.PairRules``), the music
filter (``analysis.music_filter.MusicFilterConfig``), sampling (``dialogues.backend.GenerationParams``).
Everything here is a plain constant, so the CLI can import it at start-up without loading the pipeline.
``tests/pipeline/cli/test_defaults.py`` checks every CLI option against the flow parameter of the same meaning.
"""

from __future__ import annotations

# Synthetic corpus (m2ugen-data synth; flows' ``synthetic`` group)
SYNTH_CLIPS = 48
SYNTH_SEED = 0
SYNTH_SIBLING_FRACTION = 0.6  # clips rendered as sibling groups: the MUEdit pairs
SYNTH_TROUBLE_FRACTION = 0.1  # clips with silence, clipping, speech or too short

# AudioSet selection and download (m2ugen-data audioset select|download; flows' ``audioset`` group)
SEGMENT_LISTS = ("balanced_train", "eval", "unbalanced_train")
# Evaluation lists kept out of training by default (bundled with the package, m2ugen_data/audioset/data):
# MusicCaps, the usual text-to-music test set. Users add lists (--exclude-eval FILE, flows' exclude_eval).
EVAL_LISTS = ("musiccaps",)
URL_TEMPLATE = "https://www.youtube.com/watch?v={ytid}"
DOWNLOAD_CONCURRENCY = 8
REQUESTS_PER_S = 5.0  # per host
# What a download keeps of each video: "auto" is what the paper did per pool (MUCaps the whole audio of the
# video, the other datasets the 10 s segment); segment | window | full force one span for every pool.
DOWNLOAD_SPAN = "auto"
SPAN_WINDOW_S = 30.0  # span=window: seconds kept, centred on the segment
# Longest audio a download keeps (longer videos: this many seconds around the segment) and analysis accepts
# (longer files: rejected as too_long before decoding). The paper's MUCaps averages 209 s a file.
MAX_AUDIO_S = 3600.0
# Analysis of long audio: up to MAX_DECODE_S decoded whole; longer, LONG_AUDIO_WINDOWS windows of the segment's
# length spread over the file and aggregated, so memory stays bounded whatever the length (0: reject instead).
MAX_DECODE_S = 60.0
LONG_AUDIO_WINDOWS = 6

# Music captions and dialogues (m2ugen-data caption|dialogue; flows' ``text`` and ``run`` groups)
CAPTION_BACKEND = "grounded"  # offline, from the measurements
DIALOGUE_BACKEND = "template"  # offline
TEXT_DEVICE = "auto"  # the GPU when there is one (MU-LLaMA captions, the transformers dialogue backend)
MODEL_DTYPE = "auto"
OPENAI_BASE_URL = "http://127.0.0.1:8000/v1"
OPENAI_CONCURRENCY = 16  # requests in flight
OPENAI_TIMEOUT_S = 120.0
OPENAI_VLLM_EXTRAS = True  # top_k + skip_special_tokens=false; a server that refuses them gets one retry without
DIALOGUE_PROMPT_FORMAT = "auto"  # ChatML for MPT (the released prompts), else the tokenizer's chat template
VLLM_TENSOR_PARALLEL = 1
VLLM_MAX_MODEL_LEN = 2048
DIALOGUE_MAX_ATTEMPTS = 3  # tries per turn before a sample is recorded as rejected
TEXT_SEED = 0
CAPTION_BATCH_SIZE = 256  # clips per captioner call and manifest batch
DIALOGUE_BATCH_SIZE = 64  # samples per batch (two prompts each)

# Frames, clips and their captions (m2ugen-data media|caption-visual; flows' ``visual`` group)
VISUAL_CAPTION_BACKEND = "grounded"
VISUAL_DEVICE = "auto"
VISUAL_CAPTION_BATCH_SIZE = 16
FRAME_CANDIDATES = 16  # evenly spaced frames examined per video
VIDEO_FPS = 16
VIDEO_SHORT_SIDE = 256

# Shards (m2ugen-data shards write; flows' ``run`` group)
SHARD_MAX_SAMPLES = 1000
SHARD_MAX_BYTES = 1 << 30  # 1 GiB: large enough for streaming throughput, small enough to shuffle
SHARD_WORKERS = 2  # shards written in parallel (threads): 2 reached 0.82 of cp vs 0.73 for 1 (docs/BENCHMARKS.md)
