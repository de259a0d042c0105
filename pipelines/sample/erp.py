"""ERP exports: customers.xlsx (sheet 客户档案) and orders_NN.xlsx (sheet 销售订单).

Like real ERP exports: dates as Excel serial numbers, money as text with ¥ and thousands
separators, returns as negative lines. This module renders one chunk's rows as cell XML;
sink.py adds the title rows and splits orders into files of 500,000 rows.
"""

from __future__ import annotations

from pipelines.sample import ids, noise
from pipelines.sample.behaviour import Facts, Order
from pipelines.sample.clock import DAY
from pipelines.sample.context import RunContext
from pipelines.sample.draws import between
from pipelines.sample.persons import Person
from pipelines.sample.reference import CATEGORIES
from pipelines.sample.truth import TruthRenderer
from pipelines.sample.xlsx import RowRenderer

CUSTOMER_SHEET, ORDER_SHEET = "客户档案", "销售订单"
CUSTOMER_HEADER = ["客户代码", "客户名称", "联系电话", "电子邮箱", "地址", "CRM客户编号",
                   "建档日期"]
ORDER_HEADER = ["订单号", "行号", "客户代码", "下单时间", "商品编码", "商品名称", "品类",
                "数量", "单价", "金额"]

_CUSTOMER_ROW = RowRenderer(len(CUSTOMER_HEADER))
_ORDER_ROW = RowRenderer(len(ORDER_HEADER))
# Product names, codes and ¥ texts never need escaping: order lines take the fast path.
_plain_order_cells = _ORDER_ROW.plain("snsnsssnss")


class ErpRenderer:
    def __init__(self, ctx: RunContext, chunk_no: int, truth: TruthRenderer):
        self.ctx, self.chunk_no, self.truth = ctx, chunk_no, truth
        self.customers: list[str] = []
        self.order_lines: list[str] = []
        self._orders_seen = 0
        self.bad_date_line: int | None = None     # chunk order line with a corrupted 下单时间
        self.bad_amount_line: int | None = None   # chunk order line whose 金额 cannot be read

    def write(self, p: Person, facts: Facts) -> None:
        if not p.in_erp:
            return
        rng, ctx, window = p.rng, self.ctx, self.ctx.window
        code = ids.erp_code(ctx.seed, p.index)
        erp_orders = [o for o in facts.orders if o.channel == "erp"]
        if erp_orders:   # archived when first buying in a store, or a few days before
            created_day = max(0, erp_orders[0].t // DAY - between(rng, 0, 4))
        else:
            created_day = int(rng.random() * window.days)
        evidence = []
        r = rng.random()
        if r < 0.003:
            phone = ctx.switchboards[int(rng.random() * len(ctx.switchboards))]
        elif r < 0.72:
            phone = noise.mobile_text(p.mobile, rng)
            evidence.append("phone")
        elif r < 0.82:
            phone = noise.landline_text(p.city.area_code, rng)
        elif r < 0.86:
            phone = noise.nullish(rng)
        else:
            phone = ""
        if p.email and rng.random() < 0.5:
            email = noise.email_text(p.email, rng)
            evidence.append("email")
        else:
            email = ""
        if p.erp_crm_ref:
            evidence.append("crm_ref")
        if rng.random() < 0.85:
            name = noise.han_name_text(p.surname, p.given, rng)
            evidence.append("name")
        else:
            name = noise.pinyin_name_text(p.surname_py, p.given_py, rng)
        r = rng.random()
        city = p.city
        if r < 0.55:
            prefix = city.name if city.name == city.province else city.province + city.name
            address = prefix + p.street
            evidence += ["city", "address"]
        elif r < 0.85:
            address = p.street
            evidence.append("address")
        else:
            address = noise.nullish(rng) if r < 0.9 else ""
        self.customers.append(_CUSTOMER_ROW.cells(
            [code, name, phone, email, address, p.erp_crm_ref or "",
             window.excel_date(created_day)]))
        self.truth.add("erp", code, p.pid, evidence)
        for order in erp_orders:
            self._write_order(code, order)

    def write_orphan(self, order: Order) -> None:
        """An order for a customer code that is not in customers.xlsx (deleted / never synced):
        codes from slots past the last person are never given to anyone."""
        self._write_order(ids.erp_code(self.ctx.seed, self.ctx.persons + self.chunk_no), order)

    def _write_order(self, code: str, order: Order) -> None:
        window = self.ctx.window
        self._orders_seen += 1
        number = ids.sequence(self.chunk_no, self._orders_seen)
        prefix = "TH" if order.is_return else "XS"   # 退货单 / 销售单
        order_no = f"{prefix}{window.compact[order.t // DAY]}{number:09d}"
        serial = window.excel_serial(order.t)
        lines = self.order_lines
        for line_no, (product, qty, price) in enumerate(order.lines, start=1):
            row = (order_no, line_no, code, serial, product.sku, product.name,
                   CATEGORIES[product.category], qty, noise.money_text(price),
                   noise.money_text(round(qty * price, 2)))
            if len(lines) == self.bad_date_line:
                bad = f"{window.end.year}-13-45" if self.ctx.seed % 2 else "#VALUE!"
                lines.append(_ORDER_ROW.cells(row[:3] + (bad,) + row[4:]))
            elif len(lines) == self.bad_amount_line:
                lines.append(_ORDER_ROW.cells(row[:9] + ("¥abc",)))
            else:
                lines.append(_plain_order_cells(*row))
