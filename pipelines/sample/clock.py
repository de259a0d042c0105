"""The generated time window and fast conversions of its timestamps.

Every timestamp is an int: seconds since 00:00 (Asia/Shanghai) of the window's first day. That
keeps behaviour code free of datetime objects (slow at millions of rows); the writers turn the
ints into the text, Excel serial or unix forms each export uses.
"""

from __future__ import annotations

import calendar
from datetime import date, timedelta

DAY = 86_400
_EXCEL_EPOCH = date(1899, 12, 30)
_SHANGHAI_OFFSET = 8 * 3600  # no daylight saving since 1991


class Window:
    def __init__(self, end: date, years: int):
        try:
            start = end.replace(year=end.year - years)
        except ValueError:  # 29 February
            start = end.replace(year=end.year - years, day=28)
        self.start = start
        self.end = end
        self.days = (end - start).days + 1
        self.last_t = self.days * DAY - 1
        self.start_weekday = start.weekday()
        dates = [start + timedelta(days=d) for d in range(self.days)]
        self.dates = dates
        self.iso = [d.isoformat() for d in dates]
        self.slashed = [f"{d.year}/{d.month}/{d.day}" for d in dates]
        self.compact = [f"{d.year}{d.month:02d}{d.day:02d}" for d in dates]
        # 双11 and 618: the shopping festivals that pull extra orders forward.
        self.promo_days = [d for d, day in enumerate(dates) if (day.month, day.day) in
                           ((11, 11), (6, 18))]
        self.excel_base = (start - _EXCEL_EPOCH).days
        self.unix_base = calendar.timegm(start.timetuple()) - _SHANGHAI_OFFSET

    def weekday(self, day: int) -> int:
        return (self.start_weekday + day) % 7

    def datetime_text(self, t: int) -> str:
        """2024-05-06 14:03:22"""
        day, sec = divmod(t, DAY)
        h, rem = divmod(sec, 3600)
        return f"{self.iso[day]} {h:02d}:{rem // 60:02d}:{rem % 60:02d}"

    def datetime_text_short(self, t: int) -> str:
        """2024/5/6 14:03 (the other common CRM export form)."""
        day, sec = divmod(t, DAY)
        h, rem = divmod(sec, 3600)
        return f"{self.slashed[day]} {h:02d}:{rem // 60:02d}"

    def excel_serial(self, t: int) -> float:
        return round(self.excel_base + t / DAY, 8)

    def excel_date(self, day: int) -> int:
        return self.excel_base + day

    def unix(self, t: int) -> int:
        return self.unix_base + t
