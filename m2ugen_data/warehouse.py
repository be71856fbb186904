"""The warehouse: where every stage's results land, as Parquet manifests plus media and shards.

Layout (relative to the root)::

    manifests/<name>/<batch_id>.parquet   append-only batches, one schema per manifest (schemas.py)
    media/{audio,video,image}/<yt[:2]>/<clip_id>.<ext>
    shards/<dataset>/<dataset>-NNNNNN.tar
    catalog.duckdb                        one view per manifest (+ <name>_latest) for any DuckDB client

Why batches: a stage writes one file per unit of work (a batch of clips), through a temporary name and a
rename, so a crash never exposes a partial file and re-running the same batch replaces its file instead of
duplicating rows. Readers see the union of batches; ``latest`` keeps the newest row per manifest key.
Readers list a manifest's *live* files (``filesets.scan``: batches that ``compact.py`` merged are hidden once
the merged files are all there) and query exactly that list, so a compaction running meanwhile never shows
a row twice or not at all.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import socket
import tempfile
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from m2ugen_data.atomic import atomic_path, glob_escape, remove_dead_temps
from m2ugen_data.errors import SchemaError, WarehouseError
from m2ugen_data.filesets import scan
from m2ugen_data.ids import media_relpath, validate_batch_id
from m2ugen_data.schemas import MANIFESTS, SCHEMA_VERSION, Manifest, get_manifest

ENV_VAR = "M2UGEN_WAREHOUSE"
CATALOG_FILE = "catalog.duckdb"
READ_ATTEMPTS = 5  # a file listed as live can be purged by a compaction before DuckDB opens it: list again
_OPENED: set[Path] = set()  # warehouses this process opened, for ``explain_duckdb_error``


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def duck_connect(database: str = ":memory:") -> duckdb.DuckDBPyConnection:
    """A DuckDB connection that spills to the system temp dir, not to ``./.tmp`` under whatever cwd we run in."""
    spill = Path(tempfile.gettempdir()) / "m2ugen-duckdb-spill"
    return duckdb.connect(database, config={"temp_directory": str(spill)})


def unique_batch_id(stage: str) -> str:
    """A batch id no other run on any machine will pick: time, host, pid and randomness (many writers may
    share one warehouse; a collision would silently replace another run's batch)."""
    host = re.sub(r"[^A-Za-z0-9_-]+", "-", socket.gethostname())[:40] or "host"
    return validate_batch_id(f"{stage}-{utc_now():%Y%m%dT%H%M%S}-{host}-{os.getpid()}-{uuid.uuid4().hex[:8]}")


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
        """The manifest's live batch files (merged batches hidden, see ``filesets``), sorted by name."""
        return scan(self.manifest_dir(name)).live

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
            remove_dead_temps(target)  # a killed writer's leftover of this batch, else never removed
            with atomic_path(target) as tmp:
                pq.write_table(table, tmp, compression="zstd")
        except OSError as e:
            raise WarehouseError(f"cannot write {target}: {e.strerror or e}") from e
        return target

    def read(self, name: str, *, latest: bool = True, where: str | None = None) -> pa.Table:
        """All rows of a manifest (the newest per key when ``latest``), cast to the declared schema."""
        manifest = get_manifest(name)
        for attempt in range(READ_ATTEMPTS):
            files = self.manifest_files(name)
            if not files:
                return manifest.schema.empty_table()
            check_parquet_files(files, manifest)
            sql = _select_sql(manifest, _source(files), latest)
            if where:
                sql = f"SELECT * FROM ({sql}) WHERE {where}"
            try:
                table = duck_connect().sql(sql).to_arrow_table()
            except duckdb.Error as e:
                if attempt + 1 < READ_ATTEMPTS and not all(f.exists() for f in files):
                    continue  # purged after we listed it: list again
                raise (explain_duckdb_error(e, files) or e) from e
            return _to_schema(manifest, table)
        raise AssertionError("unreachable")

    def connect(self) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB connection with one view per manifest (and ``<name>_latest``).

        The views read the files that were live when this was called (a snapshot: batches written later are
        not seen; merged batches stay readable for the compaction's grace period)."""
        for attempt in range(READ_ATTEMPTS):
            con = duck_connect()
            try:
                _create_views(con, self, snapshot=True)
                return con
            except duckdb.IOException as e:  # a file purged between listing and binding: list again
                if attempt + 1 == READ_ATTEMPTS:
                    raise (explain_duckdb_error(e) or e) from e
        raise AssertionError("unreachable")

    def refresh_catalog(self) -> Path:
        """(Re)write ``catalog.duckdb`` so external DuckDB clients see every manifest as a view.

        Views hold absolute globs (so batches written later show up) minus the files a compaction merged
        when this ran: after moving the warehouse, or to hide batches merged since, run ``m2ugen-data catalog``
        again (``compact`` does). A root with a backslash cannot be a DuckDB glob: its views list the files
        live now instead (run ``catalog`` again to see later batches).

        Built under the temp directory and copied into place atomically: DuckDB cannot open a database whose
        path holds '?' or a backslash, and a client reading the old catalog meanwhile is never disturbed.
        """
        path = self.root / CATALOG_FILE
        if not os.access(self.root, os.W_OK):
            raise WarehouseError(f"cannot write catalog {path}: the warehouse is read-only")
        with tempfile.TemporaryDirectory(prefix="m2ugen-catalog-") as tmp:
            built = Path(tmp) / CATALOG_FILE
            try:
                con = duck_connect(str(built))
            except duckdb.Error as e:
                raise WarehouseError(f"cannot build catalog in {tmp}: {str(e).splitlines()[0]}") from e
            try:
                _create_views(con, self, snapshot="\\" in str(self.root))
            finally:
                con.close()
            try:
                with atomic_path(path) as out:
                    shutil.copyfile(built, out)
            except OSError as e:
                raise WarehouseError(f"cannot write catalog {path}: {e.strerror or e}") from e
        return path


def open_warehouse(root: str | Path | None = None, *, create: bool = True) -> Warehouse:
    """Resolve the root (argument, then $M2UGEN_WAREHOUSE, then ./warehouse) and make sure it is usable."""
    path = Path(root) if root is not None else default_root()
    path = path.expanduser().resolve()
    if create and not (path / "manifests").is_dir():
        try:
            (path / "manifests").mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise WarehouseError(f"cannot create warehouse at {path}: {e.strerror or e}") from e
    elif not path.is_dir():
        raise WarehouseError(f"no warehouse at {path}")
    # an existing read-only warehouse opens: queries and verification must work on it; writers fail on their
    # first write with one line (stages that claim work fail before they start, see claims.py)
    _OPENED.add(path)
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


def check_parquet_files(files: Iterable[Path], manifest: Manifest | None = None) -> None:
    """Fail with the path of the first unreadable Parquet file (a one-line error, not a DuckDB trace), and,
    given the ``manifest``, of the first file that belongs to another one (written for another manifest, or
    lacking its key columns: read as this one it would give rows with NULL keys)."""
    for f in files:
        try:
            md = pq.read_metadata(f)
        except FileNotFoundError:
            continue  # purged since it was listed; the query that follows lists again
        except (OSError, pa.ArrowException) as e:
            raise WarehouseError(
                f"corrupt Parquet file {f}: {str(e).splitlines()[0]} "
                "(move it aside and re-run the stage that wrote it)"
            ) from e
        if manifest is not None:
            _check_belongs(f, md, manifest)


def _check_belongs(f: Path, md: pq.FileMetaData, manifest: Manifest) -> None:
    written_for = (md.metadata or {}).get(b"m2ugen.manifest", b"").decode(errors="replace")
    if written_for and written_for != manifest.name:
        raise SchemaError(
            f"{f} is a {written_for!r} file in the {manifest.name!r} manifest directory (move it out)"
        )
    names = set(md.schema.names)
    missing = [k for k in manifest.key if k not in names]
    if missing:
        raise SchemaError(
            f"{f} lacks the key column(s) {missing} of manifest {manifest.name!r}: not one of its batches (move it out)"
        )


def find_corrupt_file(files: Iterable[Path]) -> tuple[Path, str] | None:
    """The first file whose data pages do not decode, and pyarrow's reason (reads every page: only called
    after DuckDB failed, to say which file it choked on)."""
    for f in files:
        try:
            pq.ParquetFile(f).read()
        except FileNotFoundError:
            continue
        except (OSError, pa.ArrowException) as e:
            return f, " ".join(str(e).split())[:200]
    return None


def explain_duckdb_error(err: Exception, files: Iterable[Path] | None = None) -> WarehouseError | None:
    """When a DuckDB failure reading manifests comes from a corrupt file, one line naming it; else None (the
    caller keeps DuckDB's error: a query mistake or a bug, not the data).

    ``files``: the files that query read; None: every live manifest file of the warehouses this process
    opened (for the CLI's last-resort handler, which does not know what the failing query read)."""
    if files is None:
        files = [f for root in sorted(_OPENED) for m in MANIFESTS for f in Warehouse(root).manifest_files(m)]
    bad = find_corrupt_file(files)
    if bad is None:
        return None
    return WarehouseError(
        f"corrupt Parquet data in {bad[0]}: {bad[1]} (move it aside and re-run the stage that wrote it)"
    )


def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _duck_path(path: Path) -> str:
    """A path for ``read_parquet`` as a SQL literal. DuckDB reads every path as a glob, so a warehouse under
    ``data[v2]`` or ``runs*`` would match other directories' files, or none: its glob characters are
    escaped. A backslash cannot be escaped (DuckDB takes it for a separator): such a path goes as it is,
    which DuckDB opens literally when that file exists."""
    s = str(path)
    return _sql_str(s if "\\" in s else glob_escape(s))


def _source(files: Sequence[Path]) -> str:
    """``read_parquet`` over exactly these files: the reader's snapshot of the live set."""
    listed = ", ".join(_duck_path(f) for f in files)
    return f"read_parquet([{listed}], union_by_name=true, filename=true)"


def _glob_source(directory: Path, hidden: Sequence[Path]) -> tuple[str, str]:
    """``read_parquet`` over a glob (batches written later show up) and a filter hiding merged files."""
    src = f"read_parquet({_sql_str(glob_escape(str(directory)) + '/*.parquet')}, union_by_name=true, filename=true)"
    if not hidden:
        return src, ""
    return src, f"WHERE filename NOT IN ({', '.join(_sql_str(str(f)) for f in hidden)})"


def _select_sql(manifest: Manifest, src: str, latest: bool, where: str = "") -> str:
    if not latest:
        return f"SELECT * EXCLUDE (filename) FROM {src} {where}"
    keys = ", ".join(f'"{k}"' for k in manifest.key)
    return (
        f"SELECT * EXCLUDE (filename) FROM {src} {where} "
        f'QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY "{manifest.order_by}" DESC, filename DESC) = 1'
    )


_DUCK_TYPES = {
    pa.string(): "VARCHAR",
    pa.float64(): "DOUBLE",
    pa.float32(): "FLOAT",
    pa.int32(): "INTEGER",
    pa.int64(): "BIGINT",
    pa.bool_(): "BOOLEAN",
    pa.binary(): "BLOB",
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


def _create_views(con: duckdb.DuckDBPyConnection, wh: Warehouse, *, snapshot: bool) -> None:
    for manifest in MANIFESTS.values():
        fileset = scan(wh.manifest_dir(manifest.name))
        files = fileset.live
        if files:
            check_parquet_files(files, manifest)
            if snapshot:
                src, where = _source(files), ""
            else:
                src, where = _glob_source(wh.manifest_dir(manifest.name), fileset.superseded + fileset.incomplete)
            plain, latest = _select_sql(manifest, src, False, where), _select_sql(manifest, src, True, where)
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
