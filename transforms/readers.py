"""Read one export file (CSV, XLSX or JSONL) into a DuckDB temp table of strings.

Every reader yields the same shape: a temp table with one VARCHAR column per *header* of the
file plus ``_row_number`` (the line or sheet row a person sees in an editor or Excel), and a
list of structural rejects (row, column, value, reason) for rows that could not be split into
fields. Values are kept exactly as exported; typing happens in staging.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import duckdb
import fastexcel
import numpy as np
import pyarrow as pa

from transforms.sql import quote_ident, quote_literal
from transforms.xlsx_header import xlsx_header

_CHUNK = 1 << 20


class ExportFileError(ValueError):
    """An export file cannot be read at all (unknown encoding, missing sheet, no header)."""


@dataclass
class ReadOptions:
    format: str  # csv / xlsx / jsonl
    encoding: str = "auto"
    delimiter: str = ","
    header_row: int = 1  # 1-based line (CSV) or sheet row (XLSX) holding the header
    sheet: str | int | None = None


@dataclass
class ReadResult:
    table: str  # temp table: header columns (VARCHAR) + _row_number
    columns: list[str]
    rows_read: int  # good rows + rejected rows
    encoding: str | None = None
    rejects: list[tuple[int, str | None, str | None, str]] = field(default_factory=list)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def detect_encoding(path: Path) -> str:
    """UTF-8 BOM → utf-8-sig; valid UTF-8 → utf-8; otherwise GB18030 (a superset of GBK/GB2312).

    Reliable for these three: GB18030 text is almost never valid UTF-8, and any byte sequence
    that is not UTF-8 is what Chinese Excel / CRM exports produce in GB18030.
    """
    with open(path, "rb") as fh:
        if fh.read(3) == codecs.BOM_UTF8:
            return "utf-8-sig"
        fh.seek(0)
        decoder = codecs.getincrementaldecoder("utf-8")()
        try:
            while chunk := fh.read(_CHUNK):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return "gb18030"
    return "utf-8"


def _utf8_path(path: Path, encoding: str, workdir: Path) -> Path:
    """DuckDB reads only UTF-8 (the encodings extension cannot be installed): transcode others."""
    if codecs.lookup(encoding).name in ("utf-8", "utf-8-sig"):
        return path
    target = workdir / (path.name + ".utf8")
    try:
        with (
            open(path, encoding=encoding, newline="") as src,
            open(target, "w", encoding="utf-8", newline="") as dst,
        ):
            while chunk := src.read(_CHUNK):
                dst.write(chunk)
    except UnicodeDecodeError as exc:
        raise ExportFileError(f"{path}: not valid {encoding} at byte {exc.start}: {exc.reason}") from exc
    return target


def read_header(path: Path, opts: ReadOptions) -> list[str]:
    """Column names of a file, cheaply (first lines / first rows only)."""
    if opts.format == "csv":
        encoding = _resolve_encoding(path, opts)
        with open(path, encoding=encoding, newline="", errors="replace") as fh:
            for _ in range(opts.header_row - 1):
                fh.readline()
            header = fh.readline()
        names = next(csv.reader(io.StringIO(header), delimiter=opts.delimiter), [])
        return [n.strip() for n in names]
    if opts.format == "xlsx":
        names = xlsx_header(path, opts.sheet, opts.header_row)
        if names is not None:
            return names
        sheet = _excel_sheet(path, opts, n_rows=0)
        return [str(c) for c in sheet.to_arrow().column_names]
    if opts.format == "jsonl":
        keys: dict[str, None] = {}
        with open(path, encoding="utf-8-sig", errors="replace") as fh:
            for _, line in zip(range(1000), fh, strict=False):
                try:
                    obj = json.loads(line)
                except ValueError:
                    continue
                if isinstance(obj, dict):
                    keys.update(dict.fromkeys(obj))
        return list(keys)
    raise ExportFileError(f"{path}: unknown format {opts.format!r}")


def _resolve_encoding(path: Path, opts: ReadOptions) -> str:
    return detect_encoding(path) if opts.encoding == "auto" else opts.encoding


def _excel_sheet(path: Path, opts: ReadOptions, n_rows: int | None = None):
    try:
        reader = fastexcel.read_excel(str(path))
    except Exception as exc:  # fastexcel raises its own error types
        raise ExportFileError(f"{path}: cannot open as XLSX: {exc}") from exc
    sheet = opts.sheet if opts.sheet is not None else 0
    if isinstance(sheet, str) and sheet not in reader.sheet_names:
        raise ExportFileError(f"{path}: no sheet {sheet!r} (sheets: {', '.join(reader.sheet_names)})")
    return reader.load_sheet(sheet, header_row=opts.header_row - 1, dtypes="string", n_rows=n_rows)


def read_sheet(path: Path, opts: ReadOptions) -> pa.Table:
    """The export's sheet as Arrow strings (fastexcel frees the GIL: callable from threads)."""
    return _excel_sheet(path, opts).to_arrow()


def prefetched_sheets(paths: list[Path], opts: ReadOptions,
                      ahead: int = 2) -> Iterator[tuple[Path, Callable[[], pa.Table | None]]]:
    """Each path with a function returning its sheet: for XLSX, read by ``ahead`` threads
    while the caller loads earlier files (on 2 cores it halves the XLSX wall time); for other
    formats the function returns None. Reading errors surface when the function is called."""
    if opts.format != "xlsx":
        for path in paths:
            yield path, lambda: None
        return
    with ThreadPoolExecutor(max_workers=ahead) as pool:
        pending: dict[int, Future] = {}
        for i, path in enumerate(paths):
            for j in range(i, min(i + ahead, len(paths))):  # at most `ahead` sheets in memory
                if j not in pending:
                    pending[j] = pool.submit(read_sheet, paths[j], opts)
            yield path, pending.pop(i).result


def read_export(con: duckdb.DuckDBPyConnection, path: Path, opts: ReadOptions, table: str,
                workdir: Path, keys: list[str] | None = None,
                sheet: pa.Table | None = None) -> ReadResult:
    """Read ``path`` into temp table ``table``; see the module docstring for the shape.
    ``keys``: for JSON Lines, the keys to extract (default: every key found). ``sheet``: the
    XLSX sheet when already read (prefetched_sheets)."""
    try:
        if opts.format == "csv":
            return _read_csv(con, path, opts, table, workdir)
        if opts.format == "xlsx":
            return _read_xlsx(con, path, opts, table, sheet)
        if opts.format == "jsonl":
            return _read_jsonl(con, path, table, keys)
    except duckdb.Error as exc:
        raise ExportFileError(f"{path}: cannot read as {opts.format}: "
                              f"{str(exc).splitlines()[0]}") from exc
    raise ExportFileError(f"{path}: unknown format {opts.format!r}")


def _read_csv(con, path: Path, opts: ReadOptions, table: str, workdir: Path) -> ReadResult:
    encoding = _resolve_encoding(path, opts)
    header = read_header(path, replace(opts, encoding=encoding))
    if not header or header == [""]:
        raise ExportFileError(f"{path}: no header on line {opts.header_row}")
    utf8 = _utf8_path(path, encoding, workdir)
    columns = "{" + ", ".join(f"{quote_literal(c)}: 'VARCHAR'" for c in header) + "}"
    scan, rejects = f"{table}_scan", f"{table}_rejects"
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {table}_good AS
        SELECT * FROM read_csv({quote_literal(str(utf8))}, columns={columns}, header=true,
            skip={opts.header_row - 1}, delim={quote_literal(opts.delimiter)}, quote='"',
            auto_detect=false, store_rejects=true, rejects_scan={quote_literal(scan)},
            rejects_table={quote_literal(rejects)}) WITH ORDINALITY"""
    )
    # Name the column a reader error is about; an extra field has no header, so say where it is.
    last = quote_literal(header[-1])
    reject_rows = con.execute(
        f"""SELECT line, coalesce(column_name, CASE WHEN column_idx > {len(header)}
                   THEN 'extra field ' || column_idx::VARCHAR || ' after ' || {last} END),
               csv_line, error_type::VARCHAR || ': ' || error_message
        FROM {rejects} ORDER BY line"""
    ).fetchall()
    con.execute(f"DROP TABLE IF EXISTS {rejects}; DROP TABLE IF EXISTS {scan}")
    n_good = con.execute(f"SELECT count(*) FROM {table}_good").fetchall()[0][0]
    # A rejected line takes a record position too: number good rows by the positions left over.
    reject_positions = sorted({line - opts.header_row for line, *_ in reject_rows})
    con.execute(f"CREATE OR REPLACE TEMP TABLE {table}_rejpos (pos BIGINT)")
    if reject_positions:
        con.executemany(f"INSERT INTO {table}_rejpos VALUES (?)", [(p,) for p in reject_positions])
    total = n_good + len(reject_positions)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {table} AS
        WITH positions AS (
            SELECT pos, row_number() OVER (ORDER BY pos) AS ord
            FROM range(1, {total} + 1) t(pos) ANTI JOIN {table}_rejpos USING (pos))
        SELECT g.* EXCLUDE (ordinality), p.pos + {opts.header_row} AS _row_number
        FROM {table}_good g JOIN positions p ON p.ord = g.ordinality"""
    )
    con.execute(f"DROP TABLE {table}_good; DROP TABLE {table}_rejpos")
    rejects_out = [(line, col, value, reason) for line, col, value, reason in reject_rows]
    return ReadResult(table, header, total, encoding, rejects_out)


def _read_xlsx(con, path: Path, opts: ReadOptions, table: str,
               sheet: pa.Table | None = None) -> ReadResult:
    arrow = sheet if sheet is not None else read_sheet(path, opts)
    columns = [str(c) for c in arrow.column_names]
    first_data_row = opts.header_row + 1  # the sheet row a person sees in Excel
    arrow = arrow.append_column(
        "_row_number", pa.array(np.arange(first_data_row, first_data_row + arrow.num_rows)))
    con.register(f"{table}_arrow", arrow)
    non_empty = " OR ".join(f"{quote_ident(c)} IS NOT NULL" for c in columns) or "true"
    # Fully empty sheet rows are layout, not records: they are not counted as rows read.
    con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT * FROM {table}_arrow "
                f"WHERE {non_empty}")
    con.unregister(f"{table}_arrow")
    n = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
    return ReadResult(table, columns, n)


def _read_jsonl(con, path: Path, table: str, keys: list[str] | None) -> ReadResult:
    """JSON Lines: physical lines read by DuckDB (chr(1) never occurs in JSON text), each
    parsed once with json_transform into the wanted keys (all keys found, if none are given)."""
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {table}_lines AS
        SELECT CASE WHEN ordinality = 1 THEN ltrim(line, chr(65279)) ELSE line END AS line,
               ordinality AS _row_number,
               CASE WHEN json_valid(line) THEN json_type(line) = 'OBJECT' ELSE false END AS ok
        FROM read_csv({quote_literal(str(path))}, columns={{'line': 'VARCHAR'}}, delim=chr(1),
                      quote='', escape='', header=false, auto_detect=false) WITH ORDINALITY
        WHERE line IS NOT NULL AND trim(line) <> ''"""
    )
    rejects = con.execute(
        f"""SELECT _row_number, NULL, line,
                   CASE WHEN json_valid(line) THEN 'not a JSON object' ELSE 'invalid JSON' END
        FROM {table}_lines WHERE NOT ok ORDER BY _row_number"""
    ).fetchall()
    if keys is None:
        keys = [r[0] for r in con.execute(
            f"SELECT DISTINCT unnest(json_keys(line)) FROM {table}_lines WHERE ok ORDER BY 1"
        ).fetchall()]
    structure = json.dumps({k: "VARCHAR" for k in keys}, ensure_ascii=False)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {table} AS
        SELECT {'unnest(json_transform(line, ' + quote_literal(structure) + ')), ' if keys else ''}
               _row_number
        FROM {table}_lines WHERE ok"""
    )
    total = con.execute(f"SELECT count(*) FROM {table}_lines").fetchall()[0][0]
    con.execute(f"DROP TABLE {table}_lines")
    # A key no object carries is reported as absent (schema drift check in the raw loader).
    present = keys
    if keys:
        counts = con.execute(
            f"SELECT {', '.join(f'count({quote_ident(k)})' for k in keys)} FROM {table}"
        ).fetchall()[0]
        present = [k for k, n in zip(keys, counts, strict=True) if n]
    return ReadResult(table, present, total, "utf-8", [tuple(r) for r in rejects])
