"""Golden record survivorship on hand-made records: each rule, config overrides, lineage."""

import datetime as dt

import pytest
from handmade import land

from pipelines.config import IdentityConfig, SurvivorshipConfig
from transforms.core import build_customers, ensure_core_schema
from transforms.identity import resolve_identities
from transforms.staging import build_staging


def golden(con, survivorship: SurvivorshipConfig) -> tuple[dict, dict]:
    for entity in ("crm_customers", "erp_customers", "wechat_followers"):
        build_staging(con, entity)
    resolve_identities(con, IdentityConfig(), "r1", dt.datetime(2026, 11, 21))
    ensure_core_schema(con)
    build_customers(con, survivorship.rules())
    row = con.sql("SELECT * FROM core.customers").fetchall()
    assert len(row) == 1, "the hand-made records are one person"
    columns = [c[0] for c in con.sql("SELECT * FROM core.customers").description]
    lineage = {f: (s, k, r) for f, s, k, r in con.execute(
        "SELECT field, source, source_key, rule FROM core.customer_field_lineage").fetchall()}
    return dict(zip(columns, row[0], strict=True)), lineage


@pytest.fixture
def one_person(wh):
    """张伟 entered twice in CRM (an old and a newer entry), once in ERP, once on WeChat."""
    land(wh, "crm_customers", [
        {"customer_code": "KH1", "name": "张伟", "phone": "13800138000", "stage": "潜在客户",
         "city": "杭州", "address": "西湖区", "created_at": "2023-01-05 10:00:00"},
        {"customer_code": "KH2", "name": "张 伟", "phone": "13800138000", "stage": "签约客户",
         "email": "zw@163.com", "created_at": "2025-06-01 09:00:00"},
    ], "2026-11-20 02:00:00")
    land(wh, "erp_customers", [
        {"customer_code": "C1", "name": "Zhang Wei", "crm_ref": "KH1",
         "address": "浙江省杭州市西湖区文三路 90 号", "email": "zhangwei@corp.cn",
         "created_at": "2024-03-01 08:00:00"},
    ], "2026-11-20 02:00:00")
    land(wh, "wechat_followers", [
        {"openid": "o1", "phone": "13800138000", "city": "上海", "nickname": "阿伟",
         "subscribed_at": "2026-02-01 12:00:00"},
    ], "2026-11-20 02:00:00")
    return wh


def test_default_rules_pick_by_trust_recency_and_completeness(one_person):
    row, lineage = golden(one_person, SurvivorshipConfig())
    # source_priority: CRM over ERP's pinyin; the newer CRM entry wins within CRM.
    assert row["name"] == "张伟" and lineage["name"] == ("crm", "KH2", "source_priority")
    assert row["crm_stage"] == "签约客户"
    # most_recent: all loaded the same night, so the newer record (CRM 2025 over ERP 2024) wins.
    assert row["email"] == "zw@163.com" and lineage["email"] == ("crm", "KH2", "most_recent")
    # most_complete: ERP's full street address over CRM's district.
    assert row["address"] == "浙江省杭州市西湖区文三路 90 号"
    assert lineage["address"] == ("erp", "C1", "most_complete")
    # Only CRM has a city in the default order, WeChat's comes after it.
    assert row["city"] == "杭州市" and lineage["city"] == ("crm", "KH1", "source_priority")
    assert row["wechat_nickname"] == "阿伟" and lineage["wechat_nickname"][0] == "wechat"
    assert row["source_records"] == 4 and row["sources"] == ["crm", "erp", "wechat"]


def test_config_overrides_change_the_survivor_and_its_lineage(one_person):
    rules = SurvivorshipConfig(
        source_priority=["erp", "crm", "wechat"],
        fields={"city": {"rule": "source_priority", "sources": ["wechat", "crm"]},
                "address": "source_priority", "email": "source_priority"},
    )
    row, lineage = golden(one_person, rules)
    assert row["name"] == "Zhang Wei" and lineage["name"] == ("erp", "C1", "source_priority")
    assert row["city"] == "上海市" and lineage["city"] == ("wechat", "o1", "source_priority")
    assert row["address"] == "浙江省杭州市西湖区文三路 90 号"
    assert row["email"] == "zhangwei@corp.cn"


def test_unknown_field_or_repeated_source_is_a_config_error():
    with pytest.raises(ValueError, match="unknown field.*'nick'"):
        SurvivorshipConfig(fields={"nick": "most_recent"})
    with pytest.raises(ValueError, match="listed twice"):
        SurvivorshipConfig(source_priority=["crm", "crm"])
    with pytest.raises(ValueError):
        SurvivorshipConfig(fields={"name": "longest"})


def test_one_record_customers_keep_their_record_and_several_records_aggregate(wh):
    """Customers with one record skip the aggregate (transforms.core._pick_survivors): their
    golden record is the record, with its lineage; flags agree with the aggregated path."""
    land(wh, "crm_customers", [
        {"customer_code": "KH1", "name": "李娜", "phone": "13900139000", "marketing_consent": "否",
         "created_at": "2024-01-01 10:00:00"},
        {"customer_code": "KH2", "name": "王芳", "phone": "13700137000", "marketing_consent": "是",
         "created_at": "2024-02-01 10:00:00"},
        {"customer_code": "KH3", "name": "赵强", "phone": "13600136000",
         "created_at": "2024-03-01 10:00:00"},
    ], "2026-11-20 02:00:00")
    land(wh, "erp_customers", [  # 王芳's second record: consent stays, the email joins
        {"customer_code": "C9", "name": "王芳", "phone": "13700137000", "email": "wf@qq.com",
         "created_at": "2023-05-01 08:00:00"},
    ], "2026-11-20 02:00:00")
    land(wh, "wechat_followers", [], "2026-11-20 02:00:00")
    for entity in ("crm_customers", "erp_customers", "wechat_followers"):
        build_staging(wh, entity)
    resolve_identities(wh, IdentityConfig(), "r1", dt.datetime(2026, 11, 21))
    ensure_core_schema(wh)
    assert build_customers(wh, SurvivorshipConfig().rules()) == 3
    rows = wh.execute("""SELECT name, email, marketing_consent, source_records, sources,
                                first_seen_at::DATE::VARCHAR
                         FROM core.customers ORDER BY name""").fetchall()
    assert rows == [
        ("李娜", None, False, 1, ["crm"], "2024-01-01"),
        ("王芳", "wf@qq.com", True, 2, ["crm", "erp"], "2023-05-01"),
        ("赵强", None, None, 1, ["crm"], "2024-03-01"),
    ]
    lineage = wh.execute("""SELECT c.name, l.field, l.source, l.source_key
                            FROM core.customer_field_lineage l JOIN core.customers c
                              USING (customer_id) WHERE c.name IN ('李娜', '王芳')
                            ORDER BY ALL""").fetchall()
    assert lineage == [
        ("李娜", "name", "crm", "KH1"), ("李娜", "phone", "crm", "KH1"),
        ("王芳", "email", "erp", "C9"), ("王芳", "name", "crm", "KH2"),
        ("王芳", "phone", "crm", "KH2"),
    ]
