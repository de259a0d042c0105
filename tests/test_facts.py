"""The core layer on an incremental night: only new staging rows are appended to the facts,
superseded versions replaced, re-sent events ignored, rows re-attached when their customer
changes; only touched customers get their golden record recomputed; the result equals a full
rebuild."""

import datetime as dt

from handmade import land

from pipelines.config import IdentityConfig
from transforms.core import build_customers, ensure_core_schema
from transforms.facts import build_facts
from transforms.identity import resolve_identities
from transforms.staging import build_staging, current_rows_sql

NIGHT1, NIGHT2 = "2026-11-20 02:00:00", "2026-11-21 02:00:00"
ENTITIES = ("crm_customers", "erp_customers", "wechat_followers", "erp_orders", "wechat_events",
            "crm_followups", "crm_opportunities")
SAME_EITHER_WAY = {
    "orders": "SELECT * EXCLUDE (_source_file, _row_number) FROM core.order_lines ORDER BY ALL",
    "events": "SELECT * EXCLUDE (_source_file, _row_number) FROM core.wechat_events ORDER BY ALL",
    "followups": "SELECT * EXCLUDE (_source_file, _row_number) FROM core.followups ORDER BY ALL",
    "stages": "SELECT * EXCLUDE (_source_file, _row_number) FROM core.opportunity_stages "
              "ORDER BY ALL",
    "unmatched": "SELECT fact, source_key FROM core.unmatched_facts ORDER BY ALL",
    "customers": "SELECT * FROM core.customers ORDER BY ALL",
    "lineage": "SELECT * FROM core.customer_field_lineage ORDER BY ALL",
}


def night(wh, run: str, full: bool = False) -> dict:
    for entity in ENTITIES:
        build_staging(wh, entity)
    resolve_identities(wh, IdentityConfig(), run, dt.datetime(2026, 11, 21))
    ensure_core_schema(wh)
    return {**build_facts(wh, full=full), "golden": build_customers(wh, full=full)}


def test_a_night_appends_new_facts_and_agrees_with_a_full_rebuild(wh):
    land(wh, "crm_customers", [{"customer_code": "KH1", "name": "张伟", "phone": "13800138000"},
                               {"customer_code": "KH2", "name": "李娜", "phone": "13900139000"}],
         NIGHT1)
    land(wh, "erp_customers", [{"customer_code": "E1", "name": "张伟", "phone": "13800138000"}],
         NIGHT1)
    land(wh, "wechat_followers", [{"openid": "o1", "nickname": "快乐每一天"}], NIGHT1)
    land(wh, "erp_orders", [
        {"order_no": "SO1", "line_no": "1", "customer_code": "E1", "ordered_at": "2026-10-01",
         "quantity": "1", "amount": "100"},
        {"order_no": "SO2", "line_no": "1", "customer_code": "E9", "ordered_at": "2026-10-02",
         "quantity": "1", "amount": "50"}], NIGHT1)
    land(wh, "wechat_events", [
        {"openid": "o1", "event_type": "article_read", "event_at": "2026-10-03 10:00:00"},
        {"openid": "o1", "event_type": "mall_order", "event_at": "2026-10-04 10:00:00",
         "order_id": "WX1", "amount": "30"}], NIGHT1)
    land(wh, "crm_followups", [{"customer_code": "KH1", "followup_at": "2026-10-05 09:00:00",
                                "method": "电话"}], NIGHT1)
    first = night(wh, "r1")
    assert first["full_rebuild"] == 1 and first["order_lines"] == 3
    assert first["golden"] == 3  # 张伟 (CRM + ERP), 李娜, the follower

    # Night 2: SO1 re-sent with a corrected amount, a new line, the same read event re-sent,
    # a new follow-up, and the unknown customer E9 arrives (its order gets attached).
    land(wh, "erp_orders", [
        {"order_no": "SO1", "line_no": "1", "customer_code": "E1", "ordered_at": "2026-10-01",
         "quantity": "1", "amount": "90"},
        {"order_no": "SO3", "line_no": "1", "customer_code": "E1", "ordered_at": "2026-11-20",
         "quantity": "2", "amount": "200"}], NIGHT2)
    land(wh, "wechat_events", [
        {"openid": "o1", "event_type": "article_read", "event_at": "2026-10-03 10:00:00"}], NIGHT2)
    land(wh, "crm_followups", [{"customer_code": "KH2", "followup_at": "2026-11-20 09:00:00",
                                "method": "微信"}], NIGHT2)
    land(wh, "erp_customers", [{"customer_code": "E9", "name": "李娜", "phone": "13900139000"}],
         NIGHT2)
    second = night(wh, "r2")
    assert second["full_rebuild"] == 0
    assert second["fact_rows_inserted"] == 3  # SO1's new version, SO3, KH2's follow-up
    assert second["golden"] == 1  # only 李娜, who gained an ERP record
    orders = dict(wh.execute("SELECT order_id, amount FROM core.order_lines").fetchall())
    assert orders == {"SO1": 90, "SO2": 50, "SO3": 200, "WX1": 30}
    owner = dict(wh.execute("""SELECT m.source_key, o.customer_id FROM core.order_lines o
        JOIN identity.customer_map m ON m.customer_id = o.customer_id WHERE o.order_id = 'SO2'
        """).fetchall())
    assert "KH2" in owner  # E9 joined 李娜 (KH2) by phone: her earlier order follows

    incremental = {name: wh.execute(sql).fetchall() for name, sql in SAME_EITHER_WAY.items()}
    assert build_facts(wh, full=True)["full_rebuild"] == 1
    assert build_customers(wh, full=True) == 3
    assert {name: wh.execute(sql).fetchall() for name, sql in SAME_EITHER_WAY.items()} == incremental


def test_current_rows_keep_the_newest_version_of_each_key(con):
    """One row per natural key: a later load wins, then a later row of the same file; a NULL
    key field (a follow-up without content) is still one key, as PARTITION BY groups NULLs."""
    con.execute("CREATE SCHEMA staging")
    con.execute("""CREATE TABLE staging.crm_followups AS SELECT * FROM (VALUES
        ('KH1', TIMESTAMP '2026-11-01 09:00', 'call', 'hello', 'A', TIMESTAMP '2026-11-20', 1),
        ('KH2', TIMESTAMP '2026-11-01 09:00', 'call', 'quote', 'A', TIMESTAMP '2026-11-20', 2),
        ('KH2', TIMESTAMP '2026-11-01 09:00', 'call', 'quote', 'B', TIMESTAMP '2026-11-21', 1),
        ('KH3', TIMESTAMP '2026-11-02 10:00', 'visit', NULL, 'A', TIMESTAMP '2026-11-20', 3),
        ('KH3', TIMESTAMP '2026-11-02 10:00', 'visit', NULL, 'C', TIMESTAMP '2026-11-20', 4))
        t(customer_code, followup_at, method, content, owner, _loaded_at, _row_number)""")
    expected = [("KH1", "A"), ("KH2", "B"), ("KH3", "C")]
    every_key = current_rows_sql("crm_followups")
    picked = current_rows_sql("crm_followups", loaded_after="TIMESTAMP '2026-11-19'")
    for sql in (every_key, picked):
        assert con.execute(f"SELECT customer_code, owner FROM ({sql}) ORDER BY 1").fetchall() \
            == expected
