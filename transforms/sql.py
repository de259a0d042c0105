"""Small helpers for building SQL text safely."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def fetch_scalar(con, sql: str, params=None):
    """First column of the first row; fetchall() so the connection is left free (DuckDB 2.0)."""
    rows = con.execute(sql, params or []).fetchall()
    return rows[0][0] if rows else None


def table_exists(con, schema: str, table: str) -> bool:
    return bool(
        fetch_scalar(
            con,
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
            [schema, table],
        )
    )


def describe(con, relation: str) -> dict[str, str]:
    """Column → type of a table or a SELECT, in order."""
    return {name: str(dtype) for name, dtype, *_ in con.execute(f"DESCRIBE {relation}").fetchall()}


@contextmanager
def optimizer_off(con, name: str) -> Iterator[None]:
    """Run the block with one DuckDB optimizer disabled. The setting is global to the DuckDB
    instance (every cursor of the run shares it), so it is put back afterwards."""
    before = fetch_scalar(con, "SELECT current_setting('disabled_optimizers')") or ""
    disabled = ",".join(n for n in (before, name) if n)
    con.execute(f"SET disabled_optimizers = {quote_literal(disabled)}")
    try:
        yield
    finally:
        con.execute(f"SET disabled_optimizers = {quote_literal(before)}")
