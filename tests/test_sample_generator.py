"""The sample generator: deterministic, in the formats the real systems export, with the noise
real exports have, and a ground truth covering every customer record."""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pytest

from pipelines.sample import generate, generator
from pipelines.sample.__main__ import main as sample_main

PERSONS = 300
END = date(2026, 11, 20)
EXCEL_EPOCH = date(1899, 12, 30)
SHANGHAI = timezone(timedelta(hours=8))
SWITCHBOARD = re.compile(r"^(400-\d{3}-\d{4}|0\d{2,3}-\d{7,8})$")
FILES = ["crm/customers.csv", "crm/followups.csv", "crm/opportunities.csv", "erp/customers.xlsx",
         "erp/orders_01.xlsx", "wechat/followers.jsonl", "wechat/events.jsonl", "ground_truth.csv"]


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> tuple[Path, dict[str, int]]:
    out = tmp_path_factory.mktemp("sample")
    return out, generate(out, persons=PERSONS, seed=42, end_date=END)


def crm_rows(out: Path) -> list[list[str]]:
    text = (out / "crm/customers.csv").read_bytes().decode("gb18030")
    return list(csv.reader(io.StringIO(text)))


def read_sheet(path: Path, sheet: str) -> pl.DataFrame:
    return pl.read_excel(path, engine="calamine", sheet_name=sheet,
                         read_options={"header_row": 1, "dtypes": "string"})


def truth(out: Path) -> pl.DataFrame:
    return pl.read_csv(out / "ground_truth.csv", infer_schema_length=0)


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_same_seed_same_bytes_other_seed_other_bytes(sample, tmp_path):
    out, counts = sample
    assert sorted(counts) == sorted(FILES)
    again = tmp_path / "again"
    assert generate(again, persons=PERSONS, seed=42, end_date=END) == counts
    other = tmp_path / "other"
    generate(other, persons=PERSONS, seed=7, end_date=END)
    for name in FILES:
        assert (again / name).read_bytes() == (out / name).read_bytes(), name
        assert (other / name).read_bytes() != (out / name).read_bytes(), name


def test_worker_processes_do_not_change_the_output(tmp_path, monkeypatch):
    monkeypatch.setattr(generator, "MIN_CHUNKS_FOR_WORKERS", 1)
    counts = generate(tmp_path / "w1", persons=2100, seed=3, workers=1)
    assert generate(tmp_path / "w2", persons=2100, seed=3, workers=2) == counts
    for name in counts:
        assert (tmp_path / "w1" / name).read_bytes() == (tmp_path / "w2" / name).read_bytes()


def test_encodings(sample):
    out, _ = sample
    for name in ("crm/customers.csv", "crm/opportunities.csv"):
        raw = (out / name).read_bytes()
        assert "客户编号" in raw.decode("gb18030")
        with pytest.raises(UnicodeDecodeError):
            raw.decode("utf-8")
    followups = (out / "crm/followups.csv").read_bytes()
    assert followups.startswith(b"\xef\xbb\xbf")
    header = followups.decode("utf-8-sig").splitlines()[0]
    assert header == "客户编号,跟进时间,跟进方式,跟进内容,跟进人"
    for name in ("wechat/followers.jsonl", "wechat/events.jsonl", "ground_truth.csv"):
        raw = (out / name).read_bytes()
        assert not raw.startswith(b"\xef\xbb\xbf")
        raw.decode("utf-8")


def test_headers_and_row_counts(sample):
    out, counts = sample
    rows = crm_rows(out)
    assert rows[0] == ["客户编号", "客户名称", "手机", "邮箱", "性别", "出生日期", "省份",
                       "城市", "地址", "行业", "客户来源", "客户阶段", "负责人", "创建时间",
                       "营销授权"]
    assert len(rows) - 1 == counts["crm/customers.csv"]
    opportunities = (out / "crm/opportunities.csv").read_bytes().decode("gb18030").splitlines()
    assert opportunities[0] == "商机编号,客户编号,阶段,进入阶段时间,金额"
    assert len(opportunities) - 1 == counts["crm/opportunities.csv"]
    customers = read_sheet(out / "erp/customers.xlsx", "客户档案")
    assert customers.columns == ["客户代码", "客户名称", "联系电话", "电子邮箱", "地址",
                                 "CRM客户编号", "建档日期"]
    assert customers.height == counts["erp/customers.xlsx"]
    orders = read_sheet(out / "erp/orders_01.xlsx", "销售订单")
    assert orders.columns == ["订单号", "行号", "客户代码", "下单时间", "商品编码", "商品名称",
                              "品类", "数量", "单价", "金额"]
    assert orders.height == counts["erp/orders_01.xlsx"]
    titles = pl.read_excel(out / "erp/customers.xlsx", engine="calamine", sheet_name="客户档案",
                           read_options={"header_row": None, "n_rows": 1, "dtypes": "string"})
    assert titles.row(0)[0] == "客户档案导出 2026-11-20"
    events = (out / "wechat/events.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(events) == counts["wechat/events.jsonl"]


def sheet_cells(path: Path, column: str) -> dict[str, int]:
    """How many cells of a column are numbers ("n") and inline strings ("s"), title and
    header rows included; read from the sheet XML, where the cell type is explicit."""
    with zipfile.ZipFile(path) as book:
        xml = book.read("xl/worksheets/sheet1.xml").decode("utf-8")
    return {"n": len(re.findall(rf'<c r="{column}\d+"><v>', xml)),
            "s": len(re.findall(rf'<c r="{column}\d+" t="inlineStr">', xml))}


def test_xlsx_dates_are_excel_serials_and_money_is_text(sample):
    out, counts = sample
    start, end = (date(2023, 11, 20) - EXCEL_EPOCH).days, (END - EXCEL_EPOCH).days + 1
    lines = counts["erp/orders_01.xlsx"]
    # 下单时间: numeric cells, bar the header and the one corrupted cell; 单价 / 金额: text.
    assert sheet_cells(out / "erp/orders_01.xlsx", "D") == {"n": lines - 1, "s": 2}
    assert sheet_cells(out / "erp/orders_01.xlsx", "J") == {"n": 0, "s": lines + 1}
    assert sheet_cells(out / "erp/customers.xlsx", "G") == {"n": counts["erp/customers.xlsx"],
                                                            "s": 1}
    orders = pl.read_excel(out / "erp/orders_01.xlsx", engine="calamine", sheet_name="销售订单",
                           read_options={"header_row": 1, "dtypes": {"下单时间": "float"}})
    serials = orders["下单时间"].drop_nulls()
    assert serials.min() >= start and serials.max() < end
    assert (serials % 1 != 0).mean() > 0.99   # a time of day, not just a date
    assert orders["金额"].str.contains(r"^-?¥[\d,]+\.\d{2}$").sum() == orders.height - 1
    assert orders["单价"].str.contains(r",").any()   # thousands separators
    customers = pl.read_excel(out / "erp/customers.xlsx", engine="calamine", sheet_name="客户档案",
                              read_options={"header_row": 1})
    assert customers.schema["建档日期"] == pl.Int64
    assert customers["建档日期"].min() >= start and customers["建档日期"].max() < end


def test_ground_truth_covers_every_customer_record_once(sample):
    out, _ = sample
    gt = truth(out)
    assert gt.columns == ["source", "source_key", "person_id", "evidence"]
    assert gt.select("source", "source_key").is_duplicated().sum() == 0
    keys = {source: set(gt.filter(pl.col("source") == source)["source_key"])
            for source in ("crm", "erp", "wechat")}
    crm_codes = [row[0] for row in crm_rows(out)[1:]]
    assert len(crm_codes) == len(set(crm_codes)) and set(crm_codes) == keys["crm"]
    erp_codes = read_sheet(out / "erp/customers.xlsx", "客户档案")["客户代码"].to_list()
    assert len(erp_codes) == len(set(erp_codes)) and set(erp_codes) == keys["erp"]
    openids = [f["openid"] for f in jsonl(out / "wechat/followers.jsonl")]
    assert len(openids) == len(set(openids)) and set(openids) == keys["wechat"]
    assert gt["person_id"].str.contains(r"^P\d{8}$").all()
    assert gt["person_id"].n_unique() == PERSONS   # everyone is in at least one source
    allowed = {"phone", "email", "unionid", "crm_ref", "name", "birth_date", "city", "address"}
    tokens = {t for e in gt["evidence"].drop_nulls() for t in e.split("|")}
    assert tokens == allowed


def test_noise_real_exports_have(sample):
    out, _ = sample
    rows = crm_rows(out)
    assert sorted(len(r) for r in rows).count(16) == 1           # one unquoted comma
    phones = [r[2] for r in rows[1:]]
    shared = max((p for p in phones if SWITCHBOARD.match(p)), key=phones.count)
    assert phones.count(shared) >= 3
    assert {"无", "-", "N/A", "null", "NULL"} & set(phones)
    assert any(p.startswith("+86 ") for p in phones) and any("１" in p for p in phones)
    assert any(r[3] != r[3].strip() or (r[3].isupper() and "@" in r[3]) for r in rows[1:])
    gt = truth(out)
    crm_people = gt.filter(pl.col("source") == "crm")["person_id"]
    assert crm_people.is_duplicated().any()                     # a person entered twice

    orders = read_sheet(out / "erp/orders_01.xlsx", "销售订单")
    assert orders["数量"].cast(pl.Int64).min() < 0
    assert orders.filter(pl.col("数量").str.starts_with("-"))["金额"].str.starts_with("-¥").all()
    known = set(read_sheet(out / "erp/customers.xlsx", "客户档案")["客户代码"])
    assert set(orders["客户代码"]) - known                         # an unknown customer code
    assert orders["下单时间"].cast(pl.Float64, strict=False).null_count() == 1
    assert (orders["金额"] == "¥abc").sum() == 1

    lines = (out / "wechat/events.jsonl").read_text(encoding="utf-8").splitlines()
    invalid = 0
    for line in lines:
        try:
            json.loads(line)
        except json.JSONDecodeError:
            invalid += 1
    assert invalid == 1
    followers = jsonl(out / "wechat/followers.jsonl")
    assert 0.5 < sum("unionid" in f for f in followers) / len(followers) < 0.9
    # A follower with no phone, no unionid and no name (at most a city), who is nonetheless a
    # known CRM person.
    wechat = gt.filter(pl.col("source") == "wechat").with_columns(pl.col("evidence").fill_null(""))
    blind = set(wechat.filter(pl.col("evidence").is_in(["", "city"]))["person_id"])
    assert blind & set(crm_people)


def test_nothing_after_the_end_date(sample):
    out, _ = sample
    last = END.isoformat()
    created = [_iso(r[13]) for r in crm_rows(out)[1:] if len(r) == 15]
    assert max(created) <= last
    followups = (out / "crm/followups.csv").read_text(encoding="utf-8-sig").splitlines()[1:]
    assert max(line.split(",")[1][:10] for line in followups) <= last
    opportunities = (out / "crm/opportunities.csv").read_bytes().decode("gb18030").splitlines()
    assert max(line.split(",")[3] for line in opportunities[1:]) <= last
    end_unix = datetime(END.year, END.month, END.day, tzinfo=SHANGHAI).timestamp() + 86400
    events = []
    for line in (out / "wechat/events.jsonl").read_text(encoding="utf-8").splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    assert max(e["event_time"] for e in events) < end_unix
    assert max(f["subscribe_time"] for f in jsonl(out / "wechat/followers.jsonl")) < end_unix


def _iso(text: str) -> str:
    """2024/5/6 14:03 → 2024-05-06 (the CRM writes both forms)."""
    y, m, d = re.split(r"[-/]", text.split(" ")[0])
    return f"{y}-{int(m):02d}-{int(d):02d}"


def test_command_line(tmp_path, capsys):
    assert sample_main(["--persons", "20", "--seed", "1", "--out", str(tmp_path),
                        "--end", "2025-06-30"]) == 0
    printed = capsys.readouterr().out
    assert "crm/customers.csv" in printed and "ground_truth.csv" in printed
    events = jsonl(tmp_path / "wechat/followers.jsonl")
    end_unix = datetime(2025, 7, 1, tzinfo=SHANGHAI).timestamp()
    assert all(f["subscribe_time"] < end_unix for f in events)
