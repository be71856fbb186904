"""The warehouse: where every stage's results land, as Parquet manifests plus media and shards.

Layout (relative to the root)::

    manifests/<name>/<batch_id>.parquet   append-only batches, one schema per manifest (schemas.py)
    media/{audio,video,image}/<yt[:2]>/<clip_id>.<ext>
    shards/<dataset>/<dataset>-NNNNNN.tar
    catalog.duckdb                        one view per manifest (+ <name>_latest) for any DuckDB client

Why batches: a stage writes one file per unit of work (a batch of clips), through a temporary name and a
rename, so a crash never exposes a partial file and re-running the same batch replaces its file instead of
duplicating rows. Readers see the union of batches; ``latest`` keeps the newest row per manifest key.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from m2ugen_data.atomic import atomic_path
from m2ugen_data.errors import SchemaError, WarehouseError
from m2ugen_data.ids import media_relpath, validate_batch_id
from m2ugen_data.schemas import MANIFESTS, SCHEMA_VERSION, Manifest, get_manifest

ENV_VAR = "M2UGEN_WAREHOUSE"
CATALOG_FILE = "catalog.duckdb"


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def duck_connect(database: str = ":memory:") -> duckdb.DuckDBPyConnection:
    """A DuckDB connection that spills to the system temp dir, not to ``./.tmp`` under whatever cwd we run in."""
    spill = Path(tempfile.gettempdir()) / "m2ugen-duckdb-spill"
    return duckdb.connect(database, config={"temp_directory": str(spill)})


def default_root() -> Path:
    return Path(os.environ.get(ENV_VAR) or "warehouse")


@dataclass(frozen=True)
class Warehouse:
    root: Path

    def manifest_dir(self, name: str) -> Path:
        return self.root / "manifests" / get_manifest(name).name

    def abspath(self, relpath: str | Path) -> Path:
        return self.root / relpath

    def media_path(self, kind: str, clip_id: str, ext: str) -> Path:
        return self.root / media_relpath(kind, clip_id, ext)

    def manifest_files(self, name: str) -> list[Path]:
        d = self.manifest_dir(name)
        return sorted(d.glob("*.parquet")) if d.is_dir() else []

    def has_batch(self, name: str, batch_id: str) -> bool:
        return (self.manifest_dir(name) / f"{validate_batch_id(batch_id)}.parquet").exists()

    def write_batch(
        self, name: str, data: pa.Table | Sequence[Mapping[str, Any]], batch_id: str
    ) -> Path:
        """Validate ``data`` against the manifest schema and write it atomically as one batch file.

        Writing the same ``batch_id`` again replaces the earlier file (idempotent reruns).
        """
        manifest = get_manifest(name)
        table = conform(manifest, data)
        target = self.manifest_dir(name) / f"{validate_batch_id(batch_id)}.parquet"
        try:
            with atomic_path(target) as tmp:
                pq.write_table(table, tmp, compression="zstd")
        except OSError as e:
            raise WarehouseError(f"cannot write {target}: {e.strerror or e}") from e
        return target

    def read(self, name: str, *, latest: bool = True, where: str | None = None) -> pa.Table:
        """All rows of a manifest (the newest per key when ``latest``), cast to the declared schema."""
        manifest = get_manifest(name)
        files = self.manifest_files(name)
        if not files:
            return manifest.schema.empty_table()
        check_parquet_files(files)
        con = duck_connect()
        sql = _select_sql(manifest, _glob(self, manifest), latest)
        if where:
            sql = f"SELECT * FROM ({sql}) WHERE {where}"
        table = con.sql(sql).to_arrow_table()
        return _to_schema(manifest, table)

    def connect(self) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB connection with one view per manifest (and ``<name>_latest``)."""
        con = duck_connect()
        _create_views(con, self)
        return con

    def refresh_catalog(self) -> Path:
        """(Re)write ``catalog.duckdb`` so external DuckDB clients see every manifest as a view.

        Views hold absolute globs: after moving the warehouse run ``m2ugen-data catalog`` again.
        """
        path = self.root / CATALOG_FILE
        try:
            con = duck_connect(str(path))
        except duckdb.Error as e:
            raise WarehouseError(f"cannot open catalog {path}: {e}") from e
        try:
            _create_views(con, self)
        finally:
            con.close()
        return path


def open_warehouse(root: str | Path | None = None, *, create: bool = True) -> Warehouse:
    """Resolve the root (argument, then $M2UGEN_WAREHOUSE, then ./warehouse) and make sure it is usable."""
    path = Path(root) if root is not None else default_root()
    path = path.expanduser().resolve()
    if create:
        try:
            (path / "manifests").mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise WarehouseError(f"cannot create warehouse at {path}: {e.strerror or e}") from e
        if not os.access(path / "manifests", os.W_OK):
            raise WarehouseError(f"warehouse at {path} is not writable")
    elif not path.is_dir():
        raise WarehouseError(f"no warehouse at {path}")
    return Warehouse(path)


def conform(manifest: Manifest, data: pa.Table | Sequence[Mapping[str, Any]]) -> pa.Table:
    """Build a table with exactly the manifest's schema, or raise naming the offending column."""
    schema = manifest.schema
    if isinstance(data, pa.Table):
        _check_names(manifest, data.column_names)
        columns = []
        for field in schema:
            col = data.column(field.name)
            if col.type != field.type:
                try:
                    col = col.cast(field.type, safe=True)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as e:
                    raise _type_error(manifest, field, col.type, e) from None
            columns.append(col)
    else:
        rows = list(data)
        for i, row in enumerate(rows):
            _check_names(manifest, row.keys(), where=f"row {i}")
        columns = []
        for field in schema:
            values = [row[field.name] for row in rows]
            try:
                columns.append(pa.array(values, type=field.type))
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError) as e:
                raise _type_error(manifest, field, None, e) from None
    for field, col in zip(schema, columns):
        if not field.nullable and col.null_count:
            raise SchemaError(
                f"manifest {manifest.name!r}: column {field.name!r} ({field.type}) may not be null"
            )
    meta = {b"m2ugen.manifest": manifest.name.encode(), b"m2ugen.schema_version": SCHEMA_VERSION.encode()}
    return pa.Table.from_arrays(columns, schema=schema.with_metadata(meta))


def _check_names(manifest: Manifest, names: Iterable[str], where: str = "table") -> None:
    got = list(names)
    expected = manifest.schema.names
    for n in expected:
        if n not in got:
            t = manifest.schema.field(n).type
            raise SchemaError(f"manifest {manifest.name!r}: {where} lacks column {n!r} (expected {t})")
    for n in got:
        if n not in expected:
            raise SchemaError(f"manifest {manifest.name!r}: {where} has unknown column {n!r}")


def _type_error(manifest: Manifest, field: pa.Field, got: pa.DataType | None, err: Exception) -> SchemaError:
    detail = f"got {got}" if got is not None else str(err).splitlines()[0]
    return SchemaError(
        f"manifest {manifest.name!r}: column {field.name!r} expects {field.type} ({detail})"
    )


def check_parquet_files(files: Iterable[Path]) -> None:
    """Fail with the path of the first unreadable Parquet file (a one-line error, not a DuckDB trace)."""
    for f in files:
        try:
            pq.read_metadata(f)
        except (OSError, pa.ArrowException) as e:
            raise WarehouseError(
                f"corrupt Parquet file {f}: {str(e).splitlines()[0]} "
                "(move it aside and re-run the stage that wrote it)"
            ) from e


def _glob(wh: Warehouse, manifest: Manifest) -> str:
    return str(wh.manifest_dir(manifest.name) / "*.parquet").replace("'", "''")


def _select_sql(manifest: Manifest, glob: str, latest: bool) -> str:
    src = f"read_parquet('{glob}', union_by_name=true, filename=true)"
    if not latest:
        return f"SELECT * EXCLUDE (filename) FROM {src}"
    keys = ", ".join(f'"{k}"' for k in manifest.key)
    return (
        f"SELECT * EXCLUDE (filename) FROM {src} "
        f'QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY "{manifest.order_by}" DESC, filename DESC) = 1'
    )


_DUCK_TYPES = {
    pa.string(): "VARCHAR",
    pa.float64(): "DOUBLE",
    pa.float32(): "FLOAT",
    pa.int32(): "INTEGER",
    pa.int64(): "BIGINT",
    pa.bool_(): "BOOLEAN",
}


def _duck_type(t: pa.DataType) -> str:
    if pa.types.is_list(t):
        return _duck_type(t.value_type) + "[]"
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ" if t.tz else "TIMESTAMP"
    return _DUCK_TYPES[t]


def _empty_sql(manifest: Manifest) -> str:
    cols = ", ".join(f'CAST(NULL AS {_duck_type(f.type)}) AS "{f.name}"' for f in manifest.schema)
    return f"SELECT {cols} WHERE false"


def _create_views(con: duckdb.DuckDBPyConnection, wh: Warehouse) -> None:
    for manifest in MANIFESTS.values():
        files = wh.manifest_files(manifest.name)
        if files:
            check_parquet_files(files)
            glob = _glob(wh, manifest)
            plain, latest = _select_sql(manifest, glob, False), _select_sql(manifest, glob, True)
        else:
            plain = latest = _empty_sql(manifest)
        con.execute(f'CREATE OR REPLACE VIEW "{manifest.name}" AS {plain}')
        con.execute(f'CREATE OR REPLACE VIEW "{manifest.name}_latest" AS {latest}')


def _to_schema(manifest: Manifest, table: pa.Table) -> pa.Table:
    cols = []
    for field in manifest.schema:
        if field.name in table.column_names:
            cols.append(table.column(field.name).cast(field.type))
        else:  # a batch written before the column existed
            cols.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(cols, schema=manifest.schema)
