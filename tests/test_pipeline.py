"""The whole asset graph, materialised by Dagster on the hand-made exports (real DuckDB, real
Dagster run, real scikit-learn), then again with a new export file landed in between."""

import datetime as dt
from pathlib import Path

import duckdb
import polars as pl
import pytest
from handmade import write_exports

from pipelines.config import REPO_ROOT
from pipelines.definitions import build_definitions
from transforms.explain import explain, render
from transforms.predict import cutoffs_for
from transforms.tags import load_rules

NEW_CRM = "客户编号,客户名称,手机,邮箱,性别,出生日期,省份,城市,地址,行业,客户来源,客户阶段,负责人,创建时间,营销授权\n" \
          "KH010,周杰,13600136000,zj@qq.com,男,1992-02-02,浙江,杭州,,IT/互联网,官网,线索,李雷,2026-11-21,是\n" \
          "KH011,李娜,13900139000,,女,,北京,北京,,金融,展会,成交客户,韩梅,2026-11-21,否\n"


def run_build(full: bool = False):
    result = build_definitions().resolve_job_def("nightly_rebuild").execute_in_process(
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}},
                    "resources": {"warehouse": {"config": {"full_rebuild": full}}}})
    assert result.success
    return result


# What an incremental night and a full rebuild of the same exports must agree on.
SAME_EITHER_WAY = {
    "staging": "SELECT * EXCLUDE (_loaded_at) FROM staging.crm_customers ORDER BY ALL",
    "quarantine": "SELECT * FROM staging.quarantine ORDER BY ALL",
    "accounting": "SELECT * FROM staging.file_accounting ORDER BY ALL",
    "records": "SELECT * FROM identity.source_records ORDER BY ALL",
    "ids": "SELECT source, source_key, customer_id FROM identity.customer_map ORDER BY ALL",
    # pairs, not scores: a retrained model weighs evidence a little differently
    "links": "SELECT left_source, left_key, right_source, right_key FROM identity.match_links "
             "ORDER BY ALL",
    "golden": "SELECT * FROM core.customers ORDER BY ALL",
    "orders": "SELECT * EXCLUDE (_source_file, _row_number) FROM core.order_lines ORDER BY ALL",
    "tags": "SELECT customer_id, tag_id FROM profile.customer_tags ORDER BY ALL",
    "features": "SELECT * FROM features.customer_features ORDER BY customer_id",
    # last run's copies of the map, kept up to date by writing only the keys that moved
    "key maps": "SELECT 'core', * FROM core.customer_key_map UNION ALL "
                "SELECT 'facts', * FROM core.fact_key_map ORDER BY ALL",
}


def either_way(path: Path) -> dict[str, list]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {name: con.execute(sql).fetchall() for name, sql in SAME_EITHER_WAY.items()}
    finally:
        con.close()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PROFILES_LANDING", str(write_exports(root / "landing")))
        mp.setenv("PROFILES_WAREHOUSE", str(root / "warehouse" / "profiles.duckdb"))
        mp.setenv("PROFILES_EXPORTS", str(root / "exports"))
        first = run_build()
        con = duckdb.connect(str(root / "warehouse" / "profiles.duckdb"))
        snapshot1 = {
            "ids": dict(con.execute("SELECT source || ':' || source_key, customer_id "
                                    "FROM identity.customer_map").fetchall()),
            "counts": con.execute("""SELECT (SELECT count(*) FROM raw.crm_customers),
                (SELECT count(*) FROM staging.erp_orders), (SELECT count(*) FROM staging.quarantine),
                (SELECT count(*) FROM profile.customer_profile)""").fetchall()[0],
        }
        con.close()
        second = run_build()  # same exports: nothing new is loaded
        con = duckdb.connect(str(root / "warehouse" / "profiles.duckdb"))
        snapshot1["counts_again"] = con.execute("""SELECT (SELECT count(*) FROM raw.crm_customers),
            (SELECT count(*) FROM staging.erp_orders), (SELECT count(*) FROM staging.quarantine),
            (SELECT count(*) FROM profile.customer_profile)""").fetchall()[0]
        con.close()
        (root / "landing" / "crm" / "customers_20261121.csv").write_bytes(NEW_CRM.encode("gb18030"))
        (root / "landing" / "erp" / "orders_99.xlsx").write_bytes(b"PK\x03\x04 truncated upload")
        third = run_build()  # an incremental night: one new CRM file
        incremental = either_way(root / "warehouse" / "profiles.duckdb")
        run_build(full=True)  # the same exports restaged and relinked from scratch
        full = either_way(root / "warehouse" / "profiles.duckdb")
        yield {"root": root, "first": first, "second": second, "third": third,
               "incremental": incremental, "full": full, **snapshot1}


@pytest.fixture
def wh(built):
    con = duckdb.connect(str(built["root"] / "warehouse" / "profiles.duckdb"), read_only=True)
    yield con
    con.close()


def ids_of(wh):
    return dict(wh.execute("SELECT source || ':' || source_key, customer_id "
                           "FROM identity.customer_map").fetchall())


def test_every_asset_materialised_with_metadata(built):
    events = built["first"].get_asset_materialization_events()
    keys = {e.asset_key.to_user_string() for e in events}
    assert {"raw_crm_customers", "staging_erp_orders", "customer_identity", "customer_profile",
            "profile_history", "published_profile"} <= keys
    meta = {e.asset_key.to_user_string(): e.materialization.metadata for e in events}
    assert meta["raw_crm_customers"]["rows_read"].value == 7
    assert meta["raw_crm_customers"]["rows_rejected"].value == 1
    assert meta["staging_erp_orders"]["rows_quarantined"].value == 1
    assert meta["customer_profile"]["dagster/row_count"].value == 5
    checks = {(c.asset_key.to_user_string(), c.check_name): c
              for c in built["first"].get_asset_check_evaluations()}
    failed = sorted(k for k, c in checks.items() if not c.passed)
    # The hand-made exports are bad on purpose: the warnings name them, the profile passes.
    assert failed == [("raw_crm_customers", "raw_quality"), ("raw_wechat_events", "raw_quality"),
                      ("staging_crm_customers", "staging_quality"),
                      ("staging_erp_orders", "staging_quality"),
                      ("staging_wechat_events", "staging_quality")]
    assert checks[("customer_profile", "profile_expectations")].passed
    assert checks[("customer_profile", "one_row_per_customer")].passed
    failures = checks[("raw_crm_customers", "raw_quality")].metadata["failures"].value
    assert "rejected_share" in failures and "customers.csv" in failures and "0.14" in failures


def test_running_twice_loads_nothing_twice(built):
    assert built["counts"] == built["counts_again"] == (6, 5, 3, 5)


def test_an_incremental_night_equals_a_full_rebuild(built):
    staged = built["third"].asset_materializations_for_node("staging_crm_customers")[0].metadata
    assert staged["full_rebuild"].value is False
    assert staged["rows_parsed_this_run"].value == 2  # only the new file's rows
    identity = built["third"].asset_materializations_for_node("customer_identity")[0].metadata
    assert identity["splink_retrained"].value == 0
    # KH010 and KH011 are new: only they are derived; the second run (same files) derives none
    assert identity["source_records_derived"].value == 2
    second = built["second"].asset_materializations_for_node("customer_identity")[0].metadata
    assert second["source_records_derived"].value == 0
    assert built["incremental"]["ids"]
    for name in SAME_EITHER_WAY:
        assert built["incremental"][name] == built["full"][name], name
    ids = built["incremental"]["ids"]
    assert sorted(built["incremental"]["key maps"]) == sorted(
        [("core", *row) for row in ids] + [("facts", *row) for row in ids])


def test_row_accounting_per_file(wh):
    rows = wh.execute("SELECT source_file, rows_read, rows_staged, rows_quarantined, balanced "
                      "FROM staging.file_accounting").fetchall()
    assert len(rows) == 8  # 7 exports + the file landed before the third run
    assert all(r[4] for r in rows)
    assert sum(r[1] for r in rows) == sum(r[2] + r[3] for r in rows)


def test_unreadable_export_is_recorded_and_the_rest_loads(wh):
    errors = wh.execute("SELECT source_file, error FROM raw.file_errors").fetchall()
    assert len(errors) == 2  # the night it arrived and the full rebuild after it: retried
    assert all(f.endswith("orders_99.xlsx") and "cannot open as XLSX" in e for f, e in errors)
    assert wh.execute("SELECT count(*) FROM raw.crm_customers WHERE customer_code = 'KH010'"
                      ).fetchall() == [(1,)]


def test_identity_links_sources_and_ignores_the_switchboard(wh, built):
    ids = built["ids"]
    # 张伟: two CRM entries, the ERP customer (CRM reference) and the follower (bound phone).
    assert ids["crm:KH001"] == ids["crm:KH009"] == ids["erp:C001"] == ids["wechat:o1"]
    # 李娜: CRM + ERP by email, two openids by unionid (one of them has a bound phone).
    assert ids["crm:KH002"] == ids["erp:C002"] == ids["wechat:o2"] == ids["wechat:o3"]
    # Three unrelated customers behind one switchboard number stay three customers.
    assert len({ids["crm:KH003"], ids["crm:KH004"], ids["crm:KH005"]}) == 3
    assert wh.execute("SELECT key_value, reason FROM identity.hub_keys").fetchall() == [
        ("+861062345678", "too many distinct names")]


def test_ids_are_stable_when_new_records_arrive(wh, built):
    before, after = built["ids"], ids_of(wh)
    assert {k: after[k] for k in before} == before
    assert after["crm:KH011"] == before["crm:KH002"]  # joins 李娜 by phone
    assert after["crm:KH010"] not in before.values()  # a new person gets a new id


def test_profile_one_row_per_customer_with_tags_and_segment(wh):
    total, distinct, with_segment = wh.execute(
        "SELECT count(*), count(DISTINCT customer_id), count(segment_id) "
        "FROM profile.customer_profile").fetchall()[0]
    assert total == distinct == with_segment == 6
    zhang = wh.execute("""SELECT name, phone, email, sources, orders_lifetime, spend_lifetime,
                                 preferred_category, tags
                          FROM profile.customer_profile WHERE name = '张伟'""").fetchall()[0]
    assert zhang[:4] == ("张伟", "+8613800138000", "zw@qq.com", ["crm", "erp", "wechat"])
    assert (zhang[4], float(zhang[5]), zhang[6]) == (3, 398 + 1299 + 159, "美妆")
    assert "华南" in zhang[7]
    # Purchases 2025-11-01 20:26, 2025-12-09 21:00, 2026-10-05 20:38, all 美妆: gaps 38 and
    # 300 days (median 169), 46 days since the last one at the 2026-11-20 snapshot.
    # Opportunity SJ001 sat 36 days in 初步接洽 (2026-01-05) before 赢单 (2026-02-10).
    habits = wh.execute("""SELECT category_spend_shares, preferred_hour_band,
                                  round(overdue_ratio, 4), median_days_between_orders,
                                  avg_stage_dwell_days
                           FROM profile.customer_profile WHERE name = '张伟'""").fetchall()[0]
    assert habits == ({"美妆": 1.0}, "晚上", round(46 / 169, 4), 169.0, 36.0)
    # Five hand-made customers and a few weeks of orders: too little to learn churn or CLV.
    assert wh.execute("""SELECT count(churn_probability), count(predicted_clv_365d)
                         FROM profile.customer_profile""").fetchall() == [(0, 0)]
    assert wh.execute("SELECT count(*) FROM core.unmatched_facts WHERE source_key = 'C999'"
                      ).fetchall() == [(1,)]


def test_parquet_export_reads_back(built):
    path = built["root"] / "exports" / "profile" / "snapshot_date=2026-11-20"
    assert (path / "_SUCCESS").exists()
    frame = pl.read_parquet(path / "data.parquet")
    assert frame.height == 6 and frame["customer_key"].n_unique() == 6
    hive = duckdb.sql(f"""SELECT snapshot_date, count(*) FROM read_parquet(
        '{built['root']}/exports/profile/*/data.parquet', hive_partitioning = true) GROUP BY 1""")
    assert [(str(d), n) for d, n in hive.fetchall()] == [("2026-11-20", 6)]


def test_models_say_why_they_were_not_trained(built):
    [event] = [e for e in built["first"].get_asset_materialization_events()
               if e.asset_key.to_user_string() == "customer_predictions"]
    meta = event.materialization.metadata
    assert meta["churn/trained"].value is False
    assert meta["churn/detail"].value["reason"].startswith("too few labels: churned/stayed")


def test_cutoffs_keep_a_future_horizon_and_a_past():
    snapshot = dt.date(2026, 11, 20)
    assert cutoffs_for(snapshot, dt.date(2024, 1, 1), 90, 3, 90, 180) == [
        dt.date(2026, 8, 22), dt.date(2026, 5, 24), dt.date(2026, 2, 23)]
    assert cutoffs_for(snapshot, dt.date(2026, 1, 1), 90, 3, 90, 180) == [dt.date(2026, 8, 22)]
    assert cutoffs_for(snapshot, None, 90, 3, 90, 180) == []
    # CLV: training labels (365 days after each cutoff) end by the holdout cutoff.
    assert cutoffs_for(snapshot, dt.date(2023, 1, 1), 365, 3, 90, 180) == [
        dt.date(2025, 11, 20), dt.date(2024, 11, 20), dt.date(2024, 8, 22)]


def test_explain_shows_each_tag_with_its_rule_and_the_values_it_read(wh):
    rules = load_rules(REPO_ROOT / "tag_rules")
    zhang = wh.execute("SELECT customer_id FROM profile.customer_profile WHERE name = '张伟'"
                       ).fetchall()[0][0]
    e = explain(wh, zhang, rules)
    carried = {o.tag_id: o for o in e.carried}
    assert carried["region_south"].values == {"province": "广东省"}
    assert carried["region_south"].matched
    tagged = {r[0] for r in wh.execute("SELECT tag_id FROM profile.customer_tags "
                                       "WHERE customer_id = ?", [zhang]).fetchall()}
    assert set(carried) == tagged
    # The other regions of the exclusive group are shown as missed, with the same value.
    missed = {o.tag_id: o for o in e.missed}
    assert missed["region_east"].values == {"province": "广东省"} and not missed["region_east"].matched
    assert "region_south" in render(e) and e.summary["name"] == "张伟"
    assert explain(wh, "C999999999", rules).customer_id is None


def test_marts_answer_the_funnel_questions(wh):
    # SJ001 waited 36 days in 初步接洽 before 赢单; SJ002 has sat there since 2026-10-01 (50 days
    # before the 2026-11-20 snapshot); 赢单 is an outcome, not a wait.
    assert wh.execute("SELECT * FROM marts.funnel_stage_dwell").fetchall() == [
        ("初步接洽", 2, 1, 36.0, 36.0, False, 1, 50.0),
        ("赢单", 1, 0, None, None, True, None, None)]
    groups = dict(wh.execute("SELECT customer_group, customers FROM marts.signed_vs_potential"
                             ).fetchall())
    assert groups["签约客户"] == 2  # 李娜 (成交客户) and 张伟 (won SJ001)
    pairs = wh.execute("SELECT customers_with_both FROM marts.tag_cooccurrence").fetchall()
    assert pairs and all(n >= 1 for (n,) in pairs)


def test_every_profile_column_is_in_the_data_dictionary(wh):
    columns = [r[0] for r in wh.execute("DESCRIBE profile.customer_profile").fetchall()]
    described = dict(wh.execute("SELECT column_name, meaning FROM profile.data_dictionary "
                                "WHERE table_name = 'profile.customer_profile'").fetchall())
    assert set(columns) == set(described) and all(described.values())


def warehouse_copy(built, tmp_path) -> duckdb.DuckDBPyConnection:
    """A writable copy of the built warehouse, with the normalising macros registered."""
    import shutil

    from transforms.normalize import register_normalizers

    copy = tmp_path / "w.duckdb"
    shutil.copy(built["root"] / "warehouse" / "profiles.duckdb", copy)
    con = duckdb.connect(str(copy))
    register_normalizers(con)
    return con


def test_nightly_features_summarise_only_changed_customers_and_equal_a_full_build(built, tmp_path):
    from transforms.features import build_features
    from transforms.features_refresh import refresh_features

    con = warehouse_copy(built, tmp_path)
    snapshot = dt.date(2026, 11, 20)
    nothing = refresh_features(con, snapshot, max_changed_share=1.0)
    assert (nothing.full, nothing.summarised) == (False, 0)
    assert nothing.finish_seconds > 0  # the day counts and ranks are still finished for everyone

    def differences(day):
        build_features(con, day, "features.everyone")
        return con.execute("""SELECT count(*) FROM (
            (SELECT * FROM features.customer_features EXCEPT SELECT * FROM features.everyone)
            UNION ALL
            (SELECT * FROM features.everyone EXCEPT SELECT * FROM features.customer_features))
            """).fetchall()[0][0]

    buyer = con.execute("SELECT min(customer_id) FROM core.order_lines").fetchall()[0][0]
    con.execute("UPDATE core.order_lines SET amount = amount + 1 WHERE customer_id = ?", [buyer])
    for day in (snapshot, snapshot + dt.timedelta(days=1), snapshot + dt.timedelta(days=45)):
        refreshed = refresh_features(con, day, max_changed_share=1.0)
        assert not refreshed.full and refreshed.summarised > 0, day
        assert differences(day) == 0, day
        con.execute("UPDATE core.order_lines SET amount = amount + 1 WHERE customer_id = ?", [buyer])
    back = refresh_features(con, snapshot)
    assert back.full and back.reason.startswith("snapshot date went back")
    assert differences(snapshot) == 0
    con.close()


def test_features_for_a_training_sample_equal_everyones_on_that_sample(built, tmp_path):
    from transforms.features import build_features

    con = warehouse_copy(built, tmp_path)
    cutoff = dt.date(2026, 9, 1)
    build_features(con, cutoff, "features.everyone")
    con.execute("CREATE TABLE _two AS SELECT customer_id FROM core.customers ORDER BY 1 LIMIT 2")
    assert build_features(con, cutoff, "features.sampled", population="_two") == 2
    # Everything but the percentile scores (relative to the population they rank) agrees.
    relative = "r_score, f_score, m_score, engagement_score, influence_score, rfm_segment"
    diff = con.execute(f"""SELECT count(*) FROM (
        SELECT * EXCLUDE ({relative}) FROM features.sampled
        EXCEPT SELECT * EXCLUDE ({relative}) FROM features.everyone)""").fetchall()
    con.close()
    assert diff == [(0,)]


def test_ties_for_preferred_category_and_stage_go_to_the_first_name(built, tmp_path):
    """Equal spend in two categories, two stages entered at the same moment: the answer is the
    first by name, whatever order the rows are in (else a night and a full rebuild disagree)."""
    from transforms.features import build_features

    con = warehouse_copy(built, tmp_path)
    who = con.execute("SELECT min(customer_id) FROM core.customers").fetchall()[0][0]
    con.execute("DELETE FROM core.order_lines WHERE customer_id = ?", [who])
    con.execute("DELETE FROM core.opportunity_stages WHERE customer_id = ?", [who])
    for order_id, category in (("T2", "美妆"), ("T1", "图书")):  # 图书 < 美妆, inserted last
        con.execute("""INSERT INTO core.order_lines SELECT * REPLACE (
            ?::VARCHAR AS customer_id, ? AS order_id, 100 AS amount, ? AS category,
            false AS is_refund, TIMESTAMP '2026-10-01 10:00' AS ordered_at)
            FROM core.order_lines LIMIT 1""", [who, order_id, category])
    for stage in ("谈判", "报价"):  # 报价 < 谈判, inserted last
        con.execute("""INSERT INTO core.opportunity_stages SELECT * REPLACE (
            ?::VARCHAR AS customer_id, 'SJ9' AS opportunity_code, ? AS stage,
            TIMESTAMP '2026-10-02' AS entered_at) FROM core.opportunity_stages LIMIT 1""",
                    [who, stage])
    build_features(con, dt.date(2026, 11, 20), "features.everyone")
    assert con.execute("SELECT preferred_category, opportunity_stage FROM features.everyone "
                       "WHERE customer_id = ?", [who]).fetchall() == [("图书", "报价")]
    con.close()


def test_a_run_holds_one_warehouse_instance_and_releases_it_at_the_end(tmp_path, monkeypatch):
    from dagster import build_init_resource_context

    from pipelines.resources import Warehouse

    path = tmp_path / "warehouse" / "profiles.duckdb"
    monkeypatch.setenv("PROFILES_WAREHOUSE", str(path))
    warehouse = Warehouse()
    context = build_init_resource_context()
    warehouse.setup_for_execution(context)
    with warehouse.connect() as con:
        con.execute("CREATE TEMP TABLE scratch AS SELECT 1 AS a")
        con.execute("CREATE TABLE kept AS SELECT 1 AS a")
    # Between two assets the run keeps the file open (another opener is refused) ...
    with pytest.raises(duckdb.ConnectionException):
        duckdb.connect(str(path), read_only=True)
    with warehouse.connect() as con:
        # ... and the next asset gets a connection of its own: tables yes, temp tables no,
        # its own normalising macros.
        assert con.execute("SELECT a FROM kept").fetchall() == [(1,)]
        assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'scratch'"
                           ).fetchall() == [(0,)]
        assert con.execute("SELECT clean_code(' kh 01 ')").fetchall() == [("KH01",)]
    warehouse.teardown_after_execution(context)
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("SELECT a FROM kept").fetchall() == [(1,)]
