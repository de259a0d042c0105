"""Two nights out of one generated dataset: night 1 holds every export file without its last
``fraction`` of records; night 2 adds those records as new files (``<name>_new.<ext>``), the
way a source system's next export arrives. The records at the end of each file belong to the
persons generated last, so night 2 is mostly new customers with their orders and events.

Splitting is generic (records of CSV, lines of JSON Lines, sheet rows of XLSX), runs once per
dataset and is cached beside it.
"""

from __future__ import annotations

import csv
import re
import shutil
import zipfile
from pathlib import Path

import fastexcel
import xlsxwriter

from transforms.readers import detect_encoding


def split_nights(dataset: Path, fraction: float) -> tuple[Path, Path]:
    """(night1, night2) folders beside ``dataset``; night2 holds only the new files."""
    out = dataset.with_name(f"{dataset.name}_nights{fraction:g}")
    night1, night2 = out / "night1", out / "night2"
    if (out / "DONE").exists():
        return night1, night2
    shutil.rmtree(out, ignore_errors=True)
    for group in _file_groups(dataset):
        # Files of one export split in parts (orders_01, orders_02, ...) are one sequence:
        # its last records are at the end of the last part.
        *earlier, last = group
        total = sum(_records(p) for p in group)
        new_records = total - _cut(total, fraction)
        for path in earlier:
            target = night1 / path.relative_to(dataset)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target)
        rel = last.relative_to(dataset)
        old, new = night1 / rel, night2 / rel.with_name(f"{last.stem}_new{last.suffix}")
        old.parent.mkdir(parents=True, exist_ok=True)
        new.parent.mkdir(parents=True, exist_ok=True)
        SPLITTERS[last.suffix](last, old, new, _records(last) - new_records)
    shutil.copy(dataset / "ground_truth.csv", out / "ground_truth.csv")
    (out / "DONE").touch()
    return night1, night2


def _cut(total: int, fraction: float) -> int:
    """Records kept for night 1 (night 2 gets at least one when there are two)."""
    return total - min(max(round(total * fraction), 1), max(total - 1, 0))


def _file_groups(dataset: Path) -> list[list[Path]]:
    groups: dict[tuple[Path, str], list[Path]] = {}
    for path in sorted(dataset.rglob("*")):
        if path.is_file() and path.suffix in SPLITTERS and path.name != "ground_truth.csv":
            groups.setdefault((path.parent, re.sub(r"_\d+$", "", path.stem)), []).append(path)
    return list(groups.values())


def _records(path: Path) -> int:
    if path.suffix == ".xlsx":   # the sheet's <dimension ref="A1:J500002">, minus title and header
        with zipfile.ZipFile(path) as z, z.open("xl/worksheets/sheet1.xml") as fh:
            found = re.search(rb'<dimension ref="[A-Z]+\d+:[A-Z]+(\d+)"', fh.read(4096))
        if found:
            return int(found.group(1)) - 2
        return fastexcel.read_excel(str(path)).load_sheet(0, header_row=1, dtypes="string").height
    if path.suffix == ".csv":
        with open(path, encoding=detect_encoding(path), newline="") as fh:
            return sum(1 for _ in csv.reader(fh)) - 1
    with open(path, "rb") as fh:
        return sum(1 for _ in fh)


def _split_csv(path: Path, old: Path, new: Path, keep: int) -> None:
    encoding = detect_encoding(path)
    with (open(path, encoding=encoding, newline="") as src,
          open(old, "w", encoding=encoding, newline="") as a,
          open(new, "w", encoding=encoding, newline="") as b):
        reader = csv.reader(src)
        header = next(reader)
        wa, wb = csv.writer(a), csv.writer(b)
        wa.writerow(header)
        wb.writerow(header)
        for i, row in enumerate(reader):
            (wa if i < keep else wb).writerow(row)


def _split_lines(path: Path, old: Path, new: Path, keep: int) -> None:
    with open(path, "rb") as src, open(old, "wb") as a, open(new, "wb") as b:
        for i, line in enumerate(src):
            (a if i < keep else b).write(line)


def _split_xlsx(path: Path, old: Path, new: Path, keep: int) -> None:
    """Sheet 1: a title row, the header row, then records (the ERP exports' layout)."""
    reader = fastexcel.read_excel(str(path))
    name = reader.sheet_names[0]
    title = reader.load_sheet(0, header_row=None, n_rows=1, dtypes="string").to_arrow()
    sheet = reader.load_sheet(0, header_row=1, dtypes="string").to_arrow()
    for target, part in ((old, sheet.slice(0, keep)), (new, sheet.slice(keep))):
        book = xlsxwriter.Workbook(str(target), {"constant_memory": True})
        ws = book.add_worksheet(name)
        ws.write_row(0, 0, [v for v in title.to_pylist()[0].values() if v is not None])
        ws.write_row(1, 0, sheet.column_names)
        for r, values in enumerate(zip(*(c.to_pylist() for c in part.columns), strict=True)):
            for c, value in enumerate(values):
                if value is not None:
                    ws.write_string(r + 2, c, value)
        book.close()


SPLITTERS = {".csv": _split_csv, ".jsonl": _split_lines, ".xlsx": _split_xlsx}
