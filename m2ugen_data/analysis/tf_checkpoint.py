"""Read TensorFlow-1 checkpoints ("tensor bundles") with numpy alone.

Why: the only trained music taggers that ship inside a PyPI wheel (musicnn 0.1.0) are TF1 checkpoints, and
TensorFlow itself pins numpy < 2 and weighs hundreds of MB. The format is small enough to read by hand:

- ``<prefix>.index`` is a LevelDB-format table (uncompressed blocks, each with a masked CRC-32C). Its keys are
  variable names; the empty key holds a ``BundleHeaderProto`` (shard count, endianness) and every other
  value is a ``BundleEntryProto`` (dtype, shape, shard, offset, size, masked CRC-32C of the bytes).
- ``<prefix>.data-NNNNN-of-MMMMM`` holds the raw little-endian tensor bytes at those offsets.

The protobuf messages are decoded here field by field (varints and length-delimited fields only), so no
protobuf package is needed. Every inconsistency (truncated file, bad magic, CRC mismatch, tensor past the end
of the data file) becomes a one-line ``M2UGenError`` that names the file.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import BinaryIO

import numpy as np

from m2ugen_data.errors import M2UGenError

_TABLE_MAGIC = 0xDB4775248B80FB57  # LevelDB table footer magic
_FOOTER_LEN = 48  # two varint block handles padded to 40 bytes + 8-byte magic
_BLOCK_TRAILER_LEN = 5  # 1 byte compression type + 4 bytes masked CRC-32C
_CRC_MASK_DELTA = 0xA282EAD8

# tensorflow/core/framework/types.proto DataType -> little-endian numpy dtype
_DTYPES: dict[int, str] = {
    1: "<f4",  # DT_FLOAT
    2: "<f8",  # DT_DOUBLE
    3: "<i4",  # DT_INT32
    4: "|u1",  # DT_UINT8
    5: "<i2",  # DT_INT16
    6: "|i1",  # DT_INT8
    9: "<i8",  # DT_INT64
    10: "|b1",  # DT_BOOL
    17: "<u2",  # DT_UINT16
    19: "<f2",  # DT_HALF
}


class _Corrupt(ValueError):
    """Raised by the byte-level parsers; the public functions turn it into an M2UGenError naming the file."""


@dataclass(frozen=True)
class TensorEntry:
    """Where one variable's bytes live in the data shard(s), as the ``.index`` file says."""

    name: str
    dtype_code: int
    shape: tuple[int, ...]
    shard: int
    offset: int
    size: int
    masked_crc: int | None


@dataclass(frozen=True)
class CheckpointIndex:
    """The parsed ``.index`` file: its path, its shard count and one entry per variable."""

    path: Path
    num_shards: int
    entries: dict[str, TensorEntry]

    def data_path(self, shard: int) -> Path:
        """The data file of one shard: ``<prefix>.data-00000-of-00001`` for ``<prefix>.index``."""
        prefix = self.path.name[: -len(".index")]
        return self.path.with_name(f"{prefix}.data-{shard:05d}-of-{self.num_shards:05d}")


# ---------------------------------------------------------------------------------------------- CRC-32C


@cache
def _crc32c_table() -> tuple[int, ...]:
    """Byte table of the Castagnoli polynomial (reflected 0x82F63B78), built once."""
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


def crc32c(data: bytes) -> int:
    """CRC-32C of ``data``. Pure Python (~0.15 s per MB): it runs once per checkpoint conversion only."""
    table = _crc32c_table()
    crc = 0xFFFFFFFF
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """LevelDB/TensorFlow store CRCs rotated and offset, so that a CRC of data holding CRCs stays strong."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _CRC_MASK_DELTA) & 0xFFFFFFFF


# ---------------------------------------------------------------------------------------------- protobuf


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Decode one base-128 varint at ``pos``; return (value, next position)."""
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise _Corrupt("varint runs past the end")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise _Corrupt("varint longer than 10 bytes")


def _take(buf: bytes, pos: int, n: int) -> tuple[bytes, int]:
    """``n`` bytes at ``pos``, refusing to read past the end (slicing alone would silently shorten)."""
    if n < 0 or pos + n > len(buf):
        raise _Corrupt(f"field of {n} bytes at {pos} runs past the end ({len(buf)} bytes)")
    return buf[pos : pos + n], pos + n


def _proto_fields(buf: bytes) -> Iterator[tuple[int, int | bytes]]:
    """Yield (field number, value) of a protobuf message: ints for varint/fixed fields, bytes otherwise."""
    pos = 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        field, wire = tag >> 3, tag & 7
        value: int | bytes
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            raw, pos = _take(buf, pos, 8)
            value = struct.unpack("<Q", raw)[0]
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = _take(buf, pos, length)
        elif wire == 5:
            raw, pos = _take(buf, pos, 4)
            value = struct.unpack("<I", raw)[0]
        else:
            raise _Corrupt(f"unsupported protobuf wire type {wire}")
        yield field, value


def _int_field(fields: dict[int, int | bytes], number: int, default: int = 0) -> int:
    """An integer field of a decoded message; a length-delimited value there means a corrupt record."""
    value = fields.get(number, default)
    if not isinstance(value, int):
        raise _Corrupt(f"protobuf field {number} is not an integer")
    return value


def _shape(buf: bytes) -> tuple[int, ...]:
    """TensorShapeProto: repeated ``dim`` (field 2), each a Dim whose ``size`` is field 1."""
    dims = []
    for field, value in _proto_fields(buf):
        if field == 2 and isinstance(value, bytes):
            dims.append(_int_field(dict(_proto_fields(value)), 1))
        elif field == 3 and value:
            raise _Corrupt("tensor of unknown rank")
    return tuple(dims)


def _entry(name: str, buf: bytes) -> TensorEntry:
    """BundleEntryProto: dtype 1, shape 2, shard_id 3, offset 4, size 5, crc32c 6, slices 7."""
    fields: dict[int, int | bytes] = {}
    for field, value in _proto_fields(buf):
        if field == 7:
            raise _Corrupt(f"variable {name!r} is stored in slices (partitioned), which is not supported")
        fields[field] = value
    shape = fields.get(2, b"")
    if not isinstance(shape, bytes):
        raise _Corrupt(f"variable {name!r} has a malformed shape")
    return TensorEntry(
        name=name,
        dtype_code=_int_field(fields, 1),
        shape=_shape(shape),
        shard=_int_field(fields, 3),
        offset=_int_field(fields, 4),
        size=_int_field(fields, 5),
        masked_crc=_int_field(fields, 6) if 6 in fields else None,
    )


# ---------------------------------------------------------------------------------------------- LevelDB table


def _block(table: bytes, handle: bytes) -> bytes:
    """The contents of the block a BlockHandle (varint offset, varint size) points at, CRC-checked."""
    offset, pos = _varint(handle, 0)
    size, _ = _varint(handle, pos)
    contents, end = _take(table, offset, size)
    trailer, _ = _take(table, end, _BLOCK_TRAILER_LEN)
    if trailer[0] != 0:
        raise _Corrupt(f"block at {offset} is compressed (type {trailer[0]}); only uncompressed is supported")
    if struct.unpack("<I", trailer[1:])[0] != masked_crc32c(contents + trailer[:1]):
        raise _Corrupt(f"CRC mismatch in block at {offset}")
    return contents


def _block_entries(block: bytes) -> Iterator[tuple[bytes, bytes]]:
    """Yield (key, value) of a block: prefix-compressed keys, then the restart array we do not need."""
    if len(block) < 4:
        raise _Corrupt("block shorter than its restart count")
    num_restarts = struct.unpack("<I", block[-4:])[0]
    end = len(block) - 4 * (num_restarts + 1)
    if end < 0:
        raise _Corrupt("restart array larger than its block")
    pos, key = 0, b""
    while pos < end:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        value_len, pos = _varint(block, pos)
        if shared > len(key):
            raise _Corrupt("key shares more bytes than the previous key has")
        suffix, pos = _take(block, pos, unshared)
        value, pos = _take(block, pos, value_len)
        key = key[:shared] + suffix
        yield key, value


def _table_entries(table: bytes) -> Iterator[tuple[bytes, bytes]]:
    """Yield every (key, value) of a LevelDB table, following the index block to each data block."""
    if len(table) < _FOOTER_LEN:
        raise _Corrupt(f"{len(table)} bytes, shorter than a table footer")
    footer = table[-_FOOTER_LEN:]
    if struct.unpack("<Q", footer[-8:])[0] != _TABLE_MAGIC:
        raise _Corrupt("not a LevelDB table (bad footer magic)")
    _, pos = _varint(footer, 0)  # metaindex offset; the bundle writer leaves the metaindex empty
    _, pos = _varint(footer, pos)
    index_handle = footer[pos:]
    for _, data_handle in _block_entries(_block(table, index_handle)):
        yield from _block_entries(_block(table, data_handle))


def _parse_index(path: Path, table: bytes) -> CheckpointIndex:
    """Header (empty key) and entries of a bundle index, checking endianness and shard ids."""
    num_shards, entries = 1, {}
    for key, value in _table_entries(table):
        if key == b"":
            header = dict(_proto_fields(value))
            num_shards = _int_field(header, 1, default=1)
            if _int_field(header, 2) != 0:  # endianness: 0 is little
                raise _Corrupt("big-endian checkpoint")
            continue
        name = key.decode("utf-8", errors="strict")
        entries[name] = _entry(name, value)
    for entry in entries.values():
        if not 0 <= entry.shard < num_shards:
            raise _Corrupt(f"variable {entry.name!r} names shard {entry.shard} of {num_shards}")
    return CheckpointIndex(path=path, num_shards=num_shards, entries=entries)


def read_index(index_path: Path) -> CheckpointIndex:
    """Parse a checkpoint's ``.index`` file; a missing or corrupt file is a one-line M2UGenError."""
    index_path = Path(index_path)
    try:
        table = index_path.read_bytes()
    except OSError as exc:
        raise M2UGenError(f"cannot read TensorFlow checkpoint index {index_path}: {exc.strerror}") from None
    try:
        return _parse_index(index_path, table)
    except (_Corrupt, UnicodeDecodeError) as exc:
        raise M2UGenError(f"corrupt TensorFlow checkpoint index {index_path}: {exc}") from None


# ---------------------------------------------------------------------------------------------- tensors


def _read_tensor(fh: BinaryIO, path: Path, file_size: int, entry: TensorEntry) -> np.ndarray:
    """One tensor's bytes from an open data file, size- and CRC-checked, as a writable numpy array."""
    dtype_str = _DTYPES.get(entry.dtype_code)
    if dtype_str is None:
        raise M2UGenError(f"{path}: variable {entry.name!r} has unsupported TensorFlow dtype {entry.dtype_code}")
    dtype = np.dtype(dtype_str)
    count = int(np.prod(entry.shape, dtype=np.int64))
    if count * dtype.itemsize != entry.size or entry.offset + entry.size > file_size:
        raise M2UGenError(
            f"corrupt or truncated TensorFlow checkpoint data {path}: variable {entry.name!r} "
            f"({entry.size} bytes at {entry.offset}, shape {entry.shape}) does not fit the {file_size}-byte file"
        )
    fh.seek(entry.offset)
    raw = fh.read(entry.size)
    if entry.masked_crc is not None and masked_crc32c(raw) != entry.masked_crc:
        raise M2UGenError(f"corrupt TensorFlow checkpoint data {path}: CRC mismatch in variable {entry.name!r}")
    return np.frombuffer(raw, dtype=dtype).reshape(entry.shape).astype(dtype.newbyteorder("="), copy=True)


def read_tensors(index: CheckpointIndex, names: Iterable[str]) -> dict[str, np.ndarray]:
    """Read the named variables (only those: training slots such as Adam moments are never touched)."""
    wanted = list(names)
    missing = [name for name in wanted if name not in index.entries]
    if missing:
        raise M2UGenError(f"TensorFlow checkpoint {index.path} lacks variable(s) {', '.join(missing)}")
    tensors: dict[str, np.ndarray] = {}
    for shard in sorted({index.entries[name].shard for name in wanted}):
        path = index.data_path(shard)
        try:
            with path.open("rb") as fh:
                file_size = path.stat().st_size
                for name in wanted:
                    if index.entries[name].shard == shard:
                        tensors[name] = _read_tensor(fh, path, file_size, index.entries[name])
        except OSError as exc:
            raise M2UGenError(f"cannot read TensorFlow checkpoint data {path}: {exc.strerror}") from None
    return tensors
