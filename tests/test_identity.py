"""Identity resolution on hand-made records: one rule or guard per test, ids across runs."""

import datetime as dt

import pytest
from handmade import land

from pipelines.config import IdentityConfig
from transforms import identity
from transforms.identity import build_source_records, resolve_identities
from transforms.staging import build_staging


def stage(con) -> None:
    for entity in ("crm_customers", "erp_customers", "wechat_followers"):
        build_staging(con, entity)


def resolve(con, run: str) -> dict[str, str]:
    stage(con)
    resolve_identities(con, IdentityConfig(), run, dt.datetime(2026, 11, 21))
    return dict(con.execute("SELECT source || ':' || source_key, customer_id "
                            "FROM identity.customer_map").fetchall())


def test_rules_link_across_sources(wh):
    land(wh, "crm_customers", [
        {"customer_code": "KH1", "name": "张伟", "phone": "13800138000"},
        {"customer_code": "KH2", "name": "张 伟", "phone": "+86 138 0013 8000"},  # double entry
        {"customer_code": "KH3", "name": "李娜", "email": "LINA@163.COM "},
    ], "2026-11-20 02:00:00")
    land(wh, "erp_customers", [
        {"customer_code": "C1", "name": "Zhang Wei", "crm_ref": "KH1"},
        {"customer_code": "C2", "name": "李娜", "email": "lina@163.com"},
    ], "2026-11-20 02:00:00")
    land(wh, "wechat_followers", [
        {"openid": "o1", "phone": "138-0013-8000"},  # bound phone
        {"openid": "o2", "unionid": "u9"}, {"openid": "o3", "unionid": "u9"},  # two apps
    ], "2026-11-20 02:00:00")
    ids = resolve(wh, "r1")
    assert ids["crm:KH1"] == ids["crm:KH2"] == ids["erp:C1"] == ids["wechat:o1"]
    assert ids["crm:KH3"] == ids["erp:C2"] != ids["crm:KH1"]
    assert ids["wechat:o2"] == ids["wechat:o3"]
    assert len(set(ids.values())) == 3
    rules = {r[0] for r in wh.execute("SELECT rule FROM identity.record_links").fetchall()}
    assert rules == {"phone", "email", "unionid", "crm_code"}


def test_switchboard_phone_does_not_merge_unrelated_people(wh):
    land(wh, "crm_customers", [
        {"customer_code": f"KH{i}", "name": name, "phone": "400-820-8888"}
        for i, name in enumerate(["王芳", "赵强", "孙丽"])
    ], "2026-11-20 02:00:00")
    ids = resolve(wh, "r1")
    assert len(set(ids.values())) == 3
    assert wh.execute("SELECT key_value, records, reason FROM identity.hub_keys").fetchall() == [
        ("+864008208888", 3, "too many distinct names")]


def test_an_office_landline_under_two_names_does_not_merge_them(wh):
    land(wh, "crm_customers", [
        {"customer_code": "KH1", "name": "丁军斌", "phone": "020-6612 6666"}], "2026-11-20 02:00:00")
    land(wh, "erp_customers", [
        {"customer_code": "C1", "name": "Cai Hui", "phone": "(020)66126666"},
        {"customer_code": "C2", "name": "Ding Junbin", "phone": "13700001111"},
    ], "2026-11-20 02:00:00")
    ids = resolve(wh, "r1")
    assert ids["crm:KH1"] != ids["erp:C1"]
    assert wh.execute("SELECT key_value, reason FROM identity.hub_keys").fetchall() == [
        ("+862066126666", "a landline under different names")]


def test_two_names_on_one_number_in_one_source_do_not_merge(wh):
    land(wh, "crm_customers", [
        {"customer_code": "KH1", "name": "王芳", "phone": "13900001111"},
        {"customer_code": "KH2", "name": "赵强", "phone": "13900001111"},  # a rep's own number
    ], "2026-11-20 02:00:00")
    ids = resolve(wh, "r1")
    assert ids["crm:KH1"] != ids["crm:KH2"]


def test_ids_are_stable_merges_keep_the_older_id_and_splits_are_recorded(wh):
    land(wh, "crm_customers", [
        {"customer_code": "KH1", "name": "张伟", "phone": "13800138000"},
        {"customer_code": "KH2", "name": "李娜", "phone": "13900139000"},
    ], "2026-11-20 02:00:00")
    first = resolve(wh, "r1")
    assert first == {"crm:KH1": "C000000001", "crm:KH2": "C000000002"}

    # Night 2: a new CRM entry of 李娜 joins her id; an ERP record links 张伟 and 李娜's ids.
    land(wh, "crm_customers", [
        {"customer_code": "KH3", "name": "李娜", "phone": "139-0013-9000"},
        {"customer_code": "KH4", "name": "周杰", "phone": "13600136000"},
        {"customer_code": "KH5", "name": "张伟", "phone": "+8613800138000"},
    ], "2026-11-21 02:00:00")
    land(wh, "erp_customers", [
        {"customer_code": "C9", "name": "Zhang Wei", "phone": "13800138000", "crm_ref": "KH2"},
    ], "2026-11-21 02:00:00")
    second = resolve(wh, "r2")
    assert second["crm:KH1"] == second["crm:KH2"] == second["crm:KH3"] == second["crm:KH5"] \
        == second["erp:C9"] == "C000000001"
    assert second["crm:KH4"] == "C000000003"
    assert wh.execute("SELECT change, from_id, to_id, run_id FROM identity.id_changes").fetchall() == [
        ("merge", "C000000002", "C000000001", "r2")]
    assert wh.execute("SELECT old_id, current_id, status FROM identity.id_lookup "
                      "ORDER BY old_id").fetchall() == [
        ("C000000001", "C000000001", "current"), ("C000000002", "C000000001", "merged"),
        ("C000000003", "C000000003", "current")]

    # Night 3: the ERP record is corrected (no CRM reference): 李娜's records split off again.
    land(wh, "erp_customers", [
        {"customer_code": "C9", "name": "Zhang Wei", "phone": "13800138000"},
    ], "2026-11-22 02:00:00")
    third = resolve(wh, "r3")
    # The larger part (KH1, KH5, C9) keeps the id; the other part gets a new one.
    assert third["crm:KH1"] == third["crm:KH5"] == third["erp:C9"] == "C000000001"
    assert third["crm:KH2"] == third["crm:KH3"] == "C000000004"
    assert third["crm:KH4"] == "C000000003"
    assert wh.execute("""SELECT change, from_id, to_id, records FROM identity.id_changes
                         WHERE run_id = 'r3'""").fetchall() == [
        ("split", "C000000001", "C000000004", 2)]


def test_an_old_id_is_followed_through_a_chain_of_merges(wh):
    from transforms.identity import _create_id_lookup, ensure_identity_schema

    ensure_identity_schema(wh)
    wh.execute("""CREATE TABLE identity.customer_map AS
                  SELECT * FROM (VALUES (0, 'crm', 'KH1', 'C1'), (1, 'crm', 'KH2', 'C4'))
                  t(record_id, source, source_key, customer_id)""")
    wh.execute("""INSERT INTO identity.id_changes VALUES
                  ('merge', 'C3', 'C2', NULL, 'r2', NULL, ''),
                  ('merge', 'C2', 'C1', NULL, 'r3', NULL, ''),
                  ('split', 'C1', 'C4', 1, 'r4', NULL, '')""")
    _create_id_lookup(wh)
    assert wh.execute("SELECT old_id, current_id, merges FROM identity.id_lookup "
                      "ORDER BY old_id").fetchall() == [
        ("C1", "C1", 0), ("C2", "C1", 1), ("C3", "C1", 2), ("C4", "C4", 0)]


@pytest.mark.parametrize("rewrite_share", [0.3, 0.0])  # delete + insert; one rewrite
def test_source_records_derive_only_new_and_changed_records_and_keep_their_ids(
        wh, monkeypatch, rewrite_share):
    monkeypatch.setattr(identity, "_REWRITE_SHARE", rewrite_share)
    names = ["张伟", "李娜", "王芳", "赵强", "孙丽", "周杰", "吴敏", "郑洁"]
    land(wh, "crm_customers", [
        {"customer_code": f"KH{i}", "name": name, "phone": f"1380013800{i}",
         "address": f"天河区中山大道{i}号"} for i, name in enumerate(names)], "2026-11-20 02:00:00")
    stage(wh)
    identity.ensure_identity_schema(wh)
    assert build_source_records(wh) == {
        "source_records": 8, "source_records_read": 8, "source_records_derived": 8,
        "source_records_read_since_last_run": 0}
    before = record_ids(wh)
    # Night 2: 李娜 moves, 陈静 arrives, 王芳's row comes again unchanged; only the keys
    # loaded tonight are read.
    land(wh, "crm_customers", [
        {"customer_code": "KH1", "name": "李娜", "phone": "13800138001", "address": "海淀区学院路1号"},
        {"customer_code": "KH8", "name": "陈静", "phone": "13800138008"},
        {"customer_code": "KH2", "name": "王芳", "phone": "13800138002",
         "address": "天河区中山大道2号"}], "2026-11-21 02:00:00")
    build_staging(wh, "crm_customers")
    assert build_source_records(wh) == {
        "source_records": 9, "source_records_read": 3, "source_records_derived": 2,
        "source_records_read_since_last_run": 1}
    assert record_ids(wh) == {**before, "KH8": 8}
    assert wh.execute("SELECT address_key FROM identity.source_records "
                      "WHERE source_key = 'KH1'").fetchall() == [("海淀区学院路1号",)]
    # Night 3: 王芳 is forgotten (her staging rows deleted): every current row is read again
    # (and, nothing being derived but a record gone, identity must not reuse its links).
    wh.execute("DELETE FROM staging.crm_customers WHERE customer_code = 'KH2'")
    assert build_source_records(wh) == {
        "source_records": 8, "source_records_read": 8, "source_records_derived": 0,
        "source_records_read_since_last_run": 0}
    after = record_ids(wh)
    assert after == {k: v for k, v in {**before, "KH8": 8}.items() if k != "KH2"}
    incremental = wh.execute("SELECT * FROM identity.source_records ORDER BY ALL").fetchall()
    assert build_source_records(wh, full=True)["source_records_derived"] == 8
    assert wh.execute("SELECT * FROM identity.source_records ORDER BY ALL").fetchall() == incremental
    assert build_source_records(wh)["source_records_read"] == 0  # nothing loaded since
    # New key derivations (KEYS_VERSION bumped): every record is derived again, ids kept.
    monkeypatch.setattr(identity, "KEYS_VERSION", "2")
    assert build_source_records(wh)["source_records_derived"] == 8
    assert record_ids(wh) == after


def record_ids(con) -> dict[str, int]:
    return dict(con.execute("SELECT source_key, record_id FROM identity.source_records").fetchall())


def test_a_night_without_changed_records_reuses_the_links_unless_settings_changed(wh):
    land(wh, "crm_customers", [
        {"customer_code": "KH1", "name": "张伟", "phone": "13800138000"},
        {"customer_code": "KH2", "name": "张伟", "phone": "13800138000"},
        {"customer_code": "KH3", "name": "李娜", "phone": "13900139000"},
    ], "2026-11-20 02:00:00")
    stage(wh)
    first = resolve_identities(wh, IdentityConfig(), "r1", dt.datetime(2026, 11, 21))
    assert first["links_reused"] == 0 and first["strong_key_links"] == 1
    links = wh.execute("SELECT * FROM identity.record_links ORDER BY ALL").fetchall()

    # Night 2: the same full export again (same content, loaded later): nothing to link anew.
    land(wh, "crm_customers", [
        {"customer_code": "KH1", "name": "张伟", "phone": "13800138000"},
    ], "2026-11-21 02:00:00")
    stage(wh)
    wh.execute("DELETE FROM identity.record_links")  # a reused night would not notice
    second = resolve_identities(wh, IdentityConfig(), "r2", dt.datetime(2026, 11, 22))
    assert second["links_reused"] == 1 and second["source_records_derived"] == 0
    assert second["records_relinked"] == 0
    assert second["strong_key_links"] == 1 and second["clusters"] == first["clusters"]
    assert wh.execute("SELECT count(*) FROM identity.record_links").fetchone()[0] == 0

    # Other settings: linked again, and the links come back.
    third = resolve_identities(wh, IdentityConfig(max_cluster_records=5), "r3",
                               dt.datetime(2026, 11, 22))
    assert third["links_reused"] == 0
    assert wh.execute("SELECT * FROM identity.record_links ORDER BY ALL").fetchall() == links

    # A run that stopped half-way (other settings again) leaves no state behind: the next
    # run, with the third night's settings, links again instead of trusting the third's.
    wh.execute("DELETE FROM identity.record_links")

    def stop(*args, **kwargs):
        raise RuntimeError("killed")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(identity, "build_links", stop)
        with pytest.raises(RuntimeError):
            resolve_identities(wh, IdentityConfig(max_cluster_records=6), "r4",
                               dt.datetime(2026, 11, 23))
    fifth = resolve_identities(wh, IdentityConfig(max_cluster_records=5), "r5",
                               dt.datetime(2026, 11, 23))
    assert fifth["links_reused"] == 0
    assert wh.execute("SELECT * FROM identity.record_links ORDER BY ALL").fetchall() == links
