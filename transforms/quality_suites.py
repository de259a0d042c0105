"""What each layer is checked for. Thresholds come from ``profiles.yaml`` → quality.

- raw: the share of rows the reader could not split, per file;
- staging: row count against the previous run, quarantine share per file, phone format;
- core: one golden record per customer id; order amounts and dates in range (none in the future);
- profile (blocking: a failure stops publishing): one row per customer id, row count against
  the previous run, null rates of key fields, value ranges, tag coverage bounds.
"""

from __future__ import annotations

import datetime as dt
import math

from transforms.quality import Suite
from transforms.schema import ENTITIES
from transforms.sql import fetch_scalar, quote_literal

E164 = r"^\+[1-9][0-9]{6,14}$"


def _gxe():
    import great_expectations.expectations as gxe  # slow import: only when checks run

    return gxe


def ensure_quality_schema(con) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS quality")
    con.execute("""CREATE TABLE IF NOT EXISTS quality.row_counts (
        table_name VARCHAR, run_id VARCHAR, rows BIGINT, recorded_at TIMESTAMP)""")
    con.execute("""CREATE TABLE IF NOT EXISTS quality.results (
        run_id VARCHAR, checked_at TIMESTAMP, check_name VARCHAR, suite VARCHAR,
        expectation VARCHAR, column_name VARCHAR, success BOOLEAN, observed VARCHAR,
        unexpected_count BIGINT, unexpected_sample VARCHAR, error VARCHAR)""")


def previous_rows(con, table: str, run_id: str) -> int | None:
    """Rows of ``table`` at the last other run (quality.row_counts exists: see run_suites)."""
    return fetch_scalar(con, """SELECT rows FROM quality.row_counts
        WHERE table_name = ? AND run_id <> ? ORDER BY recorded_at DESC LIMIT 1""", [table, run_id])


def row_count_expectation(previous: int | None, max_drop: float, max_growth: float):
    """Rows within [previous × (1 − max_drop), previous × max_growth]; any count on a first run."""
    if not previous:
        return _gxe().ExpectTableRowCountToBeBetween(min_value=0)
    return _gxe().ExpectTableRowCountToBeBetween(
        min_value=math.floor(previous * (1 - max_drop)), max_value=math.ceil(previous * max_growth))


def _file_share_suite(name: str, table: str, rows: str, share: str, max_share: float,
                      entities: list[str], suite_name: str) -> Suite:
    """One query for the per-file share of ``rows`` / rows_read of every entity in ``table``,
    reported per entity as ``suite_name.format(entity)`` (see Suite.split_column)."""
    return Suite(
        name,
        f"""SELECT entity, source_file, {rows} / greatest(rows_read, 1) AS {share}
            FROM {table} WHERE entity IN ({', '.join(map(quote_literal, entities))})""",
        [_gxe().ExpectColumnValuesToBeBetween(column=share, max_value=max_share)],
        index_column="source_file", split_column="entity",
        names={e: suite_name.format(e) for e in entities})


def raw_suites(entities: list[str], q) -> list[Suite]:
    return [_file_share_suite("raw files", "raw.file_registry", "rows_rejected", "rejected_share",
                              q.max_rejected_share, entities, "raw.{}")]


def staging_suites(con, entities: list[str], q, run_id: str) -> list[Suite]:
    gxe = _gxe()
    suites = []
    for e in entities:
        table = f"staging.{e}"
        checks = [row_count_expectation(previous_rows(con, table, run_id), q.max_row_drop,
                                        q.max_row_growth)]
        checks += [gxe.ExpectColumnValuesToMatchRegex(column=f.name, regex=E164)
                   for f in ENTITIES[e].fields if f.type == "phone"]
        suites.append(Suite(table, table, checks))
    suites.append(_file_share_suite("staging files", "staging.file_accounting", "rows_quarantined",
                                    "quarantined_share", q.max_quarantine_share, entities,
                                    "staging.{} files"))
    return suites


def core_suites(q, snapshot: dt.date) -> list[Suite]:
    gxe = _gxe()
    latest = (snapshot + dt.timedelta(days=1)).isoformat()  # a day's slack for time zones
    return [
        Suite("core.customers", "core.customers", [
            gxe.ExpectColumnValuesToBeUnique(column="customer_id"),
            gxe.ExpectColumnValuesToNotBeNull(column="customer_id"),
        ]),
        Suite("core.order_lines", "core.order_lines", [
            gxe.ExpectColumnValuesToBeBetween(column="amount", min_value=-q.max_line_amount,
                                              max_value=q.max_line_amount),
            gxe.ExpectColumnValuesToBeBetween(column="ordered_at", min_value="2000-01-01",
                                              max_value=latest),
        ]),
        Suite("core.wechat_events", "core.wechat_events", [
            gxe.ExpectColumnValuesToBeBetween(column="event_at", min_value="2000-01-01",
                                              max_value=latest),
        ]),
    ]


def profile_suites(con, q, run_id: str) -> list[Suite]:
    gxe = _gxe()
    table = "profile.customer_profile"
    checks = [
        gxe.ExpectColumnValuesToBeUnique(column="customer_id"),
        row_count_expectation(previous_rows(con, table, run_id), q.max_row_drop, q.max_row_growth),
        gxe.ExpectColumnValuesToBeBetween(column="age", min_value=0, max_value=120),
        gxe.ExpectColumnValuesToBeBetween(column="churn_probability", min_value=0, max_value=1),
        gxe.ExpectColumnValuesToBeBetween(column="recency_days", min_value=0),
    ]
    checks += [gxe.ExpectColumnValuesToNotBeNull(column=c, mostly=share)
               for c, share in q.min_filled.items()]
    return [
        Suite(table, table, checks),
        Suite("profile.tag_catalog", "profile.tag_catalog", [
            gxe.ExpectColumnValuesToBeBetween(column="coverage", max_value=q.max_tag_coverage)]),
        Suite("profile tagged share",
              f"SELECT avg((len(tags) > 0)::INTEGER) AS tagged_share FROM {table}", [
                  gxe.ExpectColumnValuesToBeBetween(column="tagged_share",
                                                    min_value=q.min_tagged_share)]),
    ]
