"""Value normalisation macros: exact outputs for each form real exports use."""

import datetime as dt
from decimal import Decimal

import pytest

from transforms.normalize import normalise_phones


def one(con, sql, *params):
    return con.execute(f"SELECT {sql}", list(params)).fetchall()[0][0]


@pytest.mark.parametrize("raw", [
    "13800138000", "+86 138 0013 8000", "0086 13800138000", "0086-138-0013-8000",
    "138-0013-8000", "+86-138-0013-8000", "１３８００１３８０００", " 138 0013 8000 ", "8613800138000",
])
def test_mobile_forms_become_e164(con, raw):
    assert one(con, "mobile_e164(?)", raw) == "+8613800138000"


def test_non_mobiles_go_to_phonenumbers_on_distinct_values():
    assert normalise_phones(["01062345678", "12345", "+14155552671"]) == [
        ("01062345678", "+861062345678"), ("12345", None), ("+14155552671", "+14155552671")]


@pytest.mark.parametrize("raw, expected", [
    ("1985-03-12", dt.date(1985, 3, 12)),
    ("1985/3/12", dt.date(1985, 3, 12)),
    ("1985年3月12日", dt.date(1985, 3, 12)),
    ("19850312", dt.date(1985, 3, 12)),
    ("1985.03.12", dt.date(1985, 3, 12)),
    ("31120", dt.date(1985, 3, 14)),  # Excel serial day number (epoch 1899-12-30)
    ("2026-13-45", None),
    ("无", None),
    ("0001-01-01", None),  # out of the plausible range
])
def test_dates(con, raw, expected):
    assert one(con, "parse_date(?)", raw) == expected


@pytest.mark.parametrize("raw, expected", [
    ("2024-05-06 14:03:22", dt.datetime(2024, 5, 6, 14, 3, 22)),
    ("2024/5/6 14:03", dt.datetime(2024, 5, 6, 14, 3)),
    ("2024年5月6日 14:03", dt.datetime(2024, 5, 6, 14, 3)),
    ("45418.75", dt.datetime(2024, 5, 6, 18, 0)),  # Excel serial with a time fraction
    ("1714975200", dt.datetime(2024, 5, 6, 14, 0)),  # unix seconds → Asia/Shanghai
    ("1714975200000", dt.datetime(2024, 5, 6, 14, 0)),  # unix milliseconds
    ("#VALUE!", None),
])
def test_timestamps(con, raw, expected):
    assert one(con, "parse_timestamp_checked(?)", raw) == expected


@pytest.mark.parametrize("raw, expected", [
    ("¥1,234.50", Decimal("1234.50")), ("￥1,234.50", Decimal("1234.50")),
    ("-¥199.00", Decimal("-199.00")), ("¥-199.00", Decimal("-199.00")),
    ("12,000元", Decimal("12000.00")), ("(12.00)", Decimal("-12.00")), ("RMB 35", Decimal("35.00")),
    ("１２.５", Decimal("12.50")), ("¥abc", None), ("-", None),
])
def test_amounts(con, raw, expected):
    assert one(con, "parse_amount(?)", raw) == expected


@pytest.mark.parametrize("raw", ["无", "-", "--", "N/A", "n/a", "null", "NULL", "None", "  ", "", "空"])
def test_nullish_strings_are_null(con, raw):
    assert one(con, "clean(?)", raw) is None


def test_full_width_folds_to_half_width(con):
    assert one(con, "clean(?)", "ＡＢＣ１２３　ｘ（测试）") == "ABC123 x(测试)"


@pytest.mark.parametrize("fn, raw, expected", [
    ("clean_email", " Foo.Bar@QQ.COM ", "foo.bar@qq.com"),
    ("clean_email", "foo bar@qq.com", "foobar@qq.com"),
    ("clean_email", "not-an-email", None),
    ("clean_name", "张 伟", "张伟"),
    ("clean_name", " Zhang   Wei ", "Zhang Wei"),
    ("clean_code", " kh 0001 ", "KH0001"),
    ("parse_gender", "男", "M"), ("parse_gender", "2", "F"), ("parse_gender", "0", None),
    ("canonical_province", "广东", "广东省"), ("canonical_province", "Guangdong", "广东省"),
    ("canonical_province", "内蒙古", "内蒙古自治区"),
    ("canonical_city", "广州", "广州市"), ("canonical_city", "Guangzhou", "广州市"),
    ("canonical_city", "北京", "北京市"), ("canonical_city", "揭阳", "揭阳市"),
    ("canonical_city", "大理白族自治州", "大理白族自治州"),
])
def test_text_forms(con, fn, raw, expected):
    assert one(con, f"{fn}(?)", raw) == expected


def test_lists(con):
    assert one(con, "parse_list(?)", "[2, 103]") == ["2", "103"]
    assert one(con, "parse_list(?)", "a, b") == ["a", "b"]
