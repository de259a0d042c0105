"""Values that cannot be true are not published as facts (issue 25, item 4): future dates,
impossible ages, amounts and quantities beyond their bounds, duplicate keys within one file,
control characters in text. Real DuckDB, hand-made exports, exact rows out."""

import datetime as dt

import pytest
from handmade import write_config

from pipelines.config import ConfigError, ValueRulesConfig, load_config
from transforms.features import build_features
from transforms.raw import load_file
from transforms.readers import ReadOptions
from transforms.staging import ValueRules, build_staging, current_rows_sql

SNAP = dt.date(2026, 11, 20)
RULES = ValueRules(snapshot=SNAP)
NOW = dt.datetime(2026, 11, 20, 2, 0)
FUTURE = "in the future: later than 2026-11-21 (the snapshot date 2026-11-20 + 1 day)"
CRM = {"customer_code": "客户编号", "name": "客户名称", "birth_date": "出生日期",
       "created_at": "创建时间"}
ERP = {"order_no": "订单号", "line_no": "行号", "customer_code": "客户代码", "ordered_at": "下单时间",
       "quantity": "数量", "unit_price": "单价", "amount": "金额"}
ERP_HEADER = "订单号,行号,客户代码,下单时间,数量,单价,金额\n"


def stage(wh, path, entity, mapping, text, rules=RULES, loaded_at=NOW, full=False):
    path.write_text(text, encoding="utf-8")
    load_file(wh, entity, path, ReadOptions("csv"), mapping, loaded_at)
    return build_staging(wh, entity, mapping, values=rules, full=full)


def issues(wh):
    return wh.execute("""SELECT source_file, row_number, field, column_name, value, reason
                         FROM staging.value_issues ORDER BY source_file, row_number, field""").fetchall()


def quarantined(wh):
    return wh.execute("""SELECT source_file, row_number, field, column_name, value, reason
                         FROM staging.quarantine ORDER BY source_file, row_number, field""").fetchall()


def accounting(wh):
    return wh.execute("""SELECT rows_read, rows_staged, rows_quarantined, balanced
                         FROM staging.file_accounting ORDER BY source_file""").fetchall()


def test_created_at_in_2088_is_nulled_and_listed(wh, tmp_path):
    path = tmp_path / "customers.csv"
    stats = stage(wh, path, "crm_customers", CRM,
                  "客户编号,客户名称,出生日期,创建时间\n"
                  "KH1,张伟,,2088-03-01 10:00:00\n"
                  "KH2,李娜,,2026-11-21 23:59:00\n"  # tomorrow: within the 1-day tolerance
                  "KH3,王芳,,2026-11-22 00:00:00\n")
    assert (stats.rows_staged, stats.rows_quarantined, stats.value_issues) == (3, 0, 2)
    assert wh.execute("SELECT customer_code, created_at FROM staging.crm_customers "
                      "ORDER BY 1").fetchall() == [
        ("KH1", None), ("KH2", dt.datetime(2026, 11, 21, 23, 59)), ("KH3", None)]
    assert issues(wh) == [
        (str(path), 2, "created_at", "创建时间", "2088-03-01 10:00:00", FUTURE),
        (str(path), 4, "created_at", "创建时间", "2026-11-22 00:00:00", FUTURE)]
    assert quarantined(wh) == []
    assert accounting(wh) == [(3, 3, 0, True)]


def test_birth_date_implying_age_150_is_nulled_and_listed(wh, tmp_path):
    path = tmp_path / "customers.csv"
    stage(wh, path, "crm_customers", CRM,
          "客户编号,客户名称,出生日期,创建时间\n"
          "KH1,张伟,1876-05-01,\n"  # 150 on the snapshot date
          "KH2,李娜,1906-01-01,\n"  # 120: the oldest kept
          "KH3,王芳,1905-11-01,\n"  # 121
          "KH4,赵强,2026-11-20,\n"  # 0: born on the snapshot date
          "KH5,孙丽,2026-11-21,\n")  # tomorrow: not in the future (tolerance), but age -1
    assert wh.execute("SELECT customer_code, birth_date FROM staging.crm_customers "
                      "ORDER BY 1").fetchall() == [
        ("KH1", None), ("KH2", dt.date(1906, 1, 1)), ("KH3", None), ("KH4", SNAP), ("KH5", None)]
    age = "implies an age outside 0-120 years on 2026-11-20"
    assert issues(wh) == [(str(path), 2, "birth_date", "出生日期", "1876-05-01", age),
                          (str(path), 4, "birth_date", "出生日期", "1905-11-01", age),
                          (str(path), 6, "birth_date", "出生日期", "2026-11-21", age)]


def test_order_in_2099_amount_1e12_and_quantity_1e9_quarantine_their_rows(wh, tmp_path):
    path = tmp_path / "orders.csv"
    stats = stage(wh, path, "erp_orders", ERP, ERP_HEADER
                  + "SO1,1,C1,2026-11-19 10:00:00,2,¥399.20,¥798.40\n"
                  + "SO2,1,C1,2099-01-01 10:00:00,1,¥10.00,¥10.00\n"
                  + 'SO3,1,C1,2026-11-19 11:00:00,1,¥5.00,"¥1,000,000,000,000.00"\n'
                  + "SO4,1,C1,2026-11-19 12:00:00,1000000000,¥1.00,¥1.00\n"
                  + "SO5,1,C1,2026-11-19 13:00:00,1,¥20000000.00,¥5.00\n"  # optional price
                  + "SO6,1,C1,2026-11-19 14:00:00,-1000000,¥10.00,-¥10000000.00\n")  # bounds
    assert (stats.rows_staged, stats.rows_quarantined, stats.value_issues) == (3, 3, 1)
    f = str(path)
    assert quarantined(wh) == [
        (f, 3, "ordered_at", "下单时间", "2099-01-01 10:00:00", FUTURE),
        (f, 4, "amount", "金额", "¥1,000,000,000,000.00", "beyond ±10,000,000 yuan"),
        (f, 5, "quantity", "数量", "1000000000", "beyond ±1,000,000")]
    staged = wh.execute("""SELECT order_no, quantity, unit_price, amount FROM staging.erp_orders
                           ORDER BY 1""").fetchall()
    assert [(o, q, None if p is None else float(p), float(a)) for o, q, p, a in staged] == [
        ("SO1", 2, 399.2, 798.4), ("SO5", 1, None, 5.0), ("SO6", -1000000, 10.0, -10000000.0)]
    assert issues(wh) == [(f, 6, "unit_price", "单价", "¥20000000.00", "beyond ±10,000,000 yuan")]
    assert accounting(wh) == [(6, 3, 3, True)]


def test_fen_amounts_are_bounded_in_yuan(wh, tmp_path):
    path = tmp_path / "events.csv"
    mapping = {"openid": "openid", "event_type": "event_type", "event_at": "event_time",
               "amount": "amount_fen", "quantity": "quantity"}
    path.write_text("openid,event_type,event_time,amount_fen,quantity\n"
                    "o1,mall_order,2026-11-01 10:00:00,1000000000,1\n"  # ¥10,000,000.00: kept
                    "o1,mall_order,2026-11-01 11:00:00,1000000001,2000000\n", encoding="utf-8")
    load_file(wh, "wechat_events", path, ReadOptions("csv"), mapping, NOW)
    build_staging(wh, "wechat_events", mapping, units={"amount": "fen"}, values=RULES)
    assert [(None if a is None else float(a), q) for a, q in wh.execute(
        "SELECT amount, quantity FROM staging.wechat_events ORDER BY event_at").fetchall()] == [
        (10_000_000.0, 1), (None, None)]
    assert issues(wh) == [
        (str(path), 3, "amount", "amount_fen", "1000000001", "beyond ±10,000,000 yuan"),
        (str(path), 3, "quantity", "quantity", "2000000", "beyond ±1,000,000")]


def test_duplicate_order_line_in_one_file_last_row_wins_and_the_loser_is_listed(wh, tmp_path):
    first = tmp_path / "orders_1.csv"
    stats = stage(wh, first, "erp_orders", ERP, ERP_HEADER
                  + "SO1,1,C1,2026-11-19 10:00:00,2,¥399.20,¥798.40\n"
                  + "SO1,2,C1,2026-11-19 10:00:00,1,¥5.00,¥5.00\n"
                  + "so 1,1,C1,2026-11-19 10:00:00,1,¥1.00,¥1.00\n")  # the same key once cleaned
    assert (stats.rows_staged, stats.rows_quarantined, stats.value_issues) == (3, 0, 1)
    assert issues(wh) == [(str(first), 2, "order_no, line_no", "订单号, 行号", "SO1, 1",
                           "duplicate key in the file: superseded by row 4")]
    assert accounting(wh) == [(3, 3, 0, True)]  # the superseded row is still a staged row

    def current():
        return [(o, n, float(a), r) for o, n, a, r in wh.execute(
            f"SELECT order_no, line_no, amount, _row_number FROM ({current_rows_sql('erp_orders')})"
            " ORDER BY 1, 2").fetchall()]

    assert current() == [("SO1", 1, 1.0, 4), ("SO1", 2, 5.0, 3)]
    # A later file with the key again supersedes it as a newer export, not a duplicate.
    second = tmp_path / "orders_2.csv"
    night = stage(wh, second, "erp_orders", ERP, ERP_HEADER
                  + "SO1,1,C1,2026-11-19 10:00:00,2,¥399.20,¥798.40\n",
                  loaded_at=NOW + dt.timedelta(days=1))
    assert not night.full_rebuild
    assert len(issues(wh)) == 1
    assert current() == [("SO1", 1, 798.4, 2), ("SO1", 2, 5.0, 3)]


def test_duplicate_customer_code_in_one_crm_file_is_listed(wh, tmp_path):
    path = tmp_path / "customers.csv"
    stage(wh, path, "crm_customers", CRM, "客户编号,客户名称,出生日期,创建时间\n"
          "KH1,张伟,,\nKH2,李娜,,\nKH1,张伟伟,,\nKH1,张 伟,,\n")
    reason = "duplicate key in the file: superseded by row 5"
    assert issues(wh) == [(str(path), 2, "customer_code", "客户编号", "KH1", reason),
                          (str(path), 4, "customer_code", "客户编号", "KH1", reason)]
    assert wh.execute(f"SELECT customer_code, name FROM ({current_rows_sql('crm_customers')}) "
                      "ORDER BY 1").fetchall() == [("KH1", "张伟"), ("KH2", "李娜")]


def test_control_characters_are_stripped_and_listed(wh, tmp_path):
    path = tmp_path / "customers.csv"
    name = "张\x00伟\x1b[31m\x07\u202e"
    stats = stage(wh, path, "crm_customers", CRM, "客户编号,客户名称,出生日期,创建时间\n"
                  f"KH1,{name},,\nKH2,李娜,,\n"
                  "KH\u200b3,\x1b]0;x\x07Wang\u2066 Fang\u2069,,\n"  # a required code: cleaned, kept
                  "KH4,李\t娜,,\n")  # a tab is whitespace, not a control character
    assert (stats.rows_staged, stats.rows_quarantined) == (4, 0)
    assert wh.execute("SELECT customer_code, name FROM staging.crm_customers ORDER BY 1"
                      ).fetchall() == [("KH1", "张伟"), ("KH2", "李娜"), ("KH3", "Wang Fang"),
                                       ("KH4", "李娜")]
    removed = "control characters removed"
    assert issues(wh) == [
        (str(path), 2, "name", "客户名称", name, removed),
        (str(path), 4, "customer_code", "客户编号", "KH\u200b3", removed),
        (str(path), 4, "name", "客户名称", "\x1b]0;x\x07Wang\u2066 Fang\u2069", removed)]


@pytest.mark.parametrize("raw, expected", [
    ("a\x7fb\x85c", "abc"),  # DEL, C1 (NEL)
    ("\ufeffKH1", "KH1"),  # a BOM inside a value
    ("Zhang\u200bWei", "ZhangWei"),  # zero-width space: no space either
    ("\x1b[1;31mred\x1b[0m", "red"),  # whole ANSI sequences
    ("\u202aabc\u202c", "abc"),  # bidi embedding
    ("\x00", None),  # nothing left: NULL
])
def test_clean_removes_control_characters(con, raw, expected):
    assert con.execute("SELECT clean(?), has_controls(?)", [raw, raw]).fetchall() == [
        (expected, True)]


def test_optional_field_rule_can_quarantine_instead(wh, tmp_path):
    path = tmp_path / "customers.csv"
    rules = ValueRules(snapshot=SNAP, on_future="quarantine")
    stats = stage(wh, path, "crm_customers", CRM, "客户编号,客户名称,出生日期,创建时间\n"
                  "KH1,张伟,1876-05-01,2088-03-01\nKH2,李娜,,2026-01-01\n", rules=rules)
    assert (stats.rows_staged, stats.rows_quarantined) == (1, 1)
    assert quarantined(wh) == [(str(path), 2, "created_at", "创建时间", "2088-03-01", FUTURE)]
    assert issues(wh) == []  # the quarantined row's birth date is not listed again
    assert accounting(wh) == [(2, 1, 1, True)]


def test_rules_restage_when_changed_and_later_nights_keep_their_verdict(wh, tmp_path):
    first = tmp_path / "customers_1.csv"
    stage(wh, first, "crm_customers", CRM,
          "客户编号,客户名称,出生日期,创建时间\nKH1,张伟,,2026-11-25\n")
    assert wh.execute("SELECT created_at FROM staging.crm_customers").fetchall() == [(None,)]
    # Ten days later a night stages only its new file: KH1 keeps the first night's verdict.
    later = ValueRules(snapshot=SNAP + dt.timedelta(days=10))
    second = tmp_path / "customers_2.csv"
    night = stage(wh, second, "crm_customers", CRM,
                  "客户编号,客户名称,出生日期,创建时间\nKH2,李娜,,2026-11-25\n", rules=later,
                  loaded_at=NOW + dt.timedelta(days=10))
    assert not night.full_rebuild  # the snapshot date is not part of the fingerprint
    assert wh.execute("SELECT customer_code, created_at FROM staging.crm_customers ORDER BY 1"
                      ).fetchall() == [("KH1", None), ("KH2", dt.datetime(2026, 11, 25))]
    # A changed setting restages everything, each row judged against this run's date.
    wider = ValueRules(snapshot=SNAP + dt.timedelta(days=10), future_days=2)
    again = build_staging(wh, "crm_customers", CRM, values=wider)
    assert again.full_rebuild
    assert wh.execute("SELECT customer_code, created_at FROM staging.crm_customers ORDER BY 1"
                      ).fetchall() == [("KH1", dt.datetime(2026, 11, 25)),
                                       ("KH2", dt.datetime(2026, 11, 25))]
    assert issues(wh) == []


def test_tenure_and_days_since_subscribe_are_never_negative(wh):
    wh.execute("CREATE SCHEMA core")
    wh.execute("""CREATE TABLE core.customers AS SELECT * FROM (VALUES
        ('A', TIMESTAMP '2026-11-01 08:00', true),
        ('B', TIMESTAMP '2026-11-21 09:00', true),
        ('C', NULL::TIMESTAMP, false))
        t(customer_id, first_seen_at, wechat_subscribed)""")
    wh.execute("""ALTER TABLE core.customers ADD COLUMN gender VARCHAR;
        ALTER TABLE core.customers ADD COLUMN birth_date DATE;
        ALTER TABLE core.customers ADD COLUMN province VARCHAR;
        ALTER TABLE core.customers ADD COLUMN city VARCHAR;
        ALTER TABLE core.customers ADD COLUMN industry VARCHAR;
        ALTER TABLE core.customers ADD COLUMN lead_source VARCHAR;
        ALTER TABLE core.customers ADD COLUMN crm_stage VARCHAR;
        ALTER TABLE core.customers ADD COLUMN owner VARCHAR;
        CREATE TABLE core.order_lines (customer_id VARCHAR, order_id VARCHAR, channel VARCHAR,
            ordered_at TIMESTAMP, is_refund BOOLEAN, amount DECIMAL(18, 2), category VARCHAR);
        CREATE TABLE core.followups (customer_id VARCHAR, followup_at TIMESTAMP);
        CREATE TABLE core.opportunity_stages (customer_id VARCHAR, opportunity_code VARCHAR,
            stage VARCHAR, entered_at TIMESTAMP);
        CREATE TABLE core.wechat_events (customer_id VARCHAR, event_type VARCHAR,
            event_at TIMESTAMP, invited_openid VARCHAR);
        CREATE TABLE IF NOT EXISTS identity.customer_map (source VARCHAR, source_key VARCHAR,
            customer_id VARCHAR);
        INSERT INTO identity.customer_map (source, source_key, customer_id)
            VALUES ('wechat', 'oA', 'A'), ('wechat', 'oB', 'B');
        CREATE TABLE staging.wechat_followers (openid VARCHAR, subscribed_at TIMESTAMP);
        INSERT INTO staging.wechat_followers
            VALUES ('oA', '2026-11-10 12:00'), ('oB', '2026-11-21 10:00')""")
    build_features(wh, SNAP, "features.customer_features")
    # B was first seen and subscribed the day after the snapshot (within staging's tolerance):
    # as of the snapshot date there is no tenure yet, rather than -1 day.
    assert wh.execute("""SELECT customer_id, tenure_days, days_since_subscribe
                         FROM features.customer_features ORDER BY 1""").fetchall() == [
        ("A", 19, 10), ("B", None, None), ("C", None, None)]


def test_value_rules_config_defaults_yaml_null_and_rules(tmp_path):
    cfg = ValueRulesConfig()
    assert cfg.rules(SNAP) == RULES  # the config's defaults are the staging defaults
    assert load_config().values == cfg  # profiles.yaml documents the defaults

    def edit(data):
        data["values"] = {"on_age": None, "on_amount": "quarantine", "max_amount": 5e6}

    values = load_config(write_config(tmp_path / "a", edit)).values
    assert (values.on_age, values.on_amount, values.max_amount) == ("null", "quarantine", 5e6)
    assert values.rules(SNAP) == ValueRules(snapshot=SNAP, on_amount="quarantine", max_amount=5e6)

    def wrong(data):
        data["values"] = {"on_future": "drop"}

    with pytest.raises(ConfigError, match=r"values → on_future"):
        load_config(write_config(tmp_path / "b", wrong))

    def inverted(data):
        data["values"] = {"age_min": 30, "age_max": 20}

    with pytest.raises(ConfigError, match=r"age_min \(30\) is above age_max \(20\)"):
        load_config(write_config(tmp_path / "c", inverted))
