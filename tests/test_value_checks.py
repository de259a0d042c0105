"""Values that cannot be true are not published as facts (issue 25, item 4). Real DuckDB,
hand-made inputs, exact rows out."""

import datetime as dt

from transforms.features import build_features

SNAP = dt.date(2026, 11, 20)


def test_tenure_and_days_since_subscribe_are_never_negative(wh):
    wh.execute("CREATE SCHEMA core")
    wh.execute("""CREATE TABLE core.customers AS SELECT * FROM (VALUES
        ('A', TIMESTAMP '2026-11-01 08:00', true),
        ('B', TIMESTAMP '2026-11-21 09:00', true),
        ('C', NULL::TIMESTAMP, false))
        t(customer_id, first_seen_at, wechat_subscribed)""")
    wh.execute("""ALTER TABLE core.customers ADD COLUMN gender VARCHAR;
        ALTER TABLE core.customers ADD COLUMN birth_date DATE;
        ALTER TABLE core.customers ADD COLUMN province VARCHAR;
        ALTER TABLE core.customers ADD COLUMN city VARCHAR;
        ALTER TABLE core.customers ADD COLUMN industry VARCHAR;
        ALTER TABLE core.customers ADD COLUMN lead_source VARCHAR;
        ALTER TABLE core.customers ADD COLUMN crm_stage VARCHAR;
        ALTER TABLE core.customers ADD COLUMN owner VARCHAR;
        CREATE TABLE core.order_lines (customer_id VARCHAR, order_id VARCHAR, channel VARCHAR,
            ordered_at TIMESTAMP, is_refund BOOLEAN, amount DECIMAL(18, 2), category VARCHAR);
        CREATE TABLE core.followups (customer_id VARCHAR, followup_at TIMESTAMP);
        CREATE TABLE core.opportunity_stages (customer_id VARCHAR, opportunity_code VARCHAR,
            stage VARCHAR, entered_at TIMESTAMP);
        CREATE TABLE core.wechat_events (customer_id VARCHAR, event_type VARCHAR,
            event_at TIMESTAMP, invited_openid VARCHAR);
        CREATE TABLE IF NOT EXISTS identity.customer_map (source VARCHAR, source_key VARCHAR,
            customer_id VARCHAR);
        INSERT INTO identity.customer_map (source, source_key, customer_id)
            VALUES ('wechat', 'oA', 'A'), ('wechat', 'oB', 'B');
        CREATE TABLE staging.wechat_followers (openid VARCHAR, subscribed_at TIMESTAMP);
        INSERT INTO staging.wechat_followers
            VALUES ('oA', '2026-11-10 12:00'), ('oB', '2026-11-21 10:00')""")
    build_features(wh, SNAP, "features.customer_features")
    # B was first seen and subscribed the day after the snapshot (within staging's tolerance):
    # as of the snapshot date there is no tenure yet, rather than -1 day.
    assert wh.execute("""SELECT customer_id, tenure_days, days_since_subscribe
                         FROM features.customer_features ORDER BY 1""").fetchall() == [
        ("A", 19, 10), ("B", None, None), ("C", None, None)]
