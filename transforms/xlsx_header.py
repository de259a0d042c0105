"""The header row of an XLSX sheet without parsing the sheet.

fastexcel (calamine) parses a whole sheet even for ``n_rows=0``: 4 s for a 500,000-row order
export, paid again for every file on every night just to check its columns. This streams the
sheet XML and stops after the header row. Anything unusual (a header cell that is not text, a
gap between header cells, a sheet it cannot find) returns None and the caller falls back to
fastexcel. The names are those fastexcel gives, except that data columns without a header
cell are not listed (fastexcel calls them __UNNAMED__n): no mapping can name them anyway.
"""

from __future__ import annotations

import posixpath
import zipfile
from pathlib import Path
from xml.etree.ElementTree import iterparse

from xlsxwriter.utility import xl_cell_to_rowcol

_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_PKG_REL = "{http://schemas.openxmlformats.org/package/2006/relationships}"


def xlsx_header(path: Path, sheet: str | int | None, header_row: int) -> list[str] | None:
    try:
        with zipfile.ZipFile(path) as z:
            target = _sheet_part(z, sheet)
            if target is None:
                return None
            cells = _row_cells(z, target, header_row)
            if cells is None:
                return None
            shared = _shared_strings(z, {int(v) for t, v in cells.values() if t == "s"})
    except (zipfile.BadZipFile, KeyError, OSError, ValueError, SyntaxError):
        return None
    if not cells or sorted(cells) != list(range(len(cells))):
        return None
    names = []
    for col in range(len(cells)):
        kind, value = cells[col]
        text = shared.get(int(value)) if kind == "s" else value if kind in ("inlineStr", "str") else None
        if text is None or not text.strip():
            return None
        names.append(text)
    return names


def _sheet_part(z: zipfile.ZipFile, sheet: str | int | None) -> str | None:
    sheets = [(s.get("name"), s.get(_REL + "id"))
              for _, s in iterparse(z.open("xl/workbook.xml")) if s.tag == _MAIN + "sheet"]
    if isinstance(sheet, str):
        chosen = next((rid for name, rid in sheets if name == sheet), None)
    else:
        index = sheet or 0
        chosen = sheets[index][1] if index < len(sheets) else None
    rels = {r.get("Id"): r.get("Target") for _, r in iterparse(z.open("xl/_rels/workbook.xml.rels"))
            if r.tag == _PKG_REL + "Relationship"}
    target = rels.get(chosen)
    if target is None:
        return None
    return target.lstrip("/") if target.startswith("/") else posixpath.join("xl", target)


def _row_cells(z: zipfile.ZipFile, part: str, row_number: int) -> dict[int, tuple[str, str]] | None:
    """column index → (cell type, raw value) of one row; stops reading after it."""
    with z.open(part) as fh:
        for _, el in iterparse(fh):
            if el.tag != _MAIN + "row":
                continue
            number = int(el.get("r", "0"))
            if number < row_number:
                el.clear()
                continue
            if number > row_number:
                return {}
            cells = {}
            for c in el.iter(_MAIN + "c"):
                ref = c.get("r")
                col = xl_cell_to_rowcol(ref)[1] if ref else None
                kind = c.get("t", "n")
                if kind == "inlineStr":
                    value = "".join(t.text or "" for t in c.iter(_MAIN + "t"))
                else:
                    v = c.find(_MAIN + "v")
                    value = v.text if v is not None else None
                if col is None or value is None:
                    return None
                cells[col] = (kind, value)
            return cells
    return {}


def _shared_strings(z: zipfile.ZipFile, wanted: set[int]) -> dict[int, str]:
    if not wanted:
        return {}
    found, last = {}, max(wanted)
    with z.open("xl/sharedStrings.xml") as fh:
        index = 0
        for _, el in iterparse(fh):
            if el.tag != _MAIN + "si":
                continue
            if index in wanted:
                found[index] = "".join(t.text or "" for t in el.iter(_MAIN + "t"))
            el.clear()
            if index >= last:
                break
            index += 1
    return found
