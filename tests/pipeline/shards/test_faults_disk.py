"""A full disk is one line naming the file being written, and leaves no half-imported media.

The disk is simulated: the write path raises ``OSError(ENOSPC)`` after a few files or bytes, as the kernel
would (``shutil.copyfile`` names the *source* file in that error, the trap the old code fell into).
"""

from __future__ import annotations

import builtins
import errno
import io
import shutil
from pathlib import Path

import pytest

from m2ugen_data.audioset.synthetic_import import import_synthetic
from m2ugen_data.errors import DiskFullError
from m2ugen_data.shards import tar_writer
from m2ugen_data.shards.samples import mucaps_sample
from m2ugen_data.shards.tar_writer import ShardError, ShardWriter
from train_fixtures import _clip_row, _flac


def _enospc(src: object, dst: object) -> OSError:
    e = OSError(errno.ENOSPC, "No space left on device")
    e.filename, e.filename2 = str(src), str(dst)
    return e


def test_disk_full_during_import_synthetic_is_one_line_and_removes_the_batch_media(warehouse, synth_corpus, monkeypatch):
    real_copy, copied = shutil.copyfile, []

    def copy_until_full(src, dst, *a, **kw):
        if len(copied) == 5:
            Path(dst).write_bytes(b"partial")  # the kernel filled part of the file before ENOSPC
            raise _enospc(src, dst)
        copied.append(dst)
        return real_copy(src, dst, *a, **kw)

    monkeypatch.setattr(shutil, "copyfile", copy_until_full)
    with pytest.raises(DiskFullError) as info:
        import_synthetic(warehouse, synth_corpus, "muedit")
    message = str(info.value)
    assert "\n" not in message and "disk full" in message
    assert str(warehouse.root / "media") in message and str(synth_corpus) not in message
    assert not [p for p in (warehouse.root / "media").rglob("*") if p.is_file()]  # nothing half-imported
    assert not warehouse.manifest_files("clips")

    monkeypatch.setattr(shutil, "copyfile", real_copy)  # space freed: the rerun imports everything
    assert not import_synthetic(warehouse, synth_corpus, "muedit").failed


class _FullDisk(io.FileIO):
    """A file on a disk with ``room`` bytes left."""

    room = 64 << 10

    def write(self, b) -> int:
        if self.tell() + len(b) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().write(b)


def test_disk_full_during_shards_write_names_the_shard_not_the_media(tmp_path, monkeypatch):
    def full_disk_open(path, mode="r", *args, **kwargs):
        if "w" in mode:
            return _FullDisk(path, "wb")
        return builtins.open(path, mode, *args, **kwargs)

    monkeypatch.setattr(tar_writer, "open", full_disk_open, raising=False)
    out = tmp_path / "shards" / "mucaps"
    media = [_flac(tmp_path / "media" / f"clip{i}.flac", 440.0, seconds=2.0) for i in range(4)]
    with pytest.raises(ShardError) as info, ShardWriter(out, "mucaps", max_samples=10) as w:
        for i, audio in enumerate(media):
            w.write(mucaps_sample(audio=audio, clip=_clip_row(f"TESTclip{i:03d}_0"), segment=None,
                                  features={"analyser_version": "test"}, caption={"text": "a tone.", "backend": "test"}))
    message = str(info.value)
    assert str(out / "mucaps-000000.tar") in message and "No space left" in message, message
    assert not any(str(m) in message for m in media)
    assert not list(out.iterdir())  # the partial temporary shard was removed
