"""The one place where manifest schemas live.

Every manifest is a Parquet dataset under ``warehouse/manifests/<name>/``; each has an explicit pyarrow
schema, a key (the columns that identify one logical record) and an ordering column, so a ``<name>_latest``
view can keep the newest row per key when a record is written more than once (a retried download, a
re-analysis with a newer analyser). Bump ``SCHEMA_VERSION`` when a column changes meaning; adding nullable
columns is backwards compatible because readers union by name.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

# 2: features gained measured content (tags, derived instrument/genre/mood/vocal sets, chords, music score,
#    tempo octave provenance), pairs gained measured-content columns, captions gained their evidence.
#    Older batches read with the new columns null; stages re-analyse rows of an older analyser version.
# 3: captions and dialogues gained their claim checks (factcheck: each claim's verdict and evidence, as JSON,
#    and a consistency score); captions gained status/reasons (a rejected caption keeps its text only inside
#    factcheck, so every reader that skips NULL text skips it). Older batches read with these columns null:
#    written before claims were checked, their captions count as ok.
# 4: features gained the audio fingerprint (fp_*: landmarks, sketch, candidate tokens, status); new manifests
#    duplicates (near-duplicate groups), contamination (clips matched to evaluation sets) and splits (the
#    held-out split, warehouse state). Older batches read with the new columns null; the dedup stage
#    fingerprints clips whose newest row has none (``m2ugen-data dedup``), without re-analysing them.
SCHEMA_VERSION = "4"

_ts = pa.timestamp("us", tz="UTC")
_strs = pa.list_(pa.string())
_f64s = pa.list_(pa.float64())
_f32s = pa.list_(pa.float32())


@dataclass(frozen=True)
class Manifest:
    name: str
    schema: pa.Schema
    key: tuple[str, ...]
    order_by: str
    doc: str


def _schema(*fields: tuple[str, pa.DataType] | tuple[str, pa.DataType, bool]) -> pa.Schema:
    return pa.schema([pa.field(f[0], f[1], nullable=f[2] if len(f) > 2 else True) for f in fields])


SEGMENTS = Manifest(
    "segments",
    _schema(
        ("clip_id", pa.string(), False),
        ("ytid", pa.string(), False),
        ("start_s", pa.float64(), False),
        ("end_s", pa.float64(), False),
        ("labels", _strs),  # AudioSet label ids (mids) as listed in the segment CSV
        ("instruments", _strs),  # labels under Musical instrument (/m/04szw)
        ("genres", _strs),  # labels under Music genre (/m/0kpv1t)
        ("moods", _strs),  # labels under Music mood (/t/dd00030)
        ("pool", pa.string(), False),  # mucaps | muedit | muimage | muvideo
        ("source", pa.string(), False),  # segment list name (balanced_train, eval, ...) or synthetic
        ("updated_at", _ts, False),
    ),
    key=("clip_id",),
    order_by="updated_at",
    doc="AudioSet music segments selected for a dataset, with their pool.",
)

SEGMENT_REJECTS = Manifest(
    "segment_rejects",
    _schema(
        ("batch_id", pa.string(), False),  # the segments batch of the same list (segments-<source>-<hash>)
        ("source", pa.string(), False),  # segment list name, as in segments.source
        ("line", pa.int64(), False),  # physical line in the file, from 1
        ("reason", pa.string(), False),
        ("text", pa.string()),  # the row as read, cut to 120 characters
        ("created_at", _ts, False),
    ),
    key=("batch_id", "line"),
    order_by="created_at",
    doc="Rows of a segment list that were not used, each with its line and reason.",
)

CLIPS = Manifest(
    "clips",
    _schema(
        ("clip_id", pa.string(), False),
        ("status", pa.string(), False),  # ok | failed
        ("error_class", pa.string()),  # transient | permanent | corrupt | invalid (null when ok)
        ("error", pa.string()),
        ("attempts", pa.int32(), False),
        ("audio_path", pa.string()),  # relative to the warehouse root
        ("video_path", pa.string()),
        ("duration_s", pa.float64()),
        ("sample_rate", pa.int32()),
        ("bytes", pa.int64()),
        ("sha256", pa.string()),
        ("span", pa.string()),  # what was kept of the video: segment | window | full (null: segment, or imported)
        ("span_start_s", pa.float64()),  # where the stored audio starts in the video (the segment is at start_s - this)
        ("updated_at", _ts, False),
    ),
    key=("clip_id",),
    order_by="updated_at",
    doc="One row per download attempt outcome; the latest row per clip is its state.",
)

FEATURES = Manifest(
    "features",
    _schema(
        ("clip_id", pa.string(), False),
        ("status", pa.string(), False),  # ok | rejected | failed
        ("reason", pa.string()),  # why not ok: silent, clipped, too_short, too_long, undecodable, corrupt, ...
        ("analyser_version", pa.string(), False),
        ("duration_s", pa.float64()),
        ("tempo_bpm", pa.float64()),
        ("tempo_conf", pa.float64()),
        ("beats", _f64s),
        ("downbeats", _f64s),
        ("meter", pa.int32()),  # beats per bar: 3 or 4
        ("key", pa.string()),  # e.g. "A minor"
        ("key_conf", pa.float64()),
        ("loudness_lufs", pa.float64()),
        ("peak_dbfs", pa.float64()),
        ("clip_ratio", pa.float64()),  # fraction of samples at full scale
        ("silence_ratio", pa.float64()),
        ("speech_ratio", pa.float64()),
        ("onset_rate", pa.float64()),  # onsets per second
        ("centroid_hz", pa.float64()),
        ("chroma", _f32s),  # 12 mean chroma energies
        ("timbre", _f32s),  # compact timbre vector (MFCC statistics)
        ("is_music", pa.bool_()),  # MUCaps music filter verdict
        ("music_reasons", _strs),  # why is_music is false (empty when true)
        # ---- schema 2: what is playing, measured from the audio (never from the AudioSet labels)
        ("tempo_raw_bpm", pa.float64()),  # the beat tracker's own tempo, before octave correction
        ("tempo_method", pa.string()),  # which rule chose tempo_bpm (e.g. "dbn", "octave:prior")
        ("tags_mtt", _f32s),  # MusiCNN MagnaTagATune top-50 probabilities (order: analysis.taggers.MTT_TAGS)
        ("tags_msd", _f32s),  # MusiCNN Million Song Dataset top-50 probabilities (order: taggers.MSD_TAGS)
        ("instruments", _strs),  # measured instrument words, derived from the tags with tag_thresholds
        ("genres", _strs),  # measured genre words
        ("moods", _strs),  # measured mood words
        ("vocals", pa.string()),  # vocal | female vocal | male vocal | instrumental; null when unsure
        ("tag_thresholds", pa.string()),  # JSON: the rule (thresholds) that derived the four sets above
        ("beat_chords", _strs),  # one chord per beat interval [beats[i], beats[i+1]), mir_eval syntax; N = none
        ("chord_change_rate", pa.float64()),  # chord changes per bar
        ("harmony", _f32s),  # 24-d chord-root histogram (12 major, 12 minor), beat-weighted, sums to 1
        ("music_score", pa.float64()),  # 0..1 music-likeness from the audio (analysis.music_likeness)
        ("music_descriptors", _f32s),  # the score's inputs (order: music_likeness.DESCRIPTORS), for re-scoring
        ("model_versions", pa.string()),  # JSON: analyser -> model/version that produced its columns
        # long audio (over Thresholds.max_decode_s) is analysed in windows and the windows' measurements aggregated
        ("windows", pa.int32()),  # how many windows of Thresholds.window_s were analysed (null: the whole clip)
        ("window_starts_s", _f64s),  # where each analysed window starts in the file (empty: the whole clip)
        # ---- schema 3: calibrated tempo (tempo_conf stays the beat tracker's clarity: strength x regularity)
        ("tempo_prob", pa.float64()),  # calibrated probability that tempo_bpm is right within 4 % (tempo_octave)
        ("tempo_alt_bpm", pa.float64()),  # the runner-up tempo candidate (e.g. the other octave)
        ("updated_at", _ts, False),
        # ---- schema 3: the audio fingerprint of the whole file (analysis.fingerprint; null: not computed yet)
        ("fp_version", pa.string()),
        ("fp_status", pa.string()),  # ok | too_short | too_few_landmarks | failed: never a silent "unique"
        ("fp_landmarks", pa.binary()),  # little-endian uint32 (hash, frame) pairs
        ("fp_sketch", pa.binary()),  # uint8 band energies, SKETCH_BANDS per frame
        ("fp_tokens", pa.binary()),  # little-endian uint64 tokens: the candidate index
        ("fp_seconds", pa.float64()),  # audio the fingerprint covers
    ),
    key=("clip_id",),
    order_by="updated_at",
    doc="Measured music features per clip; failures are rows with a status and reason.",
)

PAIRS = Manifest(
    "pairs",
    _schema(
        ("src_id", pa.string(), False),
        ("tgt_id", pa.string(), False),
        ("tempo_src", pa.float64()),
        ("tempo_tgt", pa.float64()),
        ("tempo_ratio", pa.float64()),
        ("meter", pa.int32()),
        ("key_src", pa.string()),
        ("key_tgt", pa.string()),
        ("labels_added", _strs),
        ("labels_removed", _strs),
        ("label_jaccard", pa.float64()),
        ("timbre_dist", pa.float64()),
        ("beat_sim", pa.float64()),
        # ---- schema 2: measured content
        ("instruments_added", _strs),  # measured instruments in the target, not in the source
        ("instruments_removed", _strs),  # measured instruments in the source, not in the target
        ("content_dist", pa.float64()),  # distance between the clips' instrument tag vectors
        ("harmony_sim", pa.float64()),  # beat-synchronous chord-sequence similarity (best alignment), 0..1
        ("score", pa.float64()),
        ("miner_version", pa.string(), False),
        ("created_at", _ts, False),
    ),
    key=("src_id", "tgt_id"),
    order_by="created_at",
    doc="MUEdit source/target pairs with the measurements that justified them.",
)

CAPTIONS = Manifest(
    "captions",
    _schema(
        ("item_id", pa.string(), False),
        ("modality", pa.string(), False),  # audio | image | video
        ("backend", pa.string(), False),  # grounded | mu-llama | blip | videomae-labels | ...
        ("model", pa.string()),
        ("prompt_hash", pa.string(), False),
        ("text", pa.string()),
        ("evidence", pa.string()),  # schema 2, JSON: phrase slot -> the measurement that backs it
        ("created_at", _ts, False),
        # ---- schema 3: claims checked against the measurements (m2ugen_data.factcheck)
        ("status", pa.string()),  # ok | rejected (null: written before claims were checked)
        ("reasons", _strs),  # why rejected: contradicted:<claim>, unverifiable:<share>, empty, too_long, not_english
        ("factcheck", pa.string()),  # JSON: each claim with its verdict and evidence (and a rejected caption's text)
        ("consistency", pa.float64()),  # supported / (supported + contradicted); null when nothing was checkable
    ),
    key=("item_id", "modality", "backend"),
    order_by="created_at",
    doc="Captions per media item and backend; grounded captions are marked by their backend.",
)

DIALOGUES = Manifest(
    "dialogues",
    _schema(
        ("dataset", pa.string(), False),  # muedit | muimage | muvideo
        ("sample_id", pa.string(), False),
        ("input_id", pa.string()),
        ("output_id", pa.string()),
        ("human", pa.string()),
        ("gpt", pa.string()),
        ("input_caption", pa.string()),
        ("output_caption", pa.string()),
        ("backend", pa.string(), False),
        ("model", pa.string()),
        ("prompt_hash", pa.string()),
        ("status", pa.string(), False),  # ok | rejected
        ("reasons", _strs),
        ("attempts", pa.int32(), False),
        ("created_at", _ts, False),
        # ---- schema 3: both turns' claims checked against the measurements (m2ugen_data.factcheck)
        ("factcheck", pa.string()),  # JSON: {"human": ..., "gpt": ...}, each claim with its verdict and evidence
        ("consistency", pa.float64()),  # over both turns' claims; null when nothing was checkable
    ),
    key=("dataset", "sample_id"),
    order_by="created_at",
    doc="Two-turn instruction dialogues; rejected ones keep their reasons and never reach a shard.",
)

SHARDS = Manifest(
    "shards",
    _schema(
        ("dataset", pa.string(), False),
        ("path", pa.string(), False),  # relative to the warehouse root
        ("samples", pa.int64(), False),
        ("bytes", pa.int64(), False),
        ("sha256", pa.string(), False),
        ("first_key", pa.string()),
        ("last_key", pa.string()),
        ("created_at", _ts, False),
        # the shard-writing run that wrote this file; an incremental run keeps older shards' values, so the
        # rows it wrote are the ones with its id (NULL: written before run ids existed)
        ("run_id", pa.string()),
    ),
    key=("path",),
    order_by="created_at",
    doc="WebDataset tar shards written per dataset.",
)

SYNTH_TRUTH = Manifest(
    "synth_truth",
    _schema(
        ("clip_id", pa.string(), False),
        ("ytid", pa.string(), False),
        ("audio_path", pa.string(), False),  # relative to the corpus directory
        ("duration_s", pa.float64(), False),
        ("sample_rate", pa.int32(), False),
        ("tempo_bpm", pa.float64()),
        ("meter", pa.int32()),
        ("key", pa.string()),  # e.g. "A minor"
        ("beats", _f64s),
        ("downbeats", _f64s),
        ("instruments", _strs),  # AudioSet label ids of the instruments rendered
        ("instrument_names", _strs),
        ("labels", _strs),  # all AudioSet labels written to the segments CSV
        ("group_id", pa.string()),  # sibling group: same composition, other instrumentation
        ("trouble", pa.string()),  # none | silence | clipping | speech | short | planted_eval | planted_copy
        ("seed", pa.int64(), False),
        ("copy_of", pa.string()),  # planted_copy: the clip this one is a re-encoded, shifted copy of
    ),
    key=("clip_id",),
    order_by="clip_id",
    doc="Ground truth of the synthetic corpus (tempo, meter, key, beats, instruments, siblings).",
)

VISUAL_MEDIA = Manifest(
    "visual_media",
    _schema(
        ("clip_id", pa.string(), False),
        ("kind", pa.string(), False),  # image (MUImage frame) | video (MUVideo clip)
        ("status", pa.string(), False),  # ok | rejected | failed
        ("reason", pa.string()),  # missing, no_video_stream, undecodable, corrupt, black, uniform, static, encode_failed
        ("extractor_version", pa.string(), False),
        ("path", pa.string()),  # relative to the warehouse root (null unless ok)
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("fps", pa.float64()),  # video: output frame rate
        ("frames", pa.int32()),  # video: frames in the output clip; image: frames examined
        ("duration_s", pa.float64()),
        ("frame_time_s", pa.float64()),  # image: time of the chosen frame in the source video
        ("brightness", pa.float64()),  # mean luma 0..1
        ("sharpness", pa.float64()),  # variance of the Laplacian of luma at a fixed working size
        ("motion", pa.float64()),  # mean absolute luma change between frames 1/8 s apart, 0..1
        ("scene_cuts", pa.int32()),
        ("dominant_colors", _strs),  # colour names, largest share first
        ("updated_at", _ts, False),
    ),
    key=("clip_id", "kind"),
    order_by="updated_at",
    doc="MUImage frames and MUVideo clips cut from the source videos, with measurements or a rejection reason.",
)

DUPLICATES = Manifest(
    "duplicates",
    _schema(
        ("clip_id", pa.string(), False),
        ("group_id", pa.string(), False),  # the group's canonical member (the clip datasets keep)
        ("canonical", pa.bool_(), False),
        ("match", pa.string(), False),  # exact | fingerprint | remaster: the strongest link into the group
        ("matched_with", pa.string()),  # the clip that link joins (null for the canonical member)
        ("frac", pa.float64()),  # landmark share at the alignment
        ("corr", pa.float64()),  # sketch agreement at the alignment
        ("offset_s", pa.float64()),  # where matched_with's audio starts in this clip's
        ("stretch", pa.float64()),  # time-stretch ratio between them
        ("rules_version", pa.string(), False),
        ("created_at", _ts, False),
    ),
    key=("clip_id",),
    order_by="created_at",
    doc="Near-duplicate groups by sound (re-encodes, shifts, gain, stretch, re-masters); one batch per run.",
)

CONTAMINATION = Manifest(
    "contamination",
    _schema(
        ("clip_id", pa.string(), False),
        ("benchmark", pa.string(), False),  # the evaluation set's name
        ("matched_by", pa.string(), False),  # id | sound
        ("eval_item", pa.string(), False),  # the evaluation file or ID it matched
        ("frac", pa.float64()),
        ("corr", pa.float64()),
        ("offset_s", pa.float64()),  # where the evaluation audio starts in the clip
        ("source", pa.string()),  # the path given to decontaminate
        ("created_at", _ts, False),
    ),
    key=("clip_id", "benchmark"),
    order_by="created_at",
    doc="Warehouse clips found in an evaluation set (by ID or by sound): kept out of every training sample.",
)

SPLITS = Manifest(
    "splits",
    _schema(
        ("dataset", pa.string(), False),
        ("salt", pa.string(), False),
        ("fraction", pa.float64(), False),  # share of YouTube videos held out
        ("created_at", _ts, False),
    ),
    key=("dataset",),
    order_by="created_at",
    doc="The held-out evaluation split of each dataset: every later shard write, flow and converter keeps it.",
)

MANIFESTS: dict[str, Manifest] = {
    m.name: m
    for m in (SEGMENTS, SEGMENT_REJECTS, CLIPS, FEATURES, PAIRS, CAPTIONS, DIALOGUES, SHARDS, SYNTH_TRUTH, VISUAL_MEDIA,
              DUPLICATES, CONTAMINATION, SPLITS)
}


def get_manifest(name: str) -> Manifest:
    try:
        return MANIFESTS[name]
    except KeyError:
        raise KeyError(f"unknown manifest {name!r}; known: {', '.join(MANIFESTS)}") from None
