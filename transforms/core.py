"""Core layer: golden customer records and every fact attached to a customer_id.

Survivorship is set per field (``transforms.survivorship``; ``profiles.yaml`` → survivorship):
``core.customer_field_lineage`` says which source record each value came from and by which rule.
Facts (orders, events, follow-ups, opportunity stages) are built in ``transforms.facts``.
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
