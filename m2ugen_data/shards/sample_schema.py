"""The JSON member of every shard sample, as pydantic models the writer, the tests and the trainer share.

Instruction datasets (MUEdit, MUImage, MUVideo) carry the reference trainer's record unchanged
(``input_file``, ``output_file``, ``conversation``) so an export is a projection, plus what we measured and
where everything came from. Media members are named by role: ``<key>.input.<ext>`` and
``<key>.output.<ext>`` (WebDataset fields ``input.flac``, ``output.flac``), while MUCaps, which has no roles,
uses ``<key>.flac``. ``members`` in the JSON maps each role to its field so a reader never guesses
extensions. ``input_file``/``output_file`` are the file names the export writes (``<clip_id>.<ext>``).

Models forbid unknown fields at the top level: a typo in a builder fails validation instead of shipping.
New datasets register their model in ``SAMPLE_MODELS``; ``parse_sample_json`` dispatches on ``dataset``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from m2ugen_data.errors import M2UGenError

FORMAT = "m2ugen-sample/1"

NonEmpty = Annotated[str, StringConstraints(min_length=1, strip_whitespace=False)]
Key = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,80}$")]
ClipId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{11}_\d{1,9}$")]
FieldName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]{1,10}(\.[a-z0-9]{1,10}){0,2}$")]
FileName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]+\.[a-z0-9]{1,5}$")]
Modality = Literal["audio", "image", "video"]


class SampleSchemaError(M2UGenError):
    """A shard sample's JSON that is not valid JSON or does not match its dataset's model."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Label(_Strict):
    id: NonEmpty
    name: NonEmpty


class ClipProvenance(_Strict):
    clip_id: ClipId
    ytid: str
    start_s: float | None
    end_s: float | None
    source: str | None  # AudioSet segment list (balanced_train, ...) or synthetic
    pool: str | None
    audio_sha256: str | None
    sample_rate: int | None
    duration_s: float | None


class CaptionProvenance(_Strict):
    backend: NonEmpty  # grounded captions say so here
    model: str | None
    prompt_hash: str | None


class Features(_Strict):
    analyser_version: NonEmpty
    duration_s: float | None = None
    tempo_bpm: float | None = None
    tempo_conf: float | None = None
    beats: list[float] = Field(default_factory=list)
    downbeats: list[float] = Field(default_factory=list)
    meter: int | None = None
    key: str | None = None
    key_conf: float | None = None
    loudness_lufs: float | None = None
    peak_dbfs: float | None = None
    speech_ratio: float | None = None
    onset_rate: float | None = None
    centroid_hz: float | None = None
    chroma: list[float] = Field(default_factory=list)


class MUCapsSample(_Strict):
    """Music captioning (stage 1) and text-to-music alignment (stage 2)."""

    format: Literal["m2ugen-sample/1"] = FORMAT
    dataset: Literal["mucaps"] = "mucaps"
    key: ClipId
    members: dict[Literal["audio"], FieldName]
    audio_file: FileName
    caption: NonEmpty
    labels: list[Label]
    instruments: list[Label]
    genres: list[Label]
    moods: list[Label]
    features: Features
    provenance: ClipProvenance
    caption_source: CaptionProvenance


class HumanTurn(_Strict):
    from_: Literal["human"] = Field("human", alias="from")
    value: NonEmpty
    input_modality: Modality
    caption: NonEmpty


class GptTurn(_Strict):
    from_: Literal["gpt"] = Field("gpt", alias="from")
    value: NonEmpty
    caption: NonEmpty
    output_modality: Literal["audio"] = "audio"


class DialogueProvenance(_Strict):
    backend: NonEmpty
    model: str | None
    prompt_hash: str | None
    attempts: int


class InstructionSample(_Strict):
    """X-to-music instruction record: the reference fields first, then ours."""

    format: Literal["m2ugen-sample/1"] = FORMAT
    dataset: str
    key: Key
    input_file: FileName
    output_file: FileName
    conversation: tuple[HumanTurn, GptTurn]
    members: dict[Literal["input", "output"], FieldName]
    input: ClipProvenance
    output: ClipProvenance
    dialogue: DialogueProvenance

    def reference_record(self) -> dict[str, Any]:
        """The record exactly as the reference trainer's ``*Instructions.json`` holds it."""
        return {
            "input_file": self.input_file,
            "output_file": self.output_file,
            "conversation": [t.model_dump(by_alias=True) for t in self.conversation],
        }


class PairMeasurements(_Strict):
    tempo_src: float | None
    tempo_tgt: float | None
    tempo_ratio: float | None
    meter: int | None
    key_src: str | None
    key_tgt: str | None
    labels_added: list[str]
    labels_removed: list[str]
    # measured instrument words the edit request is built from (null: the miner had no measurement)
    instruments_added: list[str] | None = None
    instruments_removed: list[str] | None = None
    label_jaccard: float | None
    timbre_dist: float | None
    beat_sim: float | None
    score: float | None
    miner_version: NonEmpty


class MUEditSample(InstructionSample):
    """Music editing: input music, instruction, output music (stage 3)."""

    dataset: Literal["muedit"] = "muedit"
    key: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{11}_\d{1,9}__[A-Za-z0-9_-]{11}_\d{1,9}$")]
    pair: PairMeasurements


class VisualMeasurements(_Strict):
    """The ``visual_media`` row of the frame (MUImage) or normalised clip (MUVideo) in the sample."""

    kind: Literal["image", "video"]
    extractor_version: NonEmpty
    width: int | None
    height: int | None
    fps: float | None  # video: output frame rate
    frames: int | None  # video: frames in the clip; image: candidate frames examined
    duration_s: float | None
    frame_time_s: float | None  # image: where in the source video the frame was taken
    brightness: float | None
    sharpness: float | None
    motion: float | None
    scene_cuts: int | None
    dominant_colors: list[str]


class CaptionSources(_Strict):
    """Which captioner wrote each caption the dialogue was grounded in (None: no caption row has that text
    any more, e.g. it was recaptioned after the dialogue was written)."""

    input: CaptionProvenance | None
    output: CaptionProvenance | None


class VisualInstructionSample(InstructionSample):
    """Image/video-to-music: the frame or clip and the music come from the same AudioSet video section, so
    the key, ``input`` and ``output`` all name one clip; ``features`` measure the music, ``visual`` the media."""

    modality: ClassVar[str]
    key: ClipId
    features: Features
    visual: VisualMeasurements
    captions: CaptionSources

    @model_validator(mode="after")
    def _one_clip_one_modality(self) -> VisualInstructionSample:
        if not self.key == self.input.clip_id == self.output.clip_id:
            raise ValueError(f"key, input and output must name one clip ({self.key}, {self.input.clip_id}, {self.output.clip_id})")
        if self.conversation[0].input_modality != self.modality or self.visual.kind != self.modality:
            raise ValueError(f"{self.dataset} samples take {self.modality} input")
        return self


class MUImageSample(VisualInstructionSample):
    """Image-to-music (stage 3) and image captioning (stage 1): ``input.jpg`` + ``output.flac``."""

    modality: ClassVar[str] = "image"
    dataset: Literal["muimage"] = "muimage"


class MUVideoSample(VisualInstructionSample):
    """Video-to-music (stage 3) and video captioning (stage 1): ``input.mp4`` + ``output.flac``."""

    modality: ClassVar[str] = "video"
    dataset: Literal["muvideo"] = "muvideo"


# ---------------------------------------------------------------------------------------------- converted sources
# Public datasets the paper mixes in (m2ugen_data.convert): what the trainer reads is the conversation (or the
# Alpaca fields) exactly as ``m2ugen_model.train.examples`` expects them; ``source`` says where each came from.


class SourceRecord(_Strict):
    file: NonEmpty  # the source file's name (JSON/Parquet), not a path
    index: int  # row in that file


class QuestionTurn(_Strict):
    from_: Literal["human"] = Field("human", alias="from")
    value: NonEmpty
    input_modality: Modality


class TextAnswerTurn(_Strict):
    from_: Literal["gpt"] = Field("gpt", alias="from")
    value: NonEmpty


class MusicQASample(_Strict):
    """MusicQA (MU-LLaMA): a question about ``input.<audio ext>`` and its text answer (stage 3)."""

    format: Literal["m2ugen-sample/1"] = FORMAT
    dataset: str = "musicqa"
    key: Key
    input_file: NonEmpty  # the audio's name in the source (``audio_name``)
    members: dict[Literal["input"], FieldName]
    conversation: tuple[QuestionTurn, TextAnswerTurn]
    source: SourceRecord


class AlpacaSample(_Strict):
    """Alpaca: text-only instruction following (stage 3), the record's three fields unchanged."""

    format: Literal["m2ugen-sample/1"] = FORMAT
    dataset: str = "alpaca"
    key: Key
    instruction: NonEmpty
    input: str
    output: NonEmpty
    source: SourceRecord


class CocoCaptionTurn(HumanTurn):
    input_modality: Literal["image"] = "image"


class CocoCaptionSample(_Strict):
    """COCO captions: ``input.jpg`` and one of its captions (stage 1 image captioning; stage 3 as a dialogue)."""

    format: Literal["m2ugen-sample/1"] = FORMAT
    dataset: str = "coco"
    key: Key
    input_file: FileName
    members: dict[Literal["input"], FieldName]
    conversation: tuple[CocoCaptionTurn, TextAnswerTurn]
    image_id: int
    annotation_id: int
    source: SourceRecord


SAMPLE_MODELS: dict[str, type[BaseModel]] = {
    "mucaps": MUCapsSample,
    "muedit": MUEditSample,
    "muimage": MUImageSample,
    "muvideo": MUVideoSample,
    "musicqa": MusicQASample,
    "alpaca": AlpacaSample,
    "coco": CocoCaptionSample,
}


def dump_sample_json(model: BaseModel) -> bytes:
    """Canonical bytes: field order as declared, no whitespace, so equal samples give equal shards."""
    return model.model_dump_json(by_alias=True).encode("utf-8")


def parse_sample_json(data: bytes | str | dict[str, Any], dataset: str | None = None) -> BaseModel:
    """Validate one sample's JSON against its dataset's model (from ``dataset`` or the JSON itself)."""
    if isinstance(data, (bytes, str)):
        try:
            data = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise SampleSchemaError(f"sample JSON is not valid JSON: {e}") from e
    if not isinstance(data, dict):
        raise SampleSchemaError("sample JSON is not an object")
    name = dataset or data.get("dataset")
    model = SAMPLE_MODELS.get(name) if isinstance(name, str) else None
    if model is None:
        raise SampleSchemaError(f"sample JSON names unknown dataset {name!r}; known: {', '.join(SAMPLE_MODELS)}")
    try:
        return model.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "<root>"
        raise SampleSchemaError(
            f"{name} sample {data.get('key')!r}: {where}: {first['msg']} ({e.error_count()} error(s))"
        ) from e
