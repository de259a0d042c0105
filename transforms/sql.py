"""Small helpers for building SQL text safely."""

from __future__ import annotations


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
