"""The shard reader refuses hostile tars; WebDataset with ``check_member_name`` does too."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
import webdataset as wds

from m2ugen_data.shards import (
    Sample,
    ShardFormatError,
    UnsafeShardError,
    check_member_name,
    iter_shard_samples,
    write_dataset_shards,
)


def _tar(path: Path, members: list[tarfile.TarInfo | tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        for m in members:
            if isinstance(m, tarfile.TarInfo):
                tar.addfile(m)
            else:
                info = tarfile.TarInfo(m[0])
                info.size = len(m[1])
                tar.addfile(info, io.BytesIO(m[1]))
    return path


def _special(name: str, kind: bytes, target: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


@pytest.mark.parametrize(
    "member, message",
    [
        (("../evil.json", b"{}"), "path traversal"),
        (("a/../../evil.json", b"{}"), "path traversal"),
        (("/etc/evil.json", b"{}"), "absolute path"),
        (("dir/key.json", b"{}"), "not <key>.<field>"),
        (("key.with.many.dots.json", b"{}"), "not <key>.<field>"),
        (_special("key.flac", tarfile.SYMTYPE, "/etc/passwd"), "symlink"),
        (_special("key.flac", tarfile.LNKTYPE, "other.flac"), "hard link"),
        (_special("key.dev", tarfile.CHRTYPE), "device"),
        (_special("key", tarfile.DIRTYPE), "non-file"),
    ],
)
def test_reader_rejects_hostile_members(tmp_path, member, message):
    path = _tar(tmp_path / "bad.tar", [("good.json", b"{}"), member])
    with pytest.raises(UnsafeShardError, match=message):
        list(iter_shard_samples(path))


def test_reader_groups_members_and_rejects_split_keys(tmp_path):
    ok = _tar(tmp_path / "ok.tar", [("a.flac", b"1"), ("a.json", b"2"), ("b.json", b"3")])
    assert list(iter_shard_samples(ok)) == [
        {"__key__": "a", "flac": b"1", "json": b"2"},
        {"__key__": "b", "json": b"3"},
    ]
    split = _tar(tmp_path / "split.tar", [("a.json", b"1"), ("b.json", b"2"), ("a.flac", b"3")])
    with pytest.raises(ShardFormatError, match="two places"):
        list(iter_shard_samples(split))
    (tmp_path / "junk.tar").write_bytes(b"not a tar at all" * 100)
    with pytest.raises(ShardFormatError):
        list(iter_shard_samples(tmp_path / "junk.tar"))


def test_webdataset_pipeline_with_member_check(tmp_path):
    bad = _tar(tmp_path / "bad.tar", [("good.json", b"{}"), ("../evil.json", b"{}")])
    ds = wds.WebDataset(str(bad), shardshuffle=False, select_files=check_member_name)
    with pytest.raises(UnsafeShardError):
        list(ds)


def test_writer_output_is_a_plain_reproducible_tar(warehouse, tmp_path):
    src = tmp_path / "a.bin"
    src.write_bytes(b"x" * 1000)
    rows = write_dataset_shards(warehouse, "demo", [Sample("k1", {"bin": src, "json": b'{"a":1}'})])
    with tarfile.open(warehouse.root / rows[0]["path"]) as tar:
        infos = tar.getmembers()
    assert [i.name for i in infos] == ["k1.bin", "k1.json"]
    assert {(i.mtime, i.uid, i.gid, i.uname, i.gname, i.mode) for i in infos} == {(0, 0, 0, "", "", 0o644)}
    assert rows[0]["bytes"] % 10240 == 0
