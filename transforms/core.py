"""Core layer: golden customer records and every fact attached to a customer_id.

Survivorship is set per field (``transforms.survivorship``; ``profiles.yaml`` → survivorship):
``core.customer_field_lineage`` says which source record each value came from and by which rule.
Facts whose source key matches no customer (an order for an unknown customer code) are kept in
``core.unmatched_facts`` with the reason, never dropped.
"""

from __future__ import annotations

from transforms.sql import fetch_scalar
from transforms.staging import current_rows_sql
from transforms.survivorship import GOLDEN_FIELDS, FieldRule, default_rules, order_key_sql


def ensure_core_schema(con) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS core")


def build_customers(con, rules: dict[str, FieldRule] | None = None) -> int:
    """core.customers (one golden record per customer) and core.customer_field_lineage."""
    rules = rules or default_rules()
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _customer_fields AS
        WITH crm AS ({current_rows_sql('crm_customers')}),
             erp AS ({current_rows_sql('erp_customers')}),
             wx AS ({current_rows_sql('wechat_followers')}),
             fields AS (
            SELECT 'crm' AS source, customer_code AS source_key, name, gender, birth_date, phone,
                   email, province, city, address, industry, lead_source, stage AS crm_stage, owner,
                   created_at AS first_seen_at, marketing_consent, _loaded_at
            FROM crm
            UNION ALL BY NAME
            SELECT 'erp' AS source, customer_code AS source_key, name, phone, email, address,
                   created_at AS first_seen_at, _loaded_at
            FROM erp
            UNION ALL BY NAME
            SELECT 'wechat' AS source, openid AS source_key, gender, phone, province, city,
                   nickname AS wechat_nickname, unionid, subscribed_at AS first_seen_at,
                   subscribed, _loaded_at
            FROM wx)
        SELECT m.customer_id, f.*
        FROM fields f JOIN identity.customer_map m USING (source, source_key)"""
    )
    # One pass: each field's survivor carries the record it came from, for the lineage table.
    picks = ",\n".join(
        f"""arg_max({{'value': {f}, 'source': source, 'source_key': source_key}},
                    {order_key_sql(f, rules[f])}) FILTER (WHERE {f} IS NOT NULL) AS {f}"""
        for f in GOLDEN_FIELDS
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _survivors AS
        SELECT customer_id, {picks},
               min(first_seen_at) AS first_seen_at,
               bool_or(subscribed) AS wechat_subscribed,
               -- one refusal anywhere wins over consent given elsewhere; NULL = never asked
               CASE WHEN bool_or(NOT marketing_consent) THEN false
                    WHEN bool_or(marketing_consent) THEN true END AS marketing_consent,
               count(*) AS source_records,
               list(DISTINCT source ORDER BY source) AS sources
        FROM _customer_fields GROUP BY customer_id"""
    )
    values = ", ".join(f"{f}.value AS {f}" for f in GOLDEN_FIELDS)
    con.execute(
        f"""CREATE OR REPLACE TABLE core.customers AS
        SELECT customer_id, {values}, first_seen_at, wechat_subscribed, marketing_consent,
               source_records, sources
        FROM _survivors ORDER BY customer_id"""
    )
    lineage = " UNION ALL ".join(
        f"""SELECT customer_id, '{f}' AS field, {f}.source AS source, {f}.source_key AS source_key,
                   '{rules[f].rule}' AS rule FROM _survivors WHERE {f} IS NOT NULL"""
        for f in GOLDEN_FIELDS
    )
    con.execute(f"CREATE OR REPLACE TABLE core.customer_field_lineage AS {lineage}")
    con.execute("DROP TABLE _customer_fields")
    con.execute("DROP TABLE _survivors")
    return fetch_scalar(con, "SELECT count(*) FROM core.customers")


def build_facts(con) -> dict[str, int]:
    """Orders (ERP lines + WeChat mall orders), WeChat events, follow-ups, opportunity stages."""
    crm_map = "(SELECT source_key, customer_id FROM identity.customer_map WHERE source = 'crm')"
    erp_map = "(SELECT source_key, customer_id FROM identity.customer_map WHERE source = 'erp')"
    wx_map = "(SELECT source_key, customer_id FROM identity.customer_map WHERE source = 'wechat')"
    con.execute(
        f"""CREATE OR REPLACE TABLE core.order_lines AS
        WITH erp AS ({current_rows_sql('erp_orders')}),
             wx AS (SELECT * FROM ({current_rows_sql('wechat_events')})
                    WHERE event_type = 'mall_order')
        SELECT m.customer_id, 'erp' AS channel, order_no AS order_id, line_no, ordered_at,
               category, product_name, quantity, amount, quantity < 0 OR amount < 0 AS is_refund,
               customer_code AS source_key, _source_file, _row_number
        FROM erp LEFT JOIN {erp_map} m ON m.source_key = erp.customer_code
        UNION ALL
        SELECT m.customer_id, 'wechat_mall', order_id, 1, event_at, category, NULL,
               coalesce(quantity, 1), amount, amount < 0, openid, _source_file, _row_number
        FROM wx LEFT JOIN {wx_map} m ON m.source_key = wx.openid"""
    )
    con.execute(
        f"""CREATE OR REPLACE TABLE core.wechat_events AS
        SELECT m.customer_id, e.* EXCLUDE (_file_sha256, _loaded_at)
        FROM ({current_rows_sql('wechat_events')}) e LEFT JOIN {wx_map} m ON m.source_key = e.openid"""
    )
    con.execute(
        f"""CREATE OR REPLACE TABLE core.followups AS
        SELECT m.customer_id, f.* EXCLUDE (_file_sha256, _loaded_at)
        FROM ({current_rows_sql('crm_followups')}) f LEFT JOIN {crm_map} m
          ON m.source_key = f.customer_code"""
    )
    con.execute(
        f"""CREATE OR REPLACE TABLE core.opportunity_stages AS
        SELECT m.customer_id, o.* EXCLUDE (_file_sha256, _loaded_at)
        FROM ({current_rows_sql('crm_opportunities')}) o LEFT JOIN {crm_map} m
          ON m.source_key = o.customer_code"""
    )
    con.execute(
        """CREATE OR REPLACE TABLE core.unmatched_facts AS
        SELECT 'order_lines' AS fact, source_key, _source_file, _row_number,
               'no customer record with this key' AS reason FROM core.order_lines
        WHERE customer_id IS NULL
        UNION ALL SELECT 'wechat_events', openid, _source_file, _row_number,
               'event of an openid that is not a known follower' FROM core.wechat_events
        WHERE customer_id IS NULL
        UNION ALL SELECT 'followups', customer_code, _source_file, _row_number,
               'no CRM customer with this code' FROM core.followups WHERE customer_id IS NULL
        UNION ALL SELECT 'opportunity_stages', customer_code, _source_file, _row_number,
               'no CRM customer with this code' FROM core.opportunity_stages
        WHERE customer_id IS NULL"""
    )
    counts = {
        t: fetch_scalar(con, f"SELECT count(*) FROM core.{t}")
        for t in ("order_lines", "wechat_events", "followups", "opportunity_stages", "unmatched_facts")
    }
    return counts
