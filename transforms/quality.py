"""Data-quality suites run by Great Expectations inside DuckDB (GX's SQL execution path).

GX reaches the working warehouse through SQLAlchemy + duckdb-engine, over new connections to
the caller's DuckDB instance (``creator``): duckdb-engine's own connect would open the file
with another configuration, which DuckDB refuses while the run holds it open.
Every metric is an aggregate or a 20-row sample computed by DuckDB; no table is loaded into
Python. ``transforms.gx_duckdb`` fixes the two incompatibilities of today's versions.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")  # no telemetry from a nightly job


@dataclass
class Suite:
    name: str  # what the results are filed under, e.g. "profile.customer_profile"
    source: str  # a table (schema.name) or a SELECT
    expectations: list = field(default_factory=list)  # great_expectations.expectations objects
    # Small per-file queries name the failing rows by this column (GX's COMPLETE result, which
    # lists every unexpected row: only for queries with a row per file).
    index_column: str | None = None
    # One query standing for several suites (GX spends ~0.25 s per suite, whatever its size):
    # outcomes are reported per value of this column, under names[value]; a value passes when
    # none of its rows is unexpected (for row-wise expectations without ``mostly``).
    split_column: str | None = None
    names: dict[str, str] = field(default_factory=dict)

    @property
    def is_table(self) -> bool:
        return not self.source.lstrip().upper().startswith("SELECT")


@dataclass
class Outcome:
    suite: str
    expectation: str
    column: str | None
    success: bool
    observed: Any = None
    unexpected_count: int | None = None
    unexpected_sample: list = field(default_factory=list)
    error: str | None = None

    def describe(self) -> str:
        what = f"{self.expectation}({self.column})" if self.column else self.expectation
        if self.error:
            return f"{what}: error {self.error}"
        if self.unexpected_count:
            detail = f"{self.unexpected_count} unexpected, e.g. {self.unexpected_sample[:5]}"
        elif self.unexpected_count == 0:
            detail = "0 unexpected"
        else:
            detail = f"observed {self.observed}"
        return f"{what}: {'ok' if self.success else 'FAILED'} ({detail})"


def validate(con, suites: list[Suite]) -> list[Outcome]:
    """Run the suites with GX against the database of DuckDB connection ``con``."""
    import great_expectations as gx
    from duckdb_engine import ConnectionWrapper
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from sqlalchemy.pool import NullPool

    from transforms import gx_duckdb

    gx_duckdb.install()
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)  # no bars in run logs
    datasource = context.data_sources.add_sql(
        name="warehouse", connection_string="duckdb:///:memory:",
        kwargs={"creator": lambda: ConnectionWrapper(con.cursor()), "poolclass": NullPool})
    outcomes = []
    for i, suite in enumerate(suites):
        # A table goes in as a query too (GX's table asset drops the schema in some metrics),
        # of only the columns the expectations read: GX re-runs it for every metric.
        query = f"SELECT {_columns_read(suite)} FROM {suite.source}" if suite.is_table else suite.source
        query = f"{query}\n{gx_duckdb.BATCH_MARKER}"
        asset = datasource.add_query_asset(name=f"q{i}", query=query)
        batch = asset.add_batch_definition_whole_table("all").get_batch()
        expectation_suite = gx.ExpectationSuite(name=f"suite{i}", expectations=suite.expectations)
        index = [c for c in (suite.split_column, suite.index_column) if c]
        result_format = ({"result_format": "COMPLETE", "unexpected_index_column_names": index}
                         if index else {"result_format": "BASIC"})
        result = batch.validate(expectation_suite, result_format=result_format)
        got = [_outcome(suite.name, r) for r in result.results]
        outcomes += _split(suite, got) if suite.split_column else got
    datasource.get_engine().dispose()
    return outcomes


def _split(suite: Suite, outcomes: list[Outcome]) -> list[Outcome]:
    split = []
    for value, name in suite.names.items():
        for o in outcomes:
            mine = [{k: v for k, v in row.items() if k != suite.split_column}
                    for row in o.unexpected_sample
                    if isinstance(row, dict) and row.get(suite.split_column) == value]
            split.append(replace(o, suite=name, success=o.error is None and not mine,
                                 unexpected_count=len(mine), unexpected_sample=mine))
    return split


def _columns_read(suite: Suite) -> str:
    columns = sorted({e.column for e in suite.expectations if getattr(e, "column", None)})
    return ", ".join(f'"{c}"' for c in columns) if columns else "*"


def _outcome(suite: str, r) -> Outcome:
    res = r.result or {}
    info = r.exception_info or {}
    errors = [v.get("exception_message") for v in info.values()
              if isinstance(v, dict) and v.get("raised_exception")]
    if info.get("raised_exception"):
        errors.append(info.get("exception_message"))
    return Outcome(
        suite=suite, expectation=r.expectation_config.type,
        column=r.expectation_config.kwargs.get("column"), success=bool(r.success),
        observed=_plain(res.get("observed_value")), unexpected_count=res.get("unexpected_count"),
        unexpected_sample=[_plain(v) for v in res.get("unexpected_index_list")
                           or res.get("partial_unexpected_list") or []],
        error="; ".join(str(e) for e in errors) or None,
    )


def _plain(value):
    """JSON-friendly: dates and decimals as text."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)
