"""Parquet exports for BI: hive-partitioned by snapshot date, written aside and renamed in.

A reader never sees a half-written partition: the files are written into a temporary folder
next to the target, a _SUCCESS marker is added, and the folder is renamed into place (an atomic
rename on one filesystem). The previous partition of the same date is replaced whole.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import uuid
from pathlib import Path

from transforms.sql import quote_literal


def export_table(con, table: str, name: str, exports_dir: Path, snapshot: dt.date) -> Path:
    target = exports_dir / name / f"snapshot_date={snapshot.isoformat()}"
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".tmp-{target.name}-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        con.execute(
            f"COPY (SELECT * FROM {table}) TO {quote_literal(str(staging / 'data.parquet'))} "
            "(FORMAT parquet, COMPRESSION zstd)"
        )
        (staging / "_SUCCESS").write_text("")
        if target.exists():  # replace: move the old one aside first, then swap
            old = target.parent / f".old-{target.name}-{uuid.uuid4().hex[:8]}"
            os.rename(target, old)
            os.rename(staging, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target / "data.parquet"
