"""The wide profile: one row per customer with golden fields, features, tags and segment."""

from __future__ import annotations

from transforms.sql import fetch_scalar


def build_profile(con, snapshot) -> int:
    con.execute("CREATE SCHEMA IF NOT EXISTS profile")
    con.execute(
        """CREATE OR REPLACE TABLE profile.customer_profile AS
        SELECT c.customer_id, $snap::DATE AS snapshot_date,
               c.name, c.wechat_nickname, c.phone, c.email, c.birth_date, c.address,
               c.sources, c.source_records,
               f.* EXCLUDE (customer_id),
               p.churn_probability, p.predicted_clv_365d,
               s.segment_id, s.segment_name,
               coalesce(t.tags, []) AS tags, coalesce(t.tag_ids, []) AS tag_ids
        FROM core.customers c
        JOIN features.customer_features f USING (customer_id)
        LEFT JOIN features.customer_predictions p USING (customer_id)
        LEFT JOIN profile.customer_segments s USING (customer_id)
        LEFT JOIN (SELECT customer_id, list(level3 ORDER BY level1, level2) AS tags,
                          list(tag_id ORDER BY level1, level2) AS tag_ids
                   FROM profile.customer_tags GROUP BY customer_id) t USING (customer_id)
        ORDER BY c.customer_id""",
        {"snap": snapshot},
    )
    return fetch_scalar(con, "SELECT count(*) FROM profile.customer_profile")
