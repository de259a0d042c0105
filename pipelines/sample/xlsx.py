"""Streaming XLSX sheets: a title row, a header row, then data rows, in bounded memory.

xlsxwriter (constant_memory mode) builds the workbook: package, styles, properties and the
title and header rows. Data rows bypass its per-cell path (~35 µs a row, too slow for ten
million order lines): they are rendered to <c> XML elsewhere (in worker processes) with ROW
standing for the row number, and appended here to the temporary row file constant_memory mode
streams from; xlsxwriter then assembles the sheet as usual.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import xlsxwriter
from xlsxwriter.utility import xl_col_to_name

MAX_DATA_ROWS = 500_000   # per file, well under Excel's 1,048,576-row limit
ROW = "\x01"              # placeholder for the row number in rendered cells


def _text_cell(ref: str, value: str) -> str:
    if value[0] == " " or value[-1] == " " or "&" in value or "<" in value or ">" in value:
        value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        if value[0] == " " or value[-1] == " ":
            return (f'<c r="{ref}{ROW}" t="inlineStr">'
                    f'<is><t xml:space="preserve">{value}</t></is></c>')
    return f'<c r="{ref}{ROW}" t="inlineStr"><is><t>{value}</t></is></c>'


class RowRenderer:
    """Renders a row's cells for a sheet with `columns` columns."""

    def __init__(self, columns: int):
        self._refs = [xl_col_to_name(c) for c in range(columns)]

    def cells(self, values: list | tuple) -> str:
        """str → inline string cell, int/float → number cell, None or "" → no cell."""
        parts = []
        for ref, value in zip(self._refs, values, strict=True):
            kind = value.__class__
            if kind is str:
                if value:
                    parts.append(_text_cell(ref, value))
            elif kind is int:
                parts.append(f'<c r="{ref}{ROW}"><v>{value}</v></c>')
            elif value is not None:
                parts.append(f'<c r="{ref}{ROW}"><v>{value:.16G}</v></c>')
        return "".join(parts)

    def plain(self, kinds: str):
        """A faster cells() for rows of fixed types ("s" string, "n" number) whose strings are
        non-empty and need no XML escaping; the caller guarantees both."""
        template = "".join(
            f'<c r="{ref}{ROW}" t="inlineStr"><is><t>{{}}</t></is></c>' if kind == "s"
            else f'<c r="{ref}{ROW}"><v>{{!r}}</v></c>'
            for ref, kind in zip(self._refs, kinds, strict=True))
        return template.format


class SheetStream:
    """One workbook with one sheet: append() rendered rows, then close()."""

    def __init__(self, path: Path, sheet: str, title: str, header: list[str],
                 created: dt.datetime):
        self.path = path
        self.rows = 0
        self._ncols = len(header)
        self._book = xlsxwriter.Workbook(str(path), {"constant_memory": True})
        # A fixed creation time: same inputs, byte-identical file.
        self._book.set_properties({"created": created})
        ws = self._book.add_worksheet(sheet)
        ws.write_string(0, 0, title)
        for col, name in enumerate(header):
            ws.write_string(1, col, name)
        ws._write_single_row(2)  # flush the header row into the row file; data follows it
        self._ws = ws
        self._write = ws.row_data_fh.write

    def append(self, cells: str) -> None:
        r = str(self.rows + 3)   # 1-based: title, header, then data
        self._write(f'<row r="{r}">{cells.replace(ROW, r)}</row>')
        self.rows += 1

    def close(self) -> None:
        ws = self._ws
        # Tell xlsxwriter how far the data reaches (it sizes the <dimension> from this).
        ws._check_dimensions(self.rows + 1, self._ncols - 1)
        ws.previous_row = self.rows + 2
        self._book.close()
