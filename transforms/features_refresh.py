"""The nightly features: only customers whose inputs changed are summarised again.

A customer's summary row (transforms.features.summary_sql) depends on their own rows of
core.customers, core.order_lines, core.followups, core.opportunity_stages, core.wechat_events,
their WeChat subscription dates and whether the people they invited are known followers; and on
the snapshot date through windows (facts after it, and within 30 / 90 / 365 days of it).

So a night keeps ``features.customer_summary`` and, per customer, a checksum of those inputs
(``features.customer_inputs``). It summarises again only the customers whose checksum changed
(new, changed or gone customers), plus, when the snapshot date moved, those with a fact on a
window's edge between the old and the new date. Everything measured from the date or ranked
among all customers is then finished for everyone (transforms.features.finish), which is cheap.
It summarises everyone on the first run, on ``full``, when the summary's code version changed,
when the date went back, or when more than ``max_changed_share`` of customers changed.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass

from transforms.features import finish, summary_sql
from transforms.sql import fetch_scalar, table_exists

# Bump when summary_sql changes, so existing warehouses summarise everyone once.
SUMMARY_VERSION = 2

# (table, time column, windows in days) whose edges move with the snapshot date; 0 = the
# snapshot itself (facts after it are left out).
_WINDOWS = [
    ("core.order_lines", "ordered_at", (0, 30, 90, 365)),
    ("core.followups", "followup_at", (0, 90)),
    ("core.opportunity_stages", "entered_at", (0,)),
    ("core.wechat_events", "event_at", (0, 30, 90)),
]

_INPUTS = """
    WITH known_followers AS (
        SELECT DISTINCT source_key FROM identity.customer_map WHERE source = 'wechat'),
    parts AS (
        SELECT customer_id, hash(gender, birth_date, province, city, industry, lead_source,
                                 crm_stage, owner, first_seen_at, wechat_subscribed) AS h
        FROM core.customers
        UNION ALL
        SELECT customer_id, hash(order_id, channel, ordered_at, is_refund, amount, category)
        FROM core.order_lines WHERE customer_id IS NOT NULL
        UNION ALL
        SELECT customer_id, hash('followup', followup_at)
        FROM core.followups WHERE customer_id IS NOT NULL
        UNION ALL
        SELECT customer_id, hash(opportunity_code, stage, entered_at)
        FROM core.opportunity_stages WHERE customer_id IS NOT NULL
        UNION ALL
        SELECT e.customer_id, hash(e.event_type, e.event_at, e.invited_openid,
                                   k.source_key IS NOT NULL)
        FROM core.wechat_events e
        LEFT JOIN known_followers k
          ON e.event_type = 'referral' AND k.source_key = e.invited_openid
        WHERE e.customer_id IS NOT NULL
        UNION ALL
        SELECT m.customer_id, hash('subscribed', w.subscribed_at)
        FROM staging.wechat_followers w JOIN identity.customer_map m
          ON m.source = 'wechat' AND m.source_key = w.openid)
    SELECT customer_id, sum(h::HUGEINT) AS checksum, count(*) AS inputs
    FROM parts GROUP BY customer_id"""


@dataclass
class FeatureRefresh:
    customers: int
    summarised: int  # customers whose summary was computed this run
    full: bool
    reason: str  # why everyone was summarised, or what the changed customers were
    finish_seconds: float = 0.0  # day counts and ranks, recomputed for everyone every run


def ensure_state(con) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS features")
    con.execute("""CREATE TABLE IF NOT EXISTS features.summary_state (
        version INTEGER, snapshot_date DATE, refreshed_at TIMESTAMP)""")
    con.execute("""CREATE TABLE IF NOT EXISTS features.customer_inputs (
        customer_id VARCHAR, checksum HUGEINT, inputs BIGINT)""")


def refresh_features(con, snapshot: dt.date, full: bool = False,
                     max_changed_share: float = 0.3) -> FeatureRefresh:
    """features.customer_features as of ``snapshot``, equal to build_features(con, snapshot)."""
    ensure_state(con)
    con.execute(f"CREATE OR REPLACE TEMP TABLE _inputs AS {_INPUTS}")
    state = con.execute("SELECT version, snapshot_date FROM features.summary_state").fetchall()
    customers = fetch_scalar(con, "SELECT count(*) FROM core.customers")
    reason = _full_reason(con, state, snapshot, full)
    changed = 0
    if not reason:
        con.execute("""CREATE OR REPLACE TEMP TABLE _changed AS
            SELECT customer_id FROM (SELECT * FROM _inputs EXCEPT SELECT * FROM features.customer_inputs
                                     UNION ALL
                                     SELECT * FROM features.customer_inputs EXCEPT SELECT * FROM _inputs)
            UNION SELECT customer_id FROM core.customers
                  ANTI JOIN features.customer_summary USING (customer_id)""")
        previous = state[0][1]
        if previous != snapshot:
            con.execute(f"INSERT INTO _changed {_edge_customers(previous, snapshot)}")
        con.execute("CREATE OR REPLACE TEMP TABLE _changed AS SELECT DISTINCT customer_id FROM _changed")
        changed = fetch_scalar(con, "SELECT count(*) FROM _changed")
        if changed > max_changed_share * max(customers, 1):
            reason = f"{changed} of {customers} customers changed"
    full_run = bool(reason)
    if full_run:
        con.execute(f"CREATE OR REPLACE TABLE features.customer_summary AS {summary_sql()}",
                    {"snap": snapshot})
        summarised = customers
    else:
        con.execute("""DELETE FROM features.customer_summary
            WHERE customer_id IN (SELECT customer_id FROM _changed)""")
        con.execute(f"INSERT INTO features.customer_summary {summary_sql('_changed')}",
                    {"snap": snapshot})
        summarised = fetch_scalar(con, """SELECT count(*) FROM core.customers
            WHERE customer_id IN (SELECT customer_id FROM _changed)""")
        reason = f"{changed} customers with changed inputs or a fact on a moved window edge"
    started = time.perf_counter()
    finish(con, snapshot, "features.customer_summary", "features.customer_features")
    finish_seconds = time.perf_counter() - started
    con.execute("CREATE OR REPLACE TABLE features.customer_inputs AS SELECT * FROM _inputs")
    con.execute("DELETE FROM features.summary_state")
    con.execute("INSERT INTO features.summary_state VALUES (?, ?, now())",
                [SUMMARY_VERSION, snapshot])
    con.execute("DROP TABLE IF EXISTS _changed")
    con.execute("DROP TABLE _inputs")
    return FeatureRefresh(customers, summarised, full_run, reason, finish_seconds)


def _full_reason(con, state, snapshot: dt.date, full: bool) -> str:
    if full:
        return "asked for a full rebuild"
    if not state or not table_exists(con, "features", "customer_summary"):
        return "first run"
    version, previous = state[0]
    if version != SUMMARY_VERSION:
        return "summary code changed"
    if snapshot < previous:
        return f"snapshot date went back from {previous} to {snapshot}"
    return ""


def _edge_customers(previous: dt.date, snapshot: dt.date) -> str:
    """Customers with a fact whose window membership differs between the two snapshot dates:
    dated between the old and the new edge of a window (edge = date − window; facts after the
    snapshot are out, so its edge is the day after it)."""
    parts = []
    for table, column, windows in _WINDOWS:
        for days in windows:
            shift = 1 if days == 0 else -days
            lo = previous + dt.timedelta(days=shift)
            hi = snapshot + dt.timedelta(days=shift)
            parts.append(f"""SELECT customer_id FROM {table}
                WHERE customer_id IS NOT NULL AND {column} >= TIMESTAMP '{lo.isoformat()}'
                  AND {column} < TIMESTAMP '{hi.isoformat()}'""")
    return " UNION ".join(parts)
