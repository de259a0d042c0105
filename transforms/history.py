"""Profile history: a daily snapshot of each customer's state and what changed since the last one.

``history.profile_snapshots`` keeps, per snapshot date, the columns analysts follow over time
(segment, value tier, lifecycle stage, tags, key value figures, churn risk); the full profile of
each day is the Parquet export partition of that date. ``history.profile_changes`` has one row
per customer, day and change against the previous snapshot date, so "who became 沉睡客户 this
week" is one query:

    SELECT customer_id FROM history.profile_changes
    WHERE change = 'tag gained' AND new_value = '沉睡客户' AND snapshot_date > current_date - 7

Re-running a date replaces that date (idempotent), always compared with the last earlier date.
"""

from __future__ import annotations

import datetime as dt

from transforms.sql import fetch_scalar, quote_literal

_SNAPSHOT_COLUMNS = """customer_id, segment_id, segment_name, tags, tag_ids, rfm_segment,
    spend_365d, orders_365d, recency_days, churn_probability, predicted_clv_365d"""


def record_history(con, snapshot: dt.date, value_tier_group: str, lifecycle_group: str,
                   snapshot_days: int) -> dict[str, int]:
    con.execute("CREATE SCHEMA IF NOT EXISTS history")
    tier, life = quote_literal(value_tier_group), quote_literal(lifecycle_group)
    current = f"""SELECT $snap::DATE AS snapshot_date, {_SNAPSHOT_COLUMNS},
            g.value_tier, g.lifecycle_stage
        FROM profile.customer_profile p
        LEFT JOIN (SELECT customer_id,
                          any_value(level3) FILTER (WHERE level2 = {tier}) AS value_tier,
                          any_value(level3) FILTER (WHERE level2 = {life}) AS lifecycle_stage
                   FROM profile.customer_tags GROUP BY customer_id) g USING (customer_id)"""
    con.execute(f"CREATE TABLE IF NOT EXISTS history.profile_snapshots AS {current} LIMIT 0",
                {"snap": snapshot})
    con.execute(
        """CREATE TABLE IF NOT EXISTS history.profile_changes (
            snapshot_date DATE, previous_date DATE, customer_id VARCHAR, change VARCHAR,
            attribute VARCHAR, old_value VARCHAR, new_value VARCHAR)""")
    con.execute("DELETE FROM history.profile_snapshots WHERE snapshot_date = ?", [snapshot])
    con.execute("DELETE FROM history.profile_changes WHERE snapshot_date = ?", [snapshot])
    con.execute(f"INSERT INTO history.profile_snapshots BY NAME {current}", {"snap": snapshot})
    previous = fetch_scalar(con, "SELECT max(snapshot_date) FROM history.profile_snapshots "
                                 "WHERE snapshot_date < ?", [snapshot])
    if previous is not None:
        _record_changes(con, snapshot, previous)
    con.execute("DELETE FROM history.profile_snapshots WHERE snapshot_date < ?",
                [snapshot - dt.timedelta(days=snapshot_days)])
    return {
        "snapshots_kept": fetch_scalar(
            con, "SELECT count(DISTINCT snapshot_date) FROM history.profile_snapshots"),
        "changes_today": fetch_scalar(
            con, "SELECT count(*) FROM history.profile_changes WHERE snapshot_date = ?",
            [snapshot]),
        "compared_with": previous,
    }


def _record_changes(con, snapshot: dt.date, previous: dt.date) -> None:
    """Changes of the customers whose followed state differs between the two dates: the
    customers are paired once; only those that differ have their tag lists unnested."""
    state = "SELECT * FROM history.profile_snapshots WHERE snapshot_date = "
    followed = ("tag_ids", "tags", "segment_name", "value_tier", "lifecycle_stage")
    attribute_changes = " UNION ALL ".join(
        f"""SELECT customer_id, '{name} changed', '{name}', o_{col}::VARCHAR, n_{col}::VARCHAR
            FROM differs WHERE in_cur AND in_prev AND o_{col} IS DISTINCT FROM n_{col}"""
        for name, col in (("segment", "segment_name"), ("value tier", "value_tier"),
                          ("lifecycle stage", "lifecycle_stage")))
    con.execute(
        f"""INSERT INTO history.profile_changes
        WITH cur AS ({state} $snap), prev AS ({state} $prev),
             differs AS MATERIALIZED (
            SELECT coalesce(n.customer_id, o.customer_id) AS customer_id,
                   n.customer_id IS NOT NULL AS in_cur, o.customer_id IS NOT NULL AS in_prev,
                   {", ".join(f"n.{c} AS n_{c}, o.{c} AS o_{c}" for c in followed)}
            FROM cur n FULL JOIN prev o ON n.customer_id = o.customer_id
            WHERE n.customer_id IS NULL OR o.customer_id IS NULL
               OR {" OR ".join(f"n.{c} IS DISTINCT FROM o.{c}" for c in followed)}),
             cur_tags AS (SELECT customer_id, unnest(n_tag_ids) AS tag_id, unnest(n_tags) AS tag
                          FROM differs),
             prev_tags AS (SELECT customer_id, unnest(o_tag_ids) AS tag_id, unnest(o_tags) AS tag
                           FROM differs),
             changes AS (
            SELECT customer_id, 'tag gained' AS change, tag_id AS attribute,
                   NULL AS old_value, tag AS new_value
            FROM (SELECT * FROM cur_tags EXCEPT SELECT * FROM prev_tags)
            UNION ALL
            SELECT customer_id, 'tag lost', tag_id, tag, NULL
            FROM (SELECT * FROM prev_tags EXCEPT SELECT * FROM cur_tags)
            UNION ALL
            SELECT customer_id, 'new customer', NULL, NULL, NULL FROM differs WHERE NOT in_prev
            UNION ALL
            SELECT customer_id, 'customer gone', NULL, NULL, NULL FROM differs WHERE NOT in_cur
            UNION ALL {attribute_changes})
        SELECT $snap, $prev, * FROM changes ORDER BY customer_id, change, attribute""",
        {"snap": snapshot, "prev": previous},
    )
