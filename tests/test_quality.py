"""Great Expectations inside DuckDB (pins the GX / duckdb-engine / DuckDB / SQLAlchemy path),
the blocking profile check, and the profile history."""

import datetime as dt

import duckdb
import great_expectations.expectations as gxe
import pytest
from handmade import write_config

from pipelines.definitions import build_definitions
from transforms.history import record_history
from transforms.quality import Suite, validate
from transforms.quality_suites import E164


def test_gx_runs_its_expectations_inside_duckdb_and_names_the_failing_values(tmp_path):
    # GX 1.24 over duckdb-engine 0.17 + DuckDB 2.0 failed every expectation (list index out of
    # range) before transforms.gx_duckdb: this pins the working path with exact outcomes.
    db = tmp_path / "w.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE SCHEMA s")
        con.execute("""CREATE TABLE s.t AS SELECT * FROM (VALUES
            ('C1', '+8613800138000', 10.0, 'a'), ('C2', '13800138000', -5.0, 'b'),
            ('C2', NULL, 20.0, 'zz'), ('C4', '+8613900139000', 30.0, 'a'))
            v(customer_id, phone, amount, kind)""")
        outcomes = validate(con, [Suite("s.t", "s.t", [
            gxe.ExpectTableRowCountToBeBetween(min_value=1, max_value=3),
            gxe.ExpectColumnValuesToBeUnique(column="customer_id"),
            gxe.ExpectColumnValuesToMatchRegex(column="phone", regex=E164),
            gxe.ExpectColumnValuesToNotBeNull(column="phone", mostly=0.7),
            gxe.ExpectColumnValuesToBeBetween(column="amount", min_value=0),
            gxe.ExpectColumnValuesToBeInSet(column="kind", value_set=["a", "b"]),
        ])])
    got = [(o.expectation, o.success, o.observed, o.unexpected_count, o.unexpected_sample, o.error)
           for o in outcomes]
    assert got == [
        ("expect_table_row_count_to_be_between", False, 4, None, [], None),
        ("expect_column_values_to_be_unique", False, None, 2, ["C2", "C2"], None),
        ("expect_column_values_to_match_regex", False, None, 1, ["13800138000"], None),
        ("expect_column_values_to_not_be_null", True, None, 1, [None], None),
        ("expect_column_values_to_be_between", False, None, 1, ["-5.0"], None),  # a DECIMAL
        ("expect_column_values_to_be_in_set", False, None, 1, ["zz"], None),
    ]
    # GX's connections were the caller's: closing it released the file, so this process can
    # open it again with another configuration.
    duckdb.connect(str(db), config={"autoinstall_known_extensions": False}).close()


def test_one_query_for_many_suites_reports_each_and_names_its_failing_files(tmp_path):
    db = tmp_path / "w.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("""CREATE TABLE f AS SELECT * FROM (VALUES ('a', 'x.csv', 0.5),
            ('a', 'y.csv', 0.0), ('b', 'z.csv', 0.0)) v(entity, source_file, share)""")
        outcomes = validate(con, [Suite(
            "files", "SELECT entity, source_file, share FROM f",
            [gxe.ExpectColumnValuesToBeBetween(column="share", max_value=0.1)],
            index_column="source_file", split_column="entity",
            names={"a": "raw.a", "b": "raw.b", "c": "raw.c"})])
    assert [(o.suite, o.success, o.unexpected_count, o.unexpected_sample) for o in outcomes] == [
        ("raw.a", False, 1, [{"source_file": "x.csv", "share": "0.5"}]),
        ("raw.b", True, 0, []), ("raw.c", True, 0, [])]


def test_a_failing_profile_check_stops_publishing(tmp_path, monkeypatch):
    from handmade import write_exports

    monkeypatch.setenv("PROFILES_LANDING", str(write_exports(tmp_path / "landing")))
    monkeypatch.setenv("PROFILES_WAREHOUSE", str(tmp_path / "warehouse" / "profiles.duckdb"))
    monkeypatch.setenv("PROFILES_EXPORTS", str(tmp_path / "exports"))

    def strict(data):  # every tag covers more than 0% of customers: the check must fail
        data["quality"] = {"max_tag_coverage": 0.0}

    config = write_config(tmp_path / "config", strict)
    result = build_definitions(str(config)).resolve_job_def("nightly_rebuild").execute_in_process(
        raise_on_error=False, run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}})
    assert not result.success
    [check] = [c for c in result.get_asset_check_evaluations()
               if c.check_name == "profile_expectations"]
    assert not check.passed and "coverage" in check.metadata["failures"].value
    materialised = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "customer_profile" in materialised and "published_profile" not in materialised
    assert not (tmp_path / "serving").exists() and not (tmp_path / "exports").exists()


@pytest.fixture
def day_state():
    con = duckdb.connect()
    con.execute("CREATE SCHEMA profile")

    def state(rows):
        """rows: (customer_id, segment_name, [(tag_id, level2, level3)])"""
        con.execute("""CREATE OR REPLACE TABLE profile.customer_profile AS SELECT * FROM (VALUES
            ('X', 1, 'x', ['t'], ['t'], 'r', 1.0, 1, 1, 0.1, 1.0)) v(customer_id, segment_id,
            segment_name, tags, tag_ids, rfm_segment, spend_365d, orders_365d, recency_days,
            churn_probability, predicted_clv_365d) LIMIT 0""")
        con.execute("CREATE OR REPLACE TABLE profile.customer_tags (customer_id VARCHAR, "
                    "tag_id VARCHAR, level2 VARCHAR, level3 VARCHAR)")
        for cid, segment, tags in rows:
            con.execute("INSERT INTO profile.customer_profile VALUES (?, 1, ?, ?, ?, 'r', 1, 1, 1, "
                        "0.1, 1)", [cid, segment, [t[2] for t in tags], [t[0] for t in tags]])
            for tag_id, group, name in tags:
                con.execute("INSERT INTO profile.customer_tags VALUES (?, ?, ?, ?)",
                            [cid, tag_id, group, name])

    yield con, state
    con.close()


ACTIVE = ("lifecycle_active", "活跃度", "活跃客户")
DORMANT = ("lifecycle_dormant", "活跃度", "沉睡客户")
VIP = ("value_vip", "价值分层", "VIP客户")


def test_history_records_who_changed_and_how_per_day(day_state):
    con, state = day_state
    d1, d2 = dt.date(2026, 11, 16), dt.date(2026, 11, 17)
    state([("A", "高价值", [ACTIVE, VIP]), ("B", "低价值", [ACTIVE]), ("C", "低价值", [VIP])])
    assert record_history(con, d1, "价值分层", "活跃度", 35)["compared_with"] is None
    state([("A", "高价值", [DORMANT, VIP]), ("B", "中价值", [ACTIVE]), ("D", "低价值", [ACTIVE])])
    stats = record_history(con, d2, "价值分层", "活跃度", 35)
    assert stats["compared_with"] == d1
    changes = con.execute("""SELECT customer_id, change, attribute, old_value, new_value
        FROM history.profile_changes WHERE snapshot_date = ? ORDER BY ALL""", [d2]).fetchall()
    assert changes == [
        ("A", "lifecycle stage changed", "lifecycle stage", "活跃客户", "沉睡客户"),
        ("A", "tag gained", "lifecycle_dormant", None, "沉睡客户"),
        ("A", "tag lost", "lifecycle_active", "活跃客户", None),
        ("B", "segment changed", "segment", "低价值", "中价值"),
        ("C", "customer gone", None, None, None),
        ("C", "tag lost", "value_vip", "VIP客户", None),
        ("D", "new customer", None, None, None),
        ("D", "tag gained", "lifecycle_active", None, "活跃客户"),
    ]
    # "Who became 沉睡客户 this week" in one query; a rerun of the day replaces it.
    query = """SELECT customer_id FROM history.profile_changes WHERE change = 'tag gained'
               AND new_value = '沉睡客户' AND snapshot_date > DATE '2026-11-17' - 7"""
    assert con.execute(query).fetchall() == [("A",)]
    record_history(con, d2, "价值分层", "活跃度", 35)
    assert con.execute(query).fetchall() == [("A",)]
    assert con.execute("SELECT count(*), count(DISTINCT snapshot_date) FROM "
                       "history.profile_snapshots").fetchall() == [(6, 2)]
    record_history(con, d2 + dt.timedelta(days=40), "价值分层", "活跃度", 35)  # retention
    assert con.execute("SELECT count(DISTINCT snapshot_date) FROM history.profile_snapshots"
                       ).fetchall() == [(1,)]
