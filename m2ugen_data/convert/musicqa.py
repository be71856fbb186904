"""MusicQA (MU-LLaMA, arXiv 2308.11276) -> ``musicqa`` shards for stage 3.

Two public layouts: the JSON files of the MU-LLaMA repository and the Hugging Face dataset
(``PretrainMusicQA.json``, ``FinetuneMusicQA.json``, ``EvalMusicQA.json``): a list of
``{"audio_name": "012542.wav", "conversation": [{"from": "human", "value": Q}, {"from": "gpt", "value": A}]}``
with the audio under ``audios/<audio_name>`` (``audios.zip`` unpacked); and a Parquet export with one row per
question: ``Music`` (an audio struct ``{bytes, path}`` as ``datasets`` stores it, or a path), ``Question``,
``Answer`` (column names matched case-insensitively). Each question/answer becomes one sample with the audio
as ``input.<ext>``; a conversation with more turns gives one sample per question/answer pair.

Rejected (and recorded): a missing or unsafe audio path, one whose links lead out of the audio folder, a file
over the shard member limit, audio the decoder cannot open, an empty question or answer, a turn order other
than human/gpt.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import soundfile as sf

from m2ugen_data.convert.common import (
    ConvertError,
    Rejects,
    input_file,
    key_prefix,
    safe_child,
    sample,
    text_field,
)
from m2ugen_data.convert.json_source import MAX_JSON_MB, check_json, json_items
from m2ugen_data.shards.sample_schema import MusicQASample, QuestionTurn, SourceRecord, TextAnswerTurn
from m2ugen_data.shards.tar_writer import Sample

AUDIO_EXTS = ("wav", "flac", "mp3", "ogg")
_MAGIC = ((b"RIFF", "wav"), (b"fLaC", "flac"), (b"OggS", "ogg"), (b"ID3", "mp3"), (b"\xff\xfb", "mp3"),
          (b"\xff\xf3", "mp3"), (b"\xff\xf2", "mp3"))


def _ext_of(name: str | None, data: bytes | None = None) -> str | None:
    if data is not None:
        for magic, ext in _MAGIC:
            if data.startswith(magic):
                return ext
    ext = Path(name or "").suffix.lower().lstrip(".")
    return ext if ext in AUDIO_EXTS else None


def _audio_file(root: Path, path: Path) -> tuple[Path | None, str | None]:
    """(the file with its links resolved, None) when ``input_file`` takes it and its header decodes, else
    (None, the reason); read once per file, then cached by the caller."""
    real, reason = input_file(root, path, "audio")
    if real is None:
        return None, reason
    try:
        info = sf.info(str(real))
    except (sf.LibsndfileError, RuntimeError, OSError):
        return None, "audio_unreadable"
    return (real, None) if info.frames > 0 else (None, "audio_empty")


def _shown(name: Any) -> str:
    """A rejected name for the report: the string cut short, else only its type (the repr of a deeply nested
    list from the source would recurse)."""
    return repr(name)[:100] if isinstance(name, str) else f"<{type(name).__name__}>"


def _qa_pairs(conversation: Any) -> list[tuple[str, str]] | None:
    if not isinstance(conversation, list) or len(conversation) < 2 or len(conversation) % 2:
        return None
    pairs = []
    for human, gpt in zip(conversation[::2], conversation[1::2]):
        if not (isinstance(human, dict) and isinstance(gpt, dict) and human.get("from") == "human"
                and gpt.get("from") == "gpt"):
            return None
        q, a = text_field(human, "value"), text_field(gpt, "value")
        if q is None or a is None:
            return None
        pairs.append((q, a))
    return pairs


def _sample(key: str, audio_name: str, media: Path | bytes, ext: str, q: str, a: str, src: SourceRecord) -> Sample:
    model = MusicQASample(key=key, input_file=audio_name, members={"input": f"input.{ext}"},
                          conversation=(QuestionTurn(value=q, input_modality="audio"), TextAnswerTurn(value=a)),
                          source=src)
    return sample(key, model, {f"input.{ext}": media})


def iter_musicqa_json(path: Path, audio_dir: Path, rejects: Rejects, *, max_json_mb: int = MAX_JSON_MB) -> Iterator[Sample]:
    if "" not in check_json(path, [""], max_mb=max_json_mb):
        raise ConvertError(f"{path}: expected a JSON list of {{audio_name, conversation}} records")
    prefix, checked = key_prefix(path), {}
    for i, rec in enumerate(json_items(path, "")):
        where = f"{path.name}#{i}"
        if not isinstance(rec, dict):
            rejects.add(where, "not_an_object")
            continue
        name = rec.get("audio_name")
        audio = safe_child(audio_dir, name)
        if audio is None or _ext_of(name) is None:
            rejects.add(where, "bad_audio_name", _shown(name))
            continue
        if audio not in checked:
            checked[audio] = _audio_file(audio_dir, audio)
        real, reason = checked[audio]
        if real is None:
            rejects.add(where, reason, name)
            continue
        pairs = _qa_pairs(rec.get("conversation"))
        if not pairs:
            rejects.add(where, "bad_conversation")
            continue
        for j, (q, a) in enumerate(pairs):
            yield _sample(f"{prefix}-{i:07d}-{j}", name, real, _ext_of(name), q, a, SourceRecord(file=path.name, index=i))


def _column(names: list[str], wanted: str) -> str:
    for n in names:
        if n.lower() == wanted:
            return n
    raise ConvertError(f"Parquet file has no {wanted!r} column (has: {', '.join(names)})")


def iter_musicqa_parquet(path: Path, audio_dir: Path | None, rejects: Rejects) -> Iterator[Sample]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except (OSError, ValueError) as exc:
        raise ConvertError(f"{path}: not a readable Parquet file ({exc})") from None
    names = pf.schema_arrow.names
    music, question, answer = (_column(names, c) for c in ("music", "question", "answer"))
    prefix, i = key_prefix(path), -1
    for batch in pf.iter_batches(batch_size=256, columns=[music, question, answer]):
        for row in batch.to_pylist():
            i += 1
            where = f"{path.name}#{i}"
            q, a = text_field(row, question), text_field(row, answer)
            if q is None or a is None:
                rejects.add(where, "bad_conversation")
                continue
            m = row[music]
            data, name = (m.get("bytes"), m.get("path")) if isinstance(m, dict) else (None, m)
            if data:
                ext = _ext_of(name, data)
                if ext is None:
                    rejects.add(where, "audio_unreadable", "unknown audio format")
                    continue
                media: Path | bytes = data
            else:
                audio = safe_child(audio_dir, name) if audio_dir is not None else None
                ext = _ext_of(name)
                if audio is None or ext is None:
                    rejects.add(where, "bad_audio_name", _shown(name))
                    continue
                real, reason = _audio_file(audio_dir, audio)
                if real is None:
                    rejects.add(where, reason, str(name))
                    continue
                media = real
            audio_name = Path(name).name if isinstance(name, str) and name else f"{prefix}-{i:07d}.{ext}"
            yield _sample(f"{prefix}-{i:07d}-0", audio_name, media, ext, q, a, SourceRecord(file=path.name, index=i))


def iter_musicqa(path: Path, audio_dir: Path | None, rejects: Rejects, *, max_json_mb: int = MAX_JSON_MB) -> Iterator[Sample]:
    """Samples from a MusicQA JSON or Parquet file (by extension)."""
    if path.suffix.lower() == ".parquet":
        return iter_musicqa_parquet(path, audio_dir, rejects)
    if audio_dir is None:
        raise ConvertError(f"{path}: the JSON layout needs --audio-dir (the unpacked audios/ folder)")
    return iter_musicqa_json(path, audio_dir, rejects, max_json_mb=max_json_mb)
