"""Marts: the analyses analysts open the warehouse for (later issues add more)."""

from __future__ import annotations

MARTS = {
    "region_distribution": """
        SELECT coalesce(province, '未知') AS province, coalesce(city, '未知') AS city,
               count(*) AS customers,
               count(*) FILTER (WHERE orders_lifetime > 0) AS buyers,
               round(sum(spend_365d), 2) AS spend_365d
        FROM profile.customer_profile GROUP BY ALL ORDER BY customers DESC, province, city""",
    "lead_source_conversion": """
        SELECT coalesce(lead_source, '未知') AS lead_source, count(*) AS customers,
               count(*) FILTER (WHERE orders_lifetime > 0) AS buyers,
               round(count(*) FILTER (WHERE orders_lifetime > 0) / count(*), 4) AS conversion_rate,
               round(avg(spend_365d), 2) AS avg_spend_365d
        FROM profile.customer_profile GROUP BY ALL ORDER BY customers DESC, lead_source""",
    "tag_summary": """
        SELECT level1, level2, level3, tag_id, customers, coverage
        FROM profile.tag_catalog ORDER BY level1, level2, customers DESC""",
}


def build_marts(con) -> dict[str, int]:
    con.execute("CREATE SCHEMA IF NOT EXISTS marts")
    counts = {}
    for name, sql in MARTS.items():
        con.execute(f"CREATE OR REPLACE TABLE marts.{name} AS {sql}")
        counts[name] = con.execute(f"SELECT count(*) FROM marts.{name}").fetchall()[0][0]
    return counts
