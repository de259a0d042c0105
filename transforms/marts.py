"""Marts: the analyses analysts open the warehouse for (DESIGN.md domain notes): regions,
lead-source conversion, signed vs potential customers, funnel dwell per stage, customers by
region × industry × segment, tag co-occurrence."""

from __future__ import annotations

from transforms.sql import quote_literal

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
    "customers_by_region_industry_segment": """
        SELECT coalesce(province, '未知') AS province, coalesce(industry, '未知') AS industry,
               coalesce(segment_name, '未知') AS segment_name, count(*) AS customers,
               count(*) FILTER (WHERE orders_lifetime > 0) AS buyers,
               round(sum(spend_365d), 2) AS spend_365d
        FROM profile.customer_profile GROUP BY ALL
        ORDER BY customers DESC, province, industry, segment_name""",
    # Dwell: days from entering a stage to entering the next one; an opportunity still in its
    # stage counts separately (open), as of the snapshot date.
    "funnel_stage_dwell": """
        WITH snap AS (SELECT any_value(snapshot_date) AS d FROM profile.customer_profile),
        steps AS (
            SELECT opportunity_code, stage, entered_at,
                   lead(entered_at) OVER (PARTITION BY opportunity_code ORDER BY entered_at)
                       AS left_at
            FROM core.opportunity_stages WHERE customer_id IS NOT NULL)
        SELECT stage, count(*) AS opportunities_entered,
               count(left_at) AS moved_on,
               round(avg(datediff('day', entered_at, left_at)), 1) AS avg_dwell_days,
               median(datediff('day', entered_at, left_at)) AS median_dwell_days,
               -- a stage nothing ever leaves (赢单, 输单) is an outcome, not a wait
               count(left_at) = 0 AS is_outcome,
               CASE WHEN count(left_at) > 0 THEN count(*) - count(left_at) END AS still_in_stage,
               CASE WHEN count(left_at) > 0 THEN round(avg(datediff(
                   'day', entered_at::DATE, (SELECT d FROM snap))) FILTER (WHERE left_at IS NULL),
                   1) END AS avg_days_in_stage_so_far
        FROM steps GROUP BY stage ORDER BY is_outcome, min(entered_at), stage""",
    # The 15 most common tags, each pair with how often they meet and the lift over chance.
    "tag_cooccurrence": """
        WITH n AS (SELECT count(*) AS customers FROM profile.customer_profile),
        top AS (SELECT tag_id, level3, customers FROM profile.tag_catalog
                WHERE customers > 0 ORDER BY customers DESC, tag_id LIMIT 15),
        t AS (SELECT customer_id, tag_id FROM profile.customer_tags SEMI JOIN top USING (tag_id))
        SELECT a.tag_id AS tag_a, ta.level3 AS name_a, b.tag_id AS tag_b, tb.level3 AS name_b,
               count(*) AS customers_with_both,
               round(count(*) * any_value(n.customers)
                     / (any_value(ta.customers) * any_value(tb.customers)), 3) AS lift
        FROM t a JOIN t b ON a.customer_id = b.customer_id AND a.tag_id < b.tag_id
        JOIN top ta ON ta.tag_id = a.tag_id JOIN top tb ON tb.tag_id = b.tag_id, n
        GROUP BY ALL ORDER BY customers_with_both DESC, tag_a, tag_b""",
}


def signed_vs_potential_sql(signed_stages: list[str], potential_stages: list[str]) -> str:
    """One row per group: who the signed customers are next to the potential ones."""
    signed = ", ".join(quote_literal(s) for s in signed_stages)
    potential = ", ".join(quote_literal(s) for s in potential_stages)
    return f"""
        WITH grouped AS (
            SELECT *, CASE WHEN crm_stage IN ({signed}) OR opportunities_won > 0 THEN '签约客户'
                           WHEN crm_stage IN ({potential}) THEN '潜在客户' END AS customer_group
            FROM profile.customer_profile)
        SELECT customer_group, count(*) AS customers,
               round(avg(age), 1) AS avg_age,
               round(avg((gender = 'F')::INT), 3) AS female_share,
               mode(industry) AS top_industry, mode(lead_source) AS top_lead_source,
               mode(city) AS top_city,
               round(avg(tenure_days), 0) AS avg_tenure_days,
               round(avg(orders_365d), 2) AS avg_orders_365d,
               round(avg(spend_365d), 2) AS avg_spend_365d,
               round(avg(followups_90d), 2) AS avg_followups_90d,
               round(avg(article_reads_90d), 2) AS avg_article_reads_90d,
               round(avg(wechat_subscribed::INT), 3) AS wechat_share
        FROM grouped WHERE customer_group IS NOT NULL GROUP BY ALL ORDER BY customer_group DESC"""


def build_marts(con, signed_stages: list[str], potential_stages: list[str]) -> dict[str, int]:
    con.execute("CREATE SCHEMA IF NOT EXISTS marts")
    counts = {}
    marts = {**MARTS, "signed_vs_potential": signed_vs_potential_sql(signed_stages,
                                                                     potential_stages)}
    for name, sql in marts.items():
        con.execute(f"CREATE OR REPLACE TABLE marts.{name} AS {sql}")
        counts[name] = con.execute(f"SELECT count(*) FROM marts.{name}").fetchall()[0][0]
    return counts
