"""Incremental identity (transforms.link_region): a night relinks only the records its changes
can reach, and every identity table comes out as a relink of every record would make it."""

import datetime as dt

import duckdb
import pytest
from handmade import land
from test_matching import NAMESAKES, NIGHT, population

from pipelines.config import IdentityConfig
from transforms.identity import ensure_identity_schema, resolve_identities
from transforms.normalize import register_normalizers
from transforms.raw import ensure_raw_schema
from transforms.staging import build_staging, ensure_staging_schema

ENTITIES = ("crm_customers", "erp_customers", "wechat_followers")
# Compared whole; id_changes without its timestamp column's twin (both runs use the same now).
TABLES = ["record_keys", "hub_keys", "record_links", "rejected_links", "record_clusters",
          "cluster_splits", "record_components", "customer_map", "id_registry", "id_changes"]


def night_1(con) -> None:
    population(con)
    land(con, "crm_customers", [
        {"customer_code": "KH1", "name": "张伟", "phone": "13800000001", "city": "广州"},
        {"customer_code": "KH2", "name": "李娜", "phone": "13800000002", "city": "北京"},
        {"customer_code": "KH3", "name": "王芳", "phone": "13600000000", "city": "上海"},
        {"customer_code": "KH4", "name": "赵强", "phone": "13500000004", "city": "成都"},
        {"customer_code": "KH7", "name": "欧阳娜娜", "gender": "女", "city": "广州",
         "address": "天河区中山大道100号华景新城5栋2单元1203"},
        # C8 fits both on name and city alone, so it joins neither
        *NAMESAKES,
    ], NIGHT)
    land(con, "erp_customers", [
        {"customer_code": "C1", "name": "张伟", "phone": "13800000001"},
        {"customer_code": "C2", "name": "李娜", "email": "lina@example.com"},
        {"customer_code": "C4", "name": "赵强", "phone": "13500000004"},
        {"customer_code": "C8", "name": "徐蕾梦", "address": "上海市黄浦区南京东路1号"},
    ], NIGHT)


def night_2(con) -> None:
    at = "2026-11-21 02:00:00"
    land(con, "crm_customers", [
        # KH4 takes another number: it leaves C4's customer (a split)
        {"customer_code": "KH4", "name": "赵强", "phone": "13500000099", "city": "成都"},
        # a second name on KH3's mobile in one source makes it a hub: KH3 and KH6 stay apart
        {"customer_code": "KH6", "name": "孙丽", "phone": "13600000000", "city": "上海"},
    ], at)
    land(con, "erp_customers", [
        {"customer_code": "C5", "name": "张伟", "phone": "13800000001"},  # joins KH1 and C1
        # KH2's phone and C2's email on one record: two customers become one (a merge)
        {"customer_code": "C9", "name": "李娜", "phone": "13800000002",
         "email": "lina@example.com"},
        # no key in common with KH7: only Splink joins them
        {"customer_code": "C7", "name": "欧阳娜娜",
         "address": "广东省广州市天河区中山大道100号华景新城5栋2单元1203"},
    ], at)
    # KF010 is gone from the CRM export (restaged without it): a removed record.
    con.execute("DELETE FROM raw.crm_customers WHERE customer_code = 'KF010'")
    build_staging(con, "crm_customers", full=True)


def night_3(con) -> None:
    # KF010 is back, under another number: the id it had stays with E010, which kept it.
    land(con, "crm_customers", [
        {"customer_code": "KF010", "name": "徐伟华", "phone": "13700000999"},
        # KH9's name was a typo: C8 now fits KH8 alone
        {"customer_code": "KH9", "name": "钱多多", "gender": "女", "city": "上海",
         "phone": "13933334444", "birth_date": "1985-07-08"},
    ], "2026-11-22 02:00:00")
    # C7 turns out to be someone else: Splink no longer joins it to KH7.
    land(con, "erp_customers", [{"customer_code": "C7", "name": "欧阳修",
                                 "address": "北京市海淀区学院路1号"}], "2026-11-22 02:00:00")


def warehouse():
    con = duckdb.connect()
    register_normalizers(con)
    ensure_raw_schema(con)
    ensure_staging_schema(con)
    ensure_identity_schema(con)
    return con


def run(con, night: int, relink_everything: bool) -> dict:
    for entity in ENTITIES:
        build_staging(con, entity)
    if relink_everything:  # without last run's state, identity relinks every record
        con.execute("DELETE FROM identity.link_state")
    return resolve_identities(con, IdentityConfig(), f"r{night}", dt.datetime(2026, 11, 20 + night))


def rows(con, table: str) -> list[tuple]:
    return con.execute(f"SELECT * FROM identity.{table} ORDER BY ALL").fetchall()


@pytest.fixture
def two_warehouses():
    pair = warehouse(), warehouse()
    yield pair
    for con in pair:
        con.close()


def test_a_night_relinks_only_what_its_changes_reach_and_agrees_with_relinking_all(
        two_warehouses):
    incremental, relinked = two_warehouses
    for con in two_warehouses:
        night_1(con)
        first = run(con, 1, relink_everything=False)
    assert first["records_relinked"] == first["source_records"]
    ids = {1: customer_ids(incremental)}
    for night, change in ((2, night_2), (3, night_3)):
        for con in two_warehouses:
            change(con)
        stats = run(incremental, night, relink_everything=False)
        everything = run(relinked, night, relink_everything=True)
        assert everything["records_relinked"] == everything["source_records"]
        # The region is a few customers, not the 300-odd records.
        assert 0 < stats["records_relinked"] < 40, stats
        for table in TABLES:
            assert rows(incremental, table) == rows(relinked, table), (night, table)
        assert {k: v for k, v in stats.items() if k != "records_relinked"} == {
            k: v for k, v in everything.items() if k != "records_relinked"}
        ids[night] = customer_ids(incremental)

    assert ids[2]["crm:KH1"] == ids[2]["erp:C1"] == ids[2]["erp:C5"]
    assert ids[2]["crm:KH2"] == ids[2]["erp:C2"] == ids[2]["erp:C9"]
    assert ids[2]["crm:KH4"] != ids[2]["erp:C4"]
    assert ids[2]["crm:KH3"] != ids[2]["crm:KH6"]
    assert ids[2]["crm:KH7"] == ids[2]["erp:C7"]
    assert ids[3]["crm:KH7"] == ids[1]["crm:KH7"] != ids[3]["erp:C7"]
    assert len({ids[2]["crm:KH8"], ids[2]["crm:KH9"], ids[2]["erp:C8"]}) == 3
    assert ids[3]["crm:KH8"] == ids[3]["erp:C8"] != ids[3]["crm:KH9"]
    assert ids[3]["crm:KF010"] != ids[3]["erp:E010"] == ids[1]["erp:E010"]
    changes = {r[0] for r in incremental.execute("SELECT change FROM identity.id_changes").fetchall()}
    assert changes == {"merge", "split"}
    assert rows(incremental, "hub_keys")[0][:2] == ("phone", "+8613600000000")


def customer_ids(con) -> dict[str, str]:
    return dict(con.execute("SELECT source || ':' || source_key, customer_id "
                            "FROM identity.customer_map").fetchall())
