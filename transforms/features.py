"""Features: one row per customer as of a snapshot date, in two DuckDB statements.

FEATURES is the single documented list (name, meaning, unit): it feeds the data dictionary and
is the column list tag rules may use. Only facts dated on or before the snapshot date count, so
the same function computes features "as of" any past cutoff (for training without leakage).

1. ``summarise``: per customer, what needs their facts: counts and sums over windows ending at
   the snapshot, lifetime aggregates, and the dates that day counts are measured from (last
   order, last follow-up, birth date…). Each row depends on that customer's rows only, so a
   night can recompute just the customers whose inputs changed (transforms.features_refresh).
2. ``finish``: for everyone, the day counts from those dates and the scores that rank a
   customer among all others (RFM quintiles, engagement and influence percentiles).
"""

from __future__ import annotations

import datetime as dt

from transforms.sql import fetch_scalar

FEATURES: dict[str, tuple[str, str]] = {
    # basic
    "gender": ("性别 M / F", ""),
    "age": ("age in whole years at the snapshot date", "years"),
    "age_band": ("age band: <25, 25-30, 30-40, 40-50, 50+", ""),
    "province": ("province, canonical full name", ""),
    "city": ("city, canonical full name", ""),
    "industry": ("industry from CRM", ""),
    "lead_source": ("lead source from CRM (客户来源)", ""),
    "crm_stage": ("CRM customer stage (客户阶段)", ""),
    "owner": ("responsible sales rep", ""),
    "tenure_days": ("days since the customer was first seen in any source", "days"),
    # value
    "first_order_date": ("date of the first purchase", "date"),
    "last_order_date": ("date of the last purchase", "date"),
    "days_since_first_order": ("days since the first purchase (NULL if never bought)", "days"),
    "recency_days": ("days since the last purchase (NULL if never bought)", "days"),
    "orders_30d": ("purchases (orders that are not pure refunds) in the last 30 days", "orders"),
    "orders_90d": ("purchases in the last 90 days", "orders"),
    "orders_365d": ("purchases in the last 365 days", "orders"),
    "orders_lifetime": ("purchases ever", "orders"),
    "spend_30d": ("net spend in the last 30 days, refunds netted", "yuan"),
    "spend_90d": ("net spend in the last 90 days, refunds netted", "yuan"),
    "spend_365d": ("net spend in the last 365 days, refunds netted", "yuan"),
    "spend_lifetime": ("net spend ever, refunds netted", "yuan"),
    "avg_order_value": ("net lifetime spend / lifetime purchases", "yuan"),
    "refund_lines": ("order lines that are refunds", "lines"),
    "r_score": ("RFM recency score 1-5 by quintile among buyers (5 = most recent)", "score"),
    "f_score": ("RFM frequency score 1-5 by quintile of lifetime purchases", "score"),
    "m_score": ("RFM monetary score 1-5 by quintile of lifetime net spend", "score"),
    "rfm_segment": ("RFM segment name (Champions, Loyal, At risk, …; 'No purchase')", ""),
    # behaviour
    "mean_days_between_orders": ("mean gap between consecutive purchases", "days"),
    "median_days_between_orders": ("median gap between consecutive purchases", "days"),
    "preferred_category": ("category with the largest net spend", ""),
    "preferred_category_share": ("share of net spend in the preferred category", "ratio"),
    "category_spend_shares": ("share of net spend per category, e.g. category_spend_shares['美妆']",
                              "map"),
    "preferred_hour_band": ("when most purchases are placed: 凌晨 0-6, 上午 6-12, 下午 12-18, "
                            "晚上 18-24", ""),
    "overdue_ratio": ("days since the last purchase / the customer's own median gap between "
                      "purchases (> 1: later than usual; NULL under two purchases)", "ratio"),
    "night_order_share": ("share of purchases placed 20:00-22:00", "ratio"),
    "weekend_order_share": ("share of purchases placed on Saturday or Sunday", "ratio"),
    "wechat_mall_spend_share": ("share of net spend through the WeChat mall (vs ERP)", "ratio"),
    "followups_90d": ("CRM follow-ups in the last 90 days", "follow-ups"),
    "days_since_followup": ("days since the last CRM follow-up", "days"),
    # funnel
    "opportunity_stage": ("stage of the most recent opportunity", ""),
    "days_in_stage": ("days the most recent opportunity has been in its stage", "days"),
    "opportunities_won": ("opportunities that reached 赢单", "opportunities"),
    "opportunities_lost": ("opportunities that reached 输单", "opportunities"),
    "avg_stage_dwell_days": ("mean days the customer's opportunities spent in a stage before "
                             "moving to the next", "days"),
    # social (WeChat)
    "wechat_subscribed": ("currently follows the official account", "bool"),
    "days_since_subscribe": ("days since following the official account", "days"),
    "article_reads_30d": ("article reads in the last 30 days", "reads"),
    "article_reads_90d": ("article reads in the last 90 days", "reads"),
    "shares_30d": ("article shares in the last 30 days", "shares"),
    "shares_90d": ("article shares in the last 90 days", "shares"),
    "referrals": ("people invited who then followed the account", "people"),
    "engagement_score": ("0-100 percentile of reads + 3 × shares in 90 days", "score"),
    "influence_score": ("0-100 percentile of shares in 90 days + 5 × referrals", "score"),
}


def summary_sql(population: str | None = None) -> str:
    """SELECT of one summary row per customer (of ``population``, a table of customer_ids, or
    everyone) as of the date parameter ``$snap``."""
    tables = ("customers", "order_lines", "followups", "opportunity_stages", "wechat_events")
    src = {t: f"core.{t}" if population is None else f"population_{t}" for t in tables}
    # A population's rows are picked once per table (each is read by several parts below).
    picked = "".join(
        f"""population_{t} AS MATERIALIZED (SELECT * FROM core.{t}
                WHERE customer_id IN (SELECT customer_id FROM {population})),
        """ for t in tables) if population is not None else ""
    return f"""WITH {picked}params AS (SELECT $snap::DATE AS snap, ($snap::DATE + 1)::TIMESTAMP AS cutoff),
        lines AS (
            SELECT l.* FROM {src['order_lines']} l, params
            WHERE customer_id IS NOT NULL AND ordered_at < cutoff),
        orders AS (
            SELECT customer_id, order_id, channel, min(ordered_at) AS ordered_at,
                   bool_and(is_refund) AS refund_only
            FROM lines GROUP BY ALL),
        purchases AS (
            SELECT *, datediff('day', lag(ordered_at) OVER (PARTITION BY customer_id
                                                            ORDER BY ordered_at), ordered_at) AS gap
            FROM orders WHERE NOT refund_only),
        value AS (
            SELECT customer_id,
                   min(ordered_at)::DATE AS first_order_date,
                   max(ordered_at)::DATE AS last_order_date,
                   count(*) FILTER (WHERE ordered_at >= snap - 30) AS orders_30d,
                   count(*) FILTER (WHERE ordered_at >= snap - 90) AS orders_90d,
                   count(*) FILTER (WHERE ordered_at >= snap - 365) AS orders_365d,
                   count(*) AS orders_lifetime,
                   avg(gap) AS mean_days_between_orders,
                   median(gap) AS median_days_between_orders,
                   avg((hour(ordered_at) BETWEEN 20 AND 21)::INT) AS night_order_share,
                   avg((dayofweek(ordered_at) IN (0, 6))::INT) AS weekend_order_share
            FROM purchases, params GROUP BY customer_id),
        spend AS (
            SELECT customer_id,
                   coalesce(sum(amount) FILTER (WHERE ordered_at >= snap - 30), 0) AS spend_30d,
                   coalesce(sum(amount) FILTER (WHERE ordered_at >= snap - 90), 0) AS spend_90d,
                   coalesce(sum(amount) FILTER (WHERE ordered_at >= snap - 365), 0) AS spend_365d,
                   sum(amount) AS spend_lifetime,
                   count(*) FILTER (WHERE is_refund) AS refund_lines,
                   sum(amount) FILTER (WHERE channel = 'wechat_mall') / nullif(sum(amount), 0)
                       AS wechat_mall_spend_share
            FROM lines, params GROUP BY customer_id),
        categories AS (
            -- ties go to the first category by name: never to row order
            SELECT customer_id, first(category ORDER BY net DESC, category) AS preferred_category,
                   max(net) / nullif(sum(greatest(net, 0)), 0) AS preferred_category_share,
                   map(list(category ORDER BY category),
                       list(round(greatest(net, 0) / nullif(total, 0), 4) ORDER BY category))
                       AS category_spend_shares
            FROM (SELECT customer_id, category, sum(amount) AS net,
                         sum(greatest(sum(amount), 0)) OVER (PARTITION BY customer_id) AS total
                  FROM lines WHERE category IS NOT NULL GROUP BY customer_id, category)
            GROUP BY customer_id),
        hour_bands AS (  -- ties go to the later band, so the answer never depends on row order
            SELECT customer_id, arg_max(band, n * 10 + band_no) AS preferred_hour_band
            FROM (SELECT customer_id, hour(ordered_at) // 6 AS band_no,
                         ['凌晨', '上午', '下午', '晚上'][hour(ordered_at) // 6 + 1] AS band,
                         count(*) AS n
                  FROM purchases GROUP BY ALL)
            GROUP BY customer_id),
        follow AS (
            SELECT customer_id,
                   count(*) FILTER (WHERE followup_at >= snap - 90) AS followups_90d,
                   max(followup_at)::DATE AS last_followup_date
            FROM {src['followups']}, params
            WHERE customer_id IS NOT NULL AND followup_at < cutoff GROUP BY customer_id),
        opp AS (
            SELECT customer_id,
                   first(stage ORDER BY entered_at DESC, stage) AS opportunity_stage,  -- ties: by name
                   max(entered_at)::DATE AS stage_entered_date,
                   count(DISTINCT opportunity_code) FILTER (WHERE stage = '赢单') AS opportunities_won,
                   count(DISTINCT opportunity_code) FILTER (WHERE stage = '输单') AS opportunities_lost
            FROM {src['opportunity_stages']}, params
            WHERE customer_id IS NOT NULL AND entered_at < cutoff GROUP BY customer_id),
        dwell AS (  -- within the customer's own rows, so a row depends on that customer only
            SELECT customer_id, avg(datediff('day', entered_at, left_at)) AS avg_stage_dwell_days
            FROM (SELECT customer_id, entered_at, lead(entered_at) OVER (
                      PARTITION BY customer_id, opportunity_code ORDER BY entered_at) AS left_at
                  FROM {src['opportunity_stages']}, params
                  WHERE customer_id IS NOT NULL AND entered_at < cutoff)
            WHERE left_at IS NOT NULL GROUP BY customer_id),
        wx AS (
            SELECT customer_id,
                   count(*) FILTER (WHERE event_type = 'article_read' AND event_at >= snap - 30)
                       AS article_reads_30d,
                   count(*) FILTER (WHERE event_type = 'article_read' AND event_at >= snap - 90)
                       AS article_reads_90d,
                   count(*) FILTER (WHERE event_type = 'share' AND event_at >= snap - 30) AS shares_30d,
                   count(*) FILTER (WHERE event_type = 'share' AND event_at >= snap - 90) AS shares_90d
            FROM {src['wechat_events']}, params
            WHERE customer_id IS NOT NULL AND event_at < cutoff GROUP BY customer_id),
        referred AS (  -- an invitation counts when the invited openid became a known follower
            SELECT e.customer_id, count(DISTINCT e.invited_openid) AS referrals
            FROM {src['wechat_events']} e, params
            JOIN identity.customer_map m ON m.source = 'wechat' AND m.source_key = e.invited_openid
            WHERE e.event_type = 'referral' AND e.customer_id IS NOT NULL AND e.event_at < cutoff
            GROUP BY e.customer_id),
        subscribed AS (
            SELECT m.customer_id, min(w.subscribed_at)::DATE AS subscribed_date
            FROM staging.wechat_followers w JOIN identity.customer_map m
              ON m.source = 'wechat' AND m.source_key = w.openid
            WHERE m.customer_id IN (SELECT customer_id FROM {src['customers']})
            GROUP BY m.customer_id)
        SELECT c.customer_id, c.gender, c.birth_date, c.province, c.city, c.industry,
               c.lead_source, c.crm_stage, c.owner, c.first_seen_at::DATE AS first_seen_date,
               v.first_order_date, v.last_order_date,
               coalesce(v.orders_30d, 0) AS orders_30d, coalesce(v.orders_90d, 0) AS orders_90d,
               coalesce(v.orders_365d, 0) AS orders_365d,
               coalesce(v.orders_lifetime, 0) AS orders_lifetime,
               coalesce(s.spend_30d, 0) AS spend_30d, coalesce(s.spend_90d, 0) AS spend_90d,
               coalesce(s.spend_365d, 0) AS spend_365d,
               coalesce(s.spend_lifetime, 0) AS spend_lifetime,
               s.spend_lifetime / nullif(v.orders_lifetime, 0) AS avg_order_value,
               coalesce(s.refund_lines, 0) AS refund_lines,
               v.mean_days_between_orders, v.median_days_between_orders,
               g.preferred_category, g.preferred_category_share, g.category_spend_shares,
               hb.preferred_hour_band, v.night_order_share, v.weekend_order_share,
               s.wechat_mall_spend_share,
               coalesce(f.followups_90d, 0) AS followups_90d, f.last_followup_date,
               o.opportunity_stage, o.stage_entered_date,
               coalesce(o.opportunities_won, 0) AS opportunities_won,
               coalesce(o.opportunities_lost, 0) AS opportunities_lost,
               d.avg_stage_dwell_days,
               coalesce(c.wechat_subscribed, false) AS wechat_subscribed, ws.subscribed_date,
               coalesce(w.article_reads_30d, 0) AS article_reads_30d,
               coalesce(w.article_reads_90d, 0) AS article_reads_90d,
               coalesce(w.shares_30d, 0) AS shares_30d, coalesce(w.shares_90d, 0) AS shares_90d,
               coalesce(r.referrals, 0) AS referrals
        FROM {src['customers']} c
        LEFT JOIN value v USING (customer_id) LEFT JOIN spend s USING (customer_id)
        LEFT JOIN categories g USING (customer_id) LEFT JOIN follow f USING (customer_id)
        LEFT JOIN hour_bands hb USING (customer_id) LEFT JOIN dwell d USING (customer_id)
        LEFT JOIN opp o USING (customer_id) LEFT JOIN wx w USING (customer_id)
        LEFT JOIN referred r USING (customer_id) LEFT JOIN subscribed ws USING (customer_id)"""


def finish_sql(summary: str) -> str:
    """SELECT of the features (FEATURES order) of everyone in ``summary`` as of ``$snap``: day
    counts from the summary's dates, and the scores that rank customers among each other."""
    return f"""WITH days AS (
            SELECT s.* EXCLUDE (birth_date, first_seen_date, last_followup_date,
                                stage_entered_date, subscribed_date),
                   floor(datediff('day', birth_date, $snap::DATE) / 365.25)::INT AS age,
                   -- Day counts from dates the summary does not cut at the snapshot (first
                   -- seen, subscribed) are NULL for a date after it, never negative: staging
                   -- lets a date through up to values.future_days ahead, and a backfill's
                   -- snapshot can be older than rows staged since.
                   CASE WHEN first_seen_date <= $snap::DATE
                        THEN datediff('day', first_seen_date, $snap::DATE) END AS tenure_days,
                   datediff('day', first_order_date, $snap::DATE) AS days_since_first_order,
                   datediff('day', last_order_date, $snap::DATE) AS recency_days,
                   datediff('day', last_order_date, $snap::DATE)
                       / nullif(median_days_between_orders, 0) AS overdue_ratio,
                   datediff('day', last_followup_date, $snap::DATE) AS days_since_followup,
                   datediff('day', stage_entered_date, $snap::DATE) AS days_in_stage,
                   CASE WHEN wechat_subscribed AND subscribed_date <= $snap::DATE
                        THEN datediff('day', subscribed_date, $snap::DATE)
                        END AS days_since_subscribe
            FROM {summary} s),
        -- The window functions see only the columns they rank by: over the whole row they
        -- moved every column through five sorts and took ten times as long.
        ranks AS (
            SELECT customer_id,
                   CASE WHEN orders_lifetime > 0 THEN 6 - ntile(5) OVER (
                       PARTITION BY orders_lifetime > 0 ORDER BY recency_days, customer_id) END AS r_score,
                   CASE WHEN orders_lifetime > 0 THEN ntile(5) OVER (
                       PARTITION BY orders_lifetime > 0 ORDER BY orders_lifetime, customer_id) END AS f_score,
                   CASE WHEN orders_lifetime > 0 THEN ntile(5) OVER (
                       PARTITION BY orders_lifetime > 0 ORDER BY spend_lifetime, customer_id) END AS m_score,
                   round(100 * percent_rank() OVER (ORDER BY article_reads_90d + 3 * shares_90d), 1)
                       AS engagement_score,
                   round(100 * percent_rank() OVER (ORDER BY shares_90d + 5 * referrals), 1)
                       AS influence_score
            FROM (SELECT customer_id, orders_lifetime, recency_days, spend_lifetime,
                         article_reads_90d, shares_90d, referrals FROM days)),
        scored AS (
            SELECT * REPLACE (CASE WHEN age BETWEEN 0 AND 120 THEN age END AS age)
            FROM days JOIN ranks USING (customer_id))
        SELECT customer_id, {', '.join(_FINISHED.get(f, f) for f in FEATURES)}
        FROM scored"""


# Features computed in the last SELECT of finish_sql; the others are columns of ``scored``.
_FINISHED = {
    "age_band": """CASE WHEN age IS NULL THEN NULL
                    WHEN age < 25 THEN '<25' WHEN age < 30 THEN '25-30'
                    WHEN age < 40 THEN '30-40' WHEN age < 50 THEN '40-50' ELSE '50+' END AS age_band""",
    "rfm_segment": """CASE WHEN orders_lifetime = 0 THEN 'No purchase'
                    WHEN r_score >= 4 AND f_score >= 4 THEN 'Champions'
                    WHEN r_score >= 3 AND f_score >= 3 THEN 'Loyal'
                    WHEN r_score >= 4 AND f_score <= 2 THEN 'New'
                    WHEN r_score <= 2 AND f_score >= 3 THEN 'At risk'
                    WHEN r_score <= 2 AND f_score <= 2 THEN 'Hibernating'
                    ELSE 'Needs attention' END AS rfm_segment""",
}


def build_features(con, snapshot: dt.date, table: str = "features.customer_features",
                   population: str | None = None, temporary: bool = False) -> int:
    """``table`` (features.customer_features) as of ``snapshot``, computed for everyone:
    facts after it are ignored, so the same code gives the features of a past cutoff for
    training models. ``population``: a table of customer_ids to compute them for (a training
    sample) instead of everyone; percentile scores are then relative to that sample.
    ``temporary``: ``table`` is a temp table (training rows: a persistent write costs 3x)."""
    con.execute("CREATE SCHEMA IF NOT EXISTS features")
    con.execute(f"CREATE OR REPLACE TEMP TABLE _feature_summary AS {summary_sql(population)}",
                {"snap": snapshot})
    finish(con, snapshot, "_feature_summary", table, temporary)
    con.execute("DROP TABLE _feature_summary")
    return fetch_scalar(con, f"SELECT count(*) FROM {table}")


def finish(con, snapshot: dt.date, summary: str, table: str, temporary: bool = False) -> None:
    kind = "TEMP TABLE" if temporary else "TABLE"
    con.execute(f"CREATE OR REPLACE {kind} {table} AS {finish_sql(summary)}", {"snap": snapshot})
