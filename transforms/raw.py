"""Raw layer: every row as exported (as text), with lineage, append-only, plus a file registry.

A file is identified by its SHA-256: loading a file already in the registry is a no-op, so a
re-run or a sensor that fires twice never duplicates rows. Each file loads in one transaction.
"""

from __future__ import annotations

import datetime as dt
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from transforms.forget import has_tombstones, tombstone_filter_sql
from transforms.readers import ReadOptions, file_sha256, read_export
from transforms.schema import ENTITIES
from transforms.sql import fetch_scalar, quote_ident, quote_literal

LINEAGE_DDL = "_source_file VARCHAR, _row_number BIGINT, _file_sha256 VARCHAR, _loaded_at TIMESTAMP"


class SchemaDriftError(ValueError):
    """An export lacks columns the config maps: names the file and the columns."""


@dataclass
class FileLoad:
    entity: str
    path: str
    sha256: str
    rows_read: int
    rows_loaded: int
    rows_rejected: int
    skipped: bool = False  # already in the registry
    rows_forgotten: int = 0  # rows of forgotten persons, dropped (transforms.forget)


def ensure_raw_schema(con) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS raw")
    for entity in ENTITIES.values():
        cols = ", ".join(f"{quote_ident(f)} VARCHAR" for f in entity.field_names)
        con.execute(f"CREATE TABLE IF NOT EXISTS raw.{entity.name} ({cols}, {LINEAGE_DDL})")
        for f in entity.field_names:  # a field added in a newer version: older warehouses gain it
            con.execute(f"ALTER TABLE raw.{entity.name} ADD COLUMN IF NOT EXISTS {quote_ident(f)} VARCHAR")
    con.execute(
        """CREATE TABLE IF NOT EXISTS raw.file_registry (
            file_sha256 VARCHAR, entity VARCHAR, source_file VARCHAR, size_bytes BIGINT,
            encoding VARCHAR, rows_read BIGINT, rows_loaded BIGINT, rows_rejected BIGINT,
            loaded_at TIMESTAMP, run_id VARCHAR, PRIMARY KEY (file_sha256, entity))"""
    )
    # rows of forgotten persons (transforms.forget): rows_read = loaded + rejected + forgotten
    con.execute("ALTER TABLE raw.file_registry ADD COLUMN IF NOT EXISTS rows_forgotten BIGINT DEFAULT 0")
    con.execute(
        """CREATE TABLE IF NOT EXISTS raw.file_errors (
            entity VARCHAR, source_file VARCHAR, error VARCHAR, seen_at TIMESTAMP, run_id VARCHAR)"""
    )
    con.execute(
        """CREATE TABLE IF NOT EXISTS raw.rejects (
            entity VARCHAR, source_file VARCHAR, file_sha256 VARCHAR, row_number BIGINT,
            column_name VARCHAR, value VARCHAR, reason VARCHAR, loaded_at TIMESTAMP)"""
    )


def file_hashes(con, paths: list[Path], rehash: bool = False) -> dict[Path, str]:
    """The SHA-256 of each file, computed only when its path, size or modification time differ
    from those recorded with its last hash (raw.file_hashes), as git's index does: hashing the
    2 GB of exports already loaded took about 3 s a night. A file modified within the last
    two seconds is hashed again next time (it may still change without its time moving);
    ``rehash`` hashes every file."""
    con.execute("""CREATE TABLE IF NOT EXISTS raw.file_hashes (
        path VARCHAR PRIMARY KEY, size_bytes BIGINT, mtime_ns BIGINT, file_sha256 VARCHAR)""")
    known = {path: (size, mtime, sha) for path, size, mtime, sha in
             con.execute("SELECT * FROM raw.file_hashes").fetchall()}
    hashes, hashed = {}, []
    for path in paths:
        stat = path.stat()
        size, mtime, sha = known.get(str(path), (None, None, None))
        if rehash or (size, mtime) != (stat.st_size, stat.st_mtime_ns):
            sha = file_sha256(path)
            if time.time_ns() - stat.st_mtime_ns > 2_000_000_000:
                hashed.append((str(path), stat.st_size, stat.st_mtime_ns, sha))
        hashes[path] = sha
    if hashed:
        con.executemany("INSERT OR REPLACE INTO raw.file_hashes VALUES (?, ?, ?, ?)", hashed)
    return hashes


def is_registered(con, sha256: str, entity: str) -> bool:
    return bool(fetch_scalar(
        con, "SELECT count(*) FROM raw.file_registry WHERE file_sha256 = ? AND entity = ?",
        [sha256, entity]))


def load_file(con, entity_name: str, path: Path, opts: ReadOptions, mapping: dict[str, str],
              loaded_at: dt.datetime, run_id: str = "", salt: str = "",
              optional: frozenset[str] = frozenset(), sha: str | None = None,
              sheet: pa.Table | None = None) -> FileLoad:
    """Append one export file to raw.<entity>. ``mapping``: canonical field → export column;
    ``optional``: fields whose column may be absent (NULL for this file); ``sha``: the file's
    sha256 when already known; ``sheet``: its XLSX sheet when already read."""
    sha = sha or file_sha256(path)
    if is_registered(con, sha, entity_name):
        return FileLoad(entity_name, str(path), sha, 0, 0, 0, skipped=True)
    entity = ENTITIES[entity_name]
    with tempfile.TemporaryDirectory(prefix="profiles_read_") as workdir:
        result = read_export(con, path, opts, "_read", Path(workdir), keys=list(mapping.values()),
                             sheet=sheet)
    present = set(result.columns)
    missing = {f: c for f, c in mapping.items() if c not in present and f not in optional}
    # JSON Lines omit absent keys (unionid, phone): only a missing *required* key is drift.
    if opts.format == "jsonl":
        missing = {f: c for f, c in missing.items() if entity.field(f).required}
    if missing:
        unmapped = sorted(present - set(mapping.values()))
        raise SchemaDriftError(
            f"{path}: missing column(s) {sorted(missing.values())} mapped for "
            f"{entity_name} field(s) {sorted(missing)}; columns not in the mapping: {unmapped}"
        )
    select = ", ".join(
        f"{quote_ident(mapping[f]) if f in mapping and mapping[f] in present else 'NULL'}"
        f"::VARCHAR AS {quote_ident(f)}"
        for f in entity.field_names
    )
    source_file = quote_literal(str(path))
    con.execute("BEGIN TRANSACTION")
    try:
        forgotten = _drop_forgotten(con, entity_name, mapping, present, salt)
        con.execute(
            f"""INSERT INTO raw.{entity_name} BY NAME
            SELECT {select}, {source_file} AS _source_file, _row_number,
                   ?::VARCHAR AS _file_sha256, ?::TIMESTAMP AS _loaded_at
            FROM _read ORDER BY _row_number""",
            [sha, loaded_at],
        )
        if result.rejects:
            con.executemany(
                "INSERT INTO raw.rejects VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(entity_name, str(path), sha, row, col, value, reason, loaded_at)
                 for row, col, value, reason in result.rejects],
            )
        rows_loaded = result.rows_read - len(result.rejects) - forgotten
        con.execute(
            """INSERT INTO raw.file_registry (file_sha256, entity, source_file, size_bytes,
                encoding, rows_read, rows_loaded, rows_rejected, loaded_at, run_id, rows_forgotten)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            [sha, entity_name, str(path), path.stat().st_size, result.encoding, result.rows_read,
             rows_loaded, len(result.rejects), loaded_at, run_id, forgotten],
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.execute("DROP TABLE IF EXISTS _read")
    return FileLoad(entity_name, str(path), sha, result.rows_read, rows_loaded, len(result.rejects),
                    rows_forgotten=forgotten)


def _drop_forgotten(con, entity_name: str, mapping: dict[str, str], present: set[str],
                    salt: str) -> int:
    """Delete the rows of forgotten persons from the file just read (before they reach raw)."""
    if not salt or not has_tombstones(con):
        return 0
    columns = {f: c for f, c in mapping.items() if c in present}
    condition = tombstone_filter_sql(entity_name, columns, salt)
    if condition is None:
        return 0
    return con.execute(f"DELETE FROM _read WHERE {condition}").fetchall()[0][0]
