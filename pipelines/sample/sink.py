"""The export files: opened once, appended chunk by chunk in order, closed at the end.

Each file's encoding is the one its real source system uses: the CRM exports customers and
opportunities in GB18030 and follow-ups in UTF-8 with a BOM; WeChat and ground truth are UTF-8.
"""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

from pipelines.sample import crm, erp, truth, wechat
from pipelines.sample.chunk import ChunkOutput
from pipelines.sample.clock import Window
from pipelines.sample.xlsx import MAX_DATA_ROWS, SheetStream

TEXT_FILES = {   # file → (encoding, CSV header or None)
    crm.CUSTOMERS: ("gb18030", crm.CUSTOMER_HEADER),
    crm.FOLLOWUPS: ("utf-8-sig", crm.FOLLOWUP_HEADER),
    crm.OPPORTUNITIES: ("gb18030", crm.OPPORTUNITY_HEADER),
    wechat.FOLLOWERS: ("utf-8", None),
    wechat.EVENTS: ("utf-8", None),
}
TRUTH = "ground_truth.csv"
ERP_CUSTOMERS = "erp/customers.xlsx"


class ExportFiles:
    def __init__(self, out_dir: Path, window: Window):
        self.out_dir = out_dir
        for folder in ("crm", "erp", "wechat"):
            (out_dir / folder).mkdir(parents=True, exist_ok=True)
        for stale in (out_dir / "erp").glob("orders_*.xlsx"):   # from an earlier, bigger run
            stale.unlink()
        self.counts: dict[str, int] = {}
        self._text = {}
        for name, (encoding, header) in TEXT_FILES.items():
            fh = open(out_dir / name, "w", encoding=encoding, newline="")  # noqa: SIM115
            if header:
                fh.write(",".join(header) + "\r\n")
            self._text[name] = fh
            self.counts[name] = 0
        self._truth = open(out_dir / TRUTH, "w", encoding="utf-8", newline="")  # noqa: SIM115
        self._truth.write(",".join(truth.HEADER) + "\n")
        self.counts[TRUTH] = 0
        # Fixed workbook timestamps (the end date) keep the XLSX files byte-identical.
        self._created = dt.datetime.combine(window.end, dt.time())
        self._customers = SheetStream(out_dir / ERP_CUSTOMERS, erp.CUSTOMER_SHEET,
                                      f"客户档案导出 {window.end.isoformat()}",
                                      erp.CUSTOMER_HEADER, self._created)
        self._orders_title = f"销售订单明细 {window.start.isoformat()} 至 {window.end.isoformat()}"
        self._order_files: list[SheetStream] = []
        self._closing: list[threading.Thread] = []
        self._new_orders_file()

    def append(self, out: ChunkOutput) -> None:
        for name, (text, rows) in out.texts.items():
            self._text[name].write(text)
            self.counts[name] += rows
        self._truth.write("".join(out.truth))
        self.counts[TRUTH] += len(out.truth)
        for cells in out.erp_customers:
            self._customers.append(cells)
        orders = self._order_files[-1]
        for cells in out.erp_order_lines:
            if orders.rows >= MAX_DATA_ROWS:
                orders = self._new_orders_file()
            orders.append(cells)

    def _new_orders_file(self) -> SheetStream:
        if self._order_files:
            # Compressing a full file (zlib frees the GIL) overlaps with filling the next one.
            thread = threading.Thread(target=self._order_files[-1].close)
            thread.start()
            self._closing.append(thread)
        path = self.out_dir / "erp" / f"orders_{len(self._order_files) + 1:02d}.xlsx"
        sheet = SheetStream(path, erp.ORDER_SHEET, self._orders_title, erp.ORDER_HEADER,
                            self._created)
        self._order_files.append(sheet)
        return sheet

    def close(self) -> dict[str, int]:
        for fh in (*self._text.values(), self._truth):
            fh.close()
        closing = [threading.Thread(target=self._customers.close),
                   threading.Thread(target=self._order_files[-1].close)]
        for thread in closing:
            thread.start()
        for thread in (*self._closing, *closing):
            thread.join()
        counts = {name: self.counts[name] for name in (crm.CUSTOMERS, crm.FOLLOWUPS,
                                                        crm.OPPORTUNITIES)}
        counts[ERP_CUSTOMERS] = self._customers.rows
        for sheet in self._order_files:
            counts[f"erp/{sheet.path.name}"] = sheet.rows
        counts[wechat.FOLLOWERS] = self.counts[wechat.FOLLOWERS]
        counts[wechat.EVENTS] = self.counts[wechat.EVENTS]
        counts[TRUTH] = self.counts[TRUTH]
        return counts
