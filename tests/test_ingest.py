"""Reading exports into raw and typing them in staging: encodings, layouts, rejects, accounting."""

import datetime as dt
import json
from pathlib import Path

import fastexcel
import pytest

from transforms.raw import SchemaDriftError, ensure_raw_schema, file_hashes, load_file
from transforms.readers import (
    ExportFileError,
    ReadOptions,
    detect_encoding,
    file_sha256,
    read_header,
)
from transforms.schema import ENTITIES
from transforms.sql import optimizer_off
from transforms.staging import (
    build_staging,
    build_value_maps,
    ensure_staging_schema,
    staged_rows_sql,
)
from transforms.xlsx_header import xlsx_header

CRM_MAP = {"customer_code": "客户编号", "name": "客户名称", "phone": "手机", "email": "邮箱",
           "gender": "性别", "birth_date": "出生日期", "province": "省份", "city": "城市",
           "address": "地址", "industry": "行业", "lead_source": "客户来源", "stage": "客户阶段",
           "owner": "负责人", "created_at": "创建时间"}
NOW = dt.datetime(2026, 11, 21, 2, 0)


@pytest.fixture
def wh(con):
    ensure_raw_schema(con)
    ensure_staging_schema(con)
    return con


def test_encodings_are_detected(tmp_path):
    text = "客户编号,客户名称\nKH1,张伟\n"
    for name, encoding, expected in [("gb.csv", "gb18030", "gb18030"),
                                     ("bom.csv", "utf-8-sig", "utf-8-sig"),
                                     ("utf8.csv", "utf-8", "utf-8")]:
        (tmp_path / name).write_bytes(text.encode(encoding))
        assert detect_encoding(tmp_path / name) == expected
        assert read_header(tmp_path / name, ReadOptions("csv")) == ["客户编号", "客户名称"]


def test_gb18030_csv_loads_with_lineage_and_malformed_row_is_rejected(wh, workdir):
    path = workdir / "landing" / "crm" / "customers.csv"
    load = load_file(wh, "crm_customers", path, ReadOptions("csv"), CRM_MAP, NOW, "run1")
    assert (load.rows_read, load.rows_loaded, load.rows_rejected) == (7, 6, 1)
    rows = wh.execute("""SELECT customer_code, name, _row_number, _source_file
                         FROM raw.crm_customers ORDER BY _row_number""").fetchall()
    assert [r[:3] for r in rows] == [("KH001", "张伟", 2), ("KH002", "李娜", 3), ("KH003", "王芳", 4),
                                     ("KH004", "赵强", 5), ("KH005", "孙丽", 6), ("KH009", "张 伟", 8)]
    assert rows[0][3] == str(path)
    reject = wh.execute("SELECT row_number, column_name, reason FROM raw.rejects").fetchall()
    assert reject == [(7, "extra field 16 after 营销授权",
                       "TOO MANY COLUMNS: Expected Number of Columns: 15 Found: 16")]


def test_loading_the_same_file_twice_is_a_no_op(wh, workdir):
    path = workdir / "landing" / "crm" / "customers.csv"
    load_file(wh, "crm_customers", path, ReadOptions("csv"), CRM_MAP, NOW)
    again = load_file(wh, "crm_customers", path, ReadOptions("csv"), CRM_MAP, NOW)
    assert again.skipped
    assert wh.execute("SELECT count(*) FROM raw.crm_customers").fetchall() == [(6,)]


def test_a_file_is_hashed_again_only_when_its_size_or_time_changes(wh, tmp_path):
    import os

    path, old = tmp_path / "orders.csv", 1_700_000_000_000_000_000
    path.write_text("a\n1\n")
    os.utime(path, ns=(old, old))
    first = file_hashes(wh, [path])[path]
    assert first == file_sha256(path)
    # Same size and time: the recorded hash is trusted (so the file is not read again) ...
    path.write_text("a\n2\n")
    os.utime(path, ns=(old, old))
    assert file_hashes(wh, [path])[path] == first
    # ... unless asked to hash everything (a full rebuild).
    assert file_hashes(wh, [path], rehash=True)[path] == file_sha256(path) != first
    # A new version moves the time: hashed, and not recorded while it may still be written.
    path.write_text("a\n33\n")
    assert file_hashes(wh, [path])[path] == file_sha256(path)
    assert wh.execute("SELECT mtime_ns FROM raw.file_hashes").fetchall() == [(old,)]


def test_missing_column_is_schema_drift_naming_file_and_columns(wh, tmp_path):
    path = tmp_path / "customers.csv"
    path.write_text("客户编号,姓名\nKH1,张伟\n", encoding="utf-8")
    with pytest.raises(SchemaDriftError, match=r"customers.csv: missing column\(s\) \['客户名称'\]"):
        load_file(wh, "crm_customers", path, ReadOptions("csv"),
                  {"customer_code": "客户编号", "name": "客户名称"}, NOW)
    assert wh.execute("SELECT count(*) FROM raw.file_registry").fetchall() == [(0,)]


def test_xlsx_with_title_row_excel_serials_and_yuan_amounts(wh, workdir):
    mapping = {"order_no": "订单号", "line_no": "行号", "customer_code": "客户代码",
               "ordered_at": "下单时间", "sku": "商品编码", "product_name": "商品名称",
               "category": "品类", "quantity": "数量", "unit_price": "单价", "amount": "金额"}
    path = workdir / "landing" / "erp" / "orders_01.xlsx"
    load = load_file(wh, "erp_orders", path, ReadOptions("xlsx", header_row=2, sheet="销售订单"),
                     mapping, NOW)
    assert (load.rows_read, load.rows_rejected) == (6, 0)
    stats = build_staging(wh, "erp_orders", mapping)
    assert (stats.rows_in, stats.rows_staged, stats.rows_quarantined) == (6, 5, 1)
    first = wh.execute("""SELECT order_no, ordered_at, quantity, unit_price, amount, _row_number
                          FROM staging.erp_orders ORDER BY _row_number LIMIT 1""").fetchall()[0]
    assert first == ("SO001", dt.datetime(2025, 12, 9, 21, 0), 2, pytest.approx(199), 398, 3)
    refund = wh.execute("SELECT quantity, amount FROM staging.erp_orders WHERE order_no = 'SO005'"
                        ).fetchall()
    assert [(q, float(a)) for q, a in refund] == [(-1, -300.0)]
    # The corrupted date lands in quarantine naming the export column; the rest loads.
    assert wh.execute("""SELECT row_number, field, column_name, value, reason
                         FROM staging.quarantine""").fetchall() == [
        (5, "ordered_at", "下单时间", "2026-13-45", "cannot parse as a date/time")]


def test_staging_accounting_balances_per_file(wh, workdir):
    path = workdir / "landing" / "crm" / "customers.csv"
    load_file(wh, "crm_customers", path, ReadOptions("csv"), CRM_MAP, NOW)
    stats = build_staging(wh, "crm_customers", CRM_MAP)
    assert (stats.rows_staged, stats.rows_quarantined) == (6, 1)
    assert wh.execute("""SELECT rows_read, rows_staged, rows_quarantined, balanced
                         FROM staging.file_accounting""").fetchall() == [(7, 6, 1, True)]
    staged = dict(wh.execute("SELECT customer_code, phone FROM staging.crm_customers").fetchall())
    assert staged["KH001"] == staged["KH009"] == "+8613800138000"
    assert staged["KH003"] == "+861062345678"


def test_staging_hashes_the_value_maps_not_the_raw_rows(wh):
    """Every join of the staging query hashes a value map. DuckDB otherwise swaps sides where it
    estimates the raw rows fewer (the required-field filter), and at 4.8M WeChat events hashing
    the whole raw rows ran out of memory. Here every value is distinct, as order ids are."""
    wh.execute("""INSERT INTO raw.wechat_events (openid, event_type, event_at, order_id, amount,
                                                 _row_number)
        SELECT 'o' || i, 'order', CASE WHEN i % 500 = 0 THEN 'not a time'
                                       ELSE (TIMESTAMP '2026-01-01' + INTERVAL (i) MINUTE)::VARCHAR END,
               'SO' || i, (i % 997)::VARCHAR, i FROM range(20000) t(i)""")
    entity = ENTITIES["wechat_events"]
    rows = "SELECT *, rowid AS _raw_position FROM raw.wechat_events"
    sql = staged_rows_sql(entity, rows, build_value_maps(wh, entity, rows, {}))

    def hashed_sides() -> list[tuple[str, str]]:
        plan = json.loads(wh.execute(f"EXPLAIN (FORMAT json) {sql}").fetchall()[0][1])
        joins, todo = [], list(plan)
        while todo:
            node = todo.pop()
            if node["name"] == "HASH_JOIN":
                build = node["children"][1]
                joins.append((node["extra_info"]["Join Type"],
                              build.get("extra_info", {}).get("Table", build["name"])))
            todo.extend(node["children"])
        return joins

    with optimizer_off(wh, "build_side_probe_side"):
        joins = hashed_sides()
        assert wh.execute(f"SELECT count(*) FROM ({sql})").fetchall() == [(19960,)]
    assert len(joins) == len(entity.fields)
    assert all(kind == "LEFT" and "_value_map_" in table for kind, table in joins)
    assert wh.execute("SELECT current_setting('disabled_optimizers')").fetchall() == [("",)]


def test_staging_parses_only_new_files_and_matches_a_full_rebuild(wh, workdir, tmp_path):
    first = workdir / "landing" / "crm" / "customers.csv"
    load_file(wh, "crm_customers", first, ReadOptions("csv"), CRM_MAP, NOW)
    assert build_staging(wh, "crm_customers", CRM_MAP).full_rebuild
    second = tmp_path / "customers_new.csv"
    second.write_text("客户编号,客户名称,手机,邮箱,性别,出生日期,省份,城市,地址,行业,客户来源,"
                      "客户阶段,负责人,创建时间\nKH100,周杰,13900139000,,男,,,,,,,,,2026-11-22\n"
                      ",吴敏,,,女,,,,,,,,,\n", encoding="utf-8")
    load_file(wh, "crm_customers", second, ReadOptions("csv"), CRM_MAP, NOW + dt.timedelta(days=1))
    night = build_staging(wh, "crm_customers", CRM_MAP)
    assert (night.full_rebuild, night.rows_parsed) == (False, 2)
    assert (night.rows_staged, night.rows_quarantined) == (7, 2)  # one new row lacks its code

    def state():
        return [wh.execute(f"SELECT * FROM staging.{t} ORDER BY ALL").fetchall()
                for t in ("crm_customers", "quarantine", "value_issues", "file_accounting")]

    incremental = state()
    full = build_staging(wh, "crm_customers", CRM_MAP, full=True)
    assert (full.full_rebuild, full.rows_parsed) == (True, 8)
    assert state() == incremental
    # A changed mapping changes how rows parse: the next run restages everything by itself.
    assert build_staging(wh, "crm_customers", {**CRM_MAP, "owner": "销售"}).full_rebuild


def test_optional_field_that_cannot_parse_is_nulled_and_logged(wh, tmp_path):
    path = tmp_path / "customers.csv"
    path.write_text("客户编号,出生日期,邮箱\nKH1,1990-13-45,bad-email\nKH2,1990-01-02,a@b.cn\n",
                    encoding="utf-8")
    mapping = {"customer_code": "客户编号", "birth_date": "出生日期", "email": "邮箱"}
    load_file(wh, "crm_customers", path, ReadOptions("csv"), mapping, NOW)
    stats = build_staging(wh, "crm_customers", mapping)
    assert (stats.rows_staged, stats.rows_quarantined, stats.value_issues) == (2, 0, 2)
    assert wh.execute("""SELECT row_number, column_name, value, reason FROM staging.value_issues
                         ORDER BY column_name""").fetchall() == [
        (2, "出生日期", "1990-13-45", "cannot parse as a date"),
        (2, "邮箱", "bad-email", "not an email address")]


def test_jsonl_invalid_line_is_rejected_and_fen_amounts_become_yuan(wh, workdir):
    mapping = {"openid": "openid", "event_type": "event_type", "event_at": "event_time",
               "amount": "amount_fen", "category": "category"}
    path = Path(workdir / "landing" / "wechat" / "events.jsonl")
    load = load_file(wh, "wechat_events", path, ReadOptions("jsonl"), mapping, NOW)
    assert (load.rows_read, load.rows_loaded, load.rows_rejected) == (4, 3, 1)
    build_staging(wh, "wechat_events", mapping, units={"amount": "fen"})
    order = wh.execute("""SELECT amount, event_at FROM staging.wechat_events
                          WHERE event_type = 'mall_order'""").fetchall()
    assert [(float(a), t) for a, t in order] == [(159.0, dt.datetime(2025, 11, 1, 20, 26, 40))]
    assert wh.execute("SELECT row_number, value, reason FROM staging.quarantine").fetchall() == [
        (3, "{this is not json", "invalid JSON")]


def test_unreadable_file_is_named_and_leaves_the_registry_alone(wh, tmp_path):
    path = tmp_path / "orders_broken.xlsx"
    path.write_bytes(b"PK\x03\x04 not really a workbook")
    with pytest.raises(ExportFileError, match="orders_broken.xlsx: cannot open as XLSX"):
        load_file(wh, "erp_orders", path, ReadOptions("xlsx", header_row=2),
                  {"order_no": "订单号"}, NOW)
    assert wh.execute("SELECT count(*) FROM raw.file_registry").fetchall() == [(0,)]


def test_xlsx_header_is_read_without_parsing_the_sheet(workdir):
    orders = workdir / "landing" / "erp" / "orders_01.xlsx"
    opts = ReadOptions("xlsx", header_row=2)
    expected = [str(c) for c in fastexcel.read_excel(str(orders)).load_sheet(
        0, header_row=1, n_rows=0, dtypes="string").to_arrow().column_names]
    assert xlsx_header(orders, None, 2) == expected == read_header(orders, opts)
    assert xlsx_header(orders, "no such sheet", 2) is None  # read_header falls back to fastexcel
    assert xlsx_header(orders, None, 1) == ["销售订单明细"]  # the title row
