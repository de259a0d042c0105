"""Tiny hand-made exports of every source, in the real formats, with known noise.

Persons (ground truth):
  P1 张伟: CRM KH001 + CRM KH009 (double entry, phone in another form), ERP C001 (pinyin name,
           CRM ref), WeChat o1 (bound phone).
  P2 李娜: CRM KH002, ERP C002 (same email, upper case), WeChat o2 (bound phone) + o3 (same
           unionid as o2, nothing else).
  P3/P4/P5: CRM KH003/KH004/KH005 share the switchboard 010-62345678 as their only phone.
  Noise: a malformed CRM row (line 7), an ERP order with a bad date (row 6) and one for an
  unknown customer (C999), an invalid JSON line in events (line 4).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import xlsxwriter
import yaml

CRM_HEADER = "客户编号,客户名称,手机,邮箱,性别,出生日期,省份,城市,地址,行业,客户来源,客户阶段,负责人,创建时间,营销授权"
CRM_ROWS = [
    "KH001,张伟,+86 138 0013 8000,ZW@QQ.COM ,男,1985年3月12日,广东,广州,天河路1号,IT/互联网,官网,成交客户,李雷,2024/5/6 14:03,是",
    "KH002,李娜,13900139000,lina@163.com,女,1990-07-01,北京,北京,朝阳路2号,金融,展会,成交客户,韩梅,2024-01-02 10:00:00,否",
    "KH003,王芳,010-62345678,无,女,1979/2/3,北京市,北京市,,教育,转介绍,线索,李雷,2024-03-01,",
    "KH004,赵强,010-62345678,-,男,19881111,北京,北京,,制造业,官网,线索,韩梅,2024-03-02,是",
    "KH005,孙丽,010-62345678,N/A,女,,北京,北京,,零售,官网,潜在客户,李雷,2024-03-03,是",
    'KH006,"坏,行",13700137000,x@y.com,男,1990-01-01,上海,上海,a,b,c,d,e,f,是,EXTRA',
    "KH009,张 伟,１３８００１３８０００,,男,1985-03-12,广东省,广州市,,IT/互联网,电话营销,意向客户,韩梅,2024-06-01 09:00,1",
]
FOLLOWUP_HEADER = "客户编号,跟进时间,跟进方式,跟进内容,跟进人"
FOLLOWUP_ROWS = [
    "KH001,2026-10-01 10:00:00,电话,客户咨询美妆新品价格,李雷",
    "KH002,2026-11-10 15:30:00,微信,确认母婴用品订单,韩梅",
]
OPP_HEADER = "商机编号,客户编号,阶段,进入阶段时间,金额"
OPP_ROWS = [
    "SJ001,KH001,初步接洽,2026-01-05,\"¥12,000.00\"",
    "SJ001,KH001,赢单,2026-02-10,12000元",
    "SJ002,KH003,初步接洽,2026-10-01,5000",
]
ERP_CUSTOMERS = [  # 客户代码, 客户名称, 联系电话, 电子邮箱, 地址, CRM客户编号, 建档日期 (serial)
    ["C001", "Zhang Wei", "138-0013-8000", None, "广州天河路1号", "KH001", 45300],
    ["C002", "李娜", None, "LINA@163.COM", "北京朝阳路2号", None, 45310],
]
ERP_ORDERS = [  # 订单号, 行号, 客户代码, 下单时间, 商品编码, 商品名称, 品类, 数量, 单价, 金额
    ["SO001", 1, "C001", 46000.875, "SKU1", "口红", "美妆", 2, "¥199.00", "¥398.00"],
    ["SO002", 1, "C001", 46300.86, "SKU2", "面霜", "美妆", 1, "¥1,299.00", "¥1,299.00"],
    ["SO003", 1, "C002", "2026-13-45", "SKU3", "奶粉", "母婴", 1, "¥300.00", "¥300.00"],
    ["SO004", 1, "C002", 46320.4, "SKU3", "奶粉", "母婴", 3, "¥300.00", "¥900.00"],
    ["SO005", 1, "C002", 46330.4, "SKU3", "奶粉", "母婴", -1, "¥300.00", "-¥300.00"],
    ["SO006", 1, "C999", 46330.5, "SKU4", "耳机", "数码", 1, "¥99.00", "¥99.00"],
]
FOLLOWERS = [
    {"openid": "o1", "nickname": "快乐每一天", "sex": 1, "province": "广东", "city": "广州",
     "subscribe": 1, "subscribe_time": 1704067200, "tagid_list": [2], "phone": "13800138000",
     "subscribe_scene": "ADD_SCENE_QR_CODE", "remark": ""},
    {"openid": "o2", "unionid": "u2", "nickname": "Lina", "sex": 2, "province": "Beijing",
     "city": "Beijing", "subscribe": 1, "subscribe_time": 1714067200, "tagid_list": [],
     "phone": "+86-139-0013-9000"},
    {"openid": "o3", "unionid": "u2", "nickname": "娜娜", "sex": 2, "province": "北京",
     "city": "北京", "subscribe": 0, "subscribe_time": 1704067200, "tagid_list": []},
]
EVENTS = [
    {"openid": "o2", "event_type": "article_read", "event_time": 1763000000, "article_id": "a1"},
    {"openid": "o1", "event_type": "mall_order", "event_time": 1762000000, "order_id": "W1",
     "amount_fen": 15900, "category": "美妆", "quantity": 1},
    "{this is not json",
    {"openid": "o2", "event_type": "share", "event_time": 1763100000, "article_id": "a1"},
]

# Expected outcomes the tests assert.
EXPECTED = {
    "crm_customers_rows_read": 7,
    "crm_customers_quarantined": 1,  # the malformed row (line 7 in the file)
    "erp_orders_quarantined": 1,  # the bad date
    "events_quarantined": 1,  # invalid JSON
    "customers": 5,  # P1, P2, and the three switchboard customers stay separate
}


def _write_xlsx(path: Path, sheet: str, title: str, header: list[str], rows: list[list]) -> None:
    wb = xlsxwriter.Workbook(str(path))
    ws = wb.add_worksheet(sheet)
    ws.write_row(0, 0, [title])
    ws.write_row(1, 0, header)
    for i, row in enumerate(rows, start=2):
        ws.write_row(i, 0, row)
    wb.close()


def write_exports(root: Path) -> Path:
    (root / "crm").mkdir(parents=True, exist_ok=True)
    (root / "erp").mkdir(exist_ok=True)
    (root / "wechat").mkdir(exist_ok=True)
    crm = "\n".join([CRM_HEADER, *CRM_ROWS]) + "\n"
    (root / "crm" / "customers.csv").write_bytes(crm.encode("gb18030"))
    followups = "\n".join([FOLLOWUP_HEADER, *FOLLOWUP_ROWS]) + "\n"
    (root / "crm" / "followups.csv").write_bytes(followups.encode("utf-8-sig"))
    opps = "\n".join([OPP_HEADER, *OPP_ROWS]) + "\n"
    (root / "crm" / "opportunities.csv").write_bytes(opps.encode("gb18030"))
    _write_xlsx(root / "erp" / "customers.xlsx", "客户档案", "客户档案导出 2026-11-20",
                ["客户代码", "客户名称", "联系电话", "电子邮箱", "地址", "CRM客户编号", "建档日期"],
                ERP_CUSTOMERS)
    _write_xlsx(root / "erp" / "orders_01.xlsx", "销售订单", "销售订单明细",
                ["订单号", "行号", "客户代码", "下单时间", "商品编码", "商品名称", "品类", "数量",
                 "单价", "金额"], ERP_ORDERS)
    with open(root / "wechat" / "followers.jsonl", "w", encoding="utf-8") as fh:
        for f in FOLLOWERS:
            fh.write(json.dumps(f, ensure_ascii=False) + "\n")
    with open(root / "wechat" / "events.jsonl", "w", encoding="utf-8") as fh:
        for e in EVENTS:
            fh.write((e if isinstance(e, str) else json.dumps(e, ensure_ascii=False)) + "\n")
    return root


def land(con, entity: str, rows: list[dict], loaded_at: str) -> None:
    for i, row in enumerate(rows, start=2):
        cols = ", ".join([*row, "_source_file", "_row_number", "_loaded_at"])
        marks = ", ".join(["?"] * (len(row) + 3))
        con.execute(f"INSERT INTO raw.{entity} ({cols}) VALUES ({marks})",
                    [*row.values(), f"{entity}_{loaded_at}", i, loaded_at])


REPO_CONFIG = Path(__file__).resolve().parent.parent / "profiles.yaml"


def write_config(folder: Path, edit) -> Path:
    """A copy of the repo's profiles.yaml (and tag rules) in ``folder``, changed by ``edit``."""
    data = yaml.safe_load(REPO_CONFIG.read_text(encoding="utf-8"))
    edit(data)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "profiles.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    shutil.copytree(REPO_CONFIG.parent / "tag_rules", folder / "tag_rules")
    return path
