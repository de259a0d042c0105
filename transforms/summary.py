"""The run summary attached to the published asset: what a data engineer reads in the morning."""

from __future__ import annotations

from transforms.sql import fetch_scalar, table_exists


def run_summary(con, snapshot) -> dict:
    def count(table: str) -> int:
        schema, name = table.split(".")
        return fetch_scalar(con, f"SELECT count(*) FROM {table}") if table_exists(con, schema, name) else 0

    raw_tables = [t for (t,) in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'raw' "
        "AND table_catalog = current_database() AND table_name NOT IN "
        "('file_registry', 'file_errors', 'rejects') ORDER BY 1").fetchall()]
    quarantine = dict(con.execute(
        "SELECT entity, sum(rows_quarantined) FROM staging.file_accounting GROUP BY ALL "
        "ORDER BY 1").fetchall())
    score = (dict(con.execute("SELECT metric, value FROM identity.latest_score").fetchall())
             if table_exists(con, "identity", "latest_score") else {})
    coverage = con.execute(
        """WITH dates AS (SELECT DISTINCT snapshot_date FROM history.profile_snapshots
                          WHERE snapshot_date <= $snap ORDER BY 1 DESC LIMIT 2),
                days AS (SELECT * FROM history.profile_snapshots SEMI JOIN dates USING (snapshot_date)),
                sizes AS (SELECT snapshot_date, count(*) AS n FROM days GROUP BY snapshot_date),
                per_day AS (
            SELECT snapshot_date, tag, count(*) / any_value(n) AS coverage
            FROM (SELECT snapshot_date, unnest(tags) AS tag FROM days) JOIN sizes USING (snapshot_date)
            GROUP BY snapshot_date, tag)
        SELECT tag, round(max(coverage) FILTER (WHERE snapshot_date = $snap), 4),
               round(max(coverage) FILTER (WHERE snapshot_date < $snap), 4)
        FROM per_day GROUP BY tag ORDER BY tag""",
        {"snap": snapshot}).fetchall()
    return {
        "rows_per_layer": {
            "raw": sum(count(f"raw.{t}") for t in raw_tables),
            "raw_rejected": count("raw.rejects"),
            "staging_quarantined": int(sum(quarantine.values())),
            "core_customers": count("core.customers"),
            "core_order_lines": count("core.order_lines"),
            "profile": count("profile.customer_profile"),
            "customer_tags": count("profile.customer_tags"),
        },
        "quarantine_by_entity": {k: int(v) for k, v in quarantine.items()},
        "identity_precision": score.get("precision"),
        "identity_recall_findable": score.get("recall_findable"),
        "tag_coverage_change": {tag: {"today": now, "previous": before}
                                for tag, now, before in coverage if now != before},
    }
