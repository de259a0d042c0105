"""Make Great Expectations' SQL (SQLAlchemy) execution engine work with duckdb-engine.

Pinned by tests/test_quality.py (GX 1.24, duckdb-engine 0.17, duckdb 2.0, SQLAlchemy 2.1): if an
upgrade fixes either problem upstream, the shim becomes a no-op; if it breaks, that test fails.

Two problems, two fixes, both scoped to GX engines whose dialect is "duckdb":

1. GX runs `connection.execute(q)` inside `with engine.connect():` and calls
   `.fetchall()` only after the connection is closed. Closing the SQLAlchemy
   connection rolls back its implicit transaction; duckdb-engine's "cursor" is the
   DuckDB connection itself (ConnectionWrapper.cursor() -> same DuckDBPyConnection),
   and a DuckDB rollback discards the pending result set, so GX gets [] and fails
   with `IndexError: list index out of range` on every metric.
   Fix: after each statement, read the rows eagerly into SQLAlchemy's
   FullyBufferedCursorFetchStrategy (results GX fetches are aggregates or
   LIMITed samples, so this is cheap). One exception: GX runs a batch's query
   as it is only to read its column names; a query ending in BATCH_MARKER is
   buffered without its rows (10M order lines took 20 s to fetch for nothing).

2. GX leaves `dialect_module = None` for dialects it does not know, so regex
   expectations raise "Regex is not supported for dialect duckdb".
   duckdb-engine's Dialect subclasses SQLAlchemy's PostgreSQL dialect and DuckDB
   supports PostgreSQL's `~` / `!~` (partial regex match), so we point GX at the
   postgresql dialect module.
"""
from __future__ import annotations

import functools

import sqlalchemy as sa
import sqlalchemy.dialects.postgresql as _pg_dialect_module
from sqlalchemy.engine.cursor import FullyBufferedCursorFetchStrategy

# Ends the query of every batch (transforms.quality): metrics wrap it in a subquery, so a
# statement that ends with it is the batch query run on its own, for its column names.
BATCH_MARKER = "/* gx batch */"


def _buffer_results(conn, cursor, statement, parameters, context, executemany):
    if context is not None and cursor.description is not None:
        rows = [] if statement.rstrip().endswith(BATCH_MARKER) else cursor.fetchall()
        context.cursor_fetch_strategy = FullyBufferedCursorFetchStrategy(
            cursor, cursor.description, rows)


def _fix_engine(execution_engine) -> None:
    engine = getattr(execution_engine, "engine", None)
    if not isinstance(engine, sa.engine.Engine) or engine.dialect.name != "duckdb":
        return
    if not sa.event.contains(engine, "after_cursor_execute", _buffer_results):
        sa.event.listen(engine, "after_cursor_execute", _buffer_results)
    if getattr(execution_engine, "dialect_module", None) is None:
        execution_engine.dialect_module = _pg_dialect_module


def install() -> None:
    """Idempotent. Call once before creating GX SQL datasources over duckdb."""
    from great_expectations.execution_engine import SqlAlchemyExecutionEngine

    original = SqlAlchemyExecutionEngine.__init__
    if getattr(original, "_duckdb_compat", False):
        return

    @functools.wraps(original)
    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        _fix_engine(self)

    __init__._duckdb_compat = True  # type: ignore[attr-defined]
    SqlAlchemyExecutionEngine.__init__ = __init__
