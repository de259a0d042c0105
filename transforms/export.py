"""Parquet exports for BI: hive-partitioned by snapshot date, written aside and renamed in.

Layout: ``<exports>/<table>/snapshot_date=YYYY-MM-DD/data.parquet`` plus ``_SUCCESS`` (JSON:
schema version, rows, run id), and ``<exports>/latest/<table>.parquet``, a symlink to today's
file for tools that want only the newest snapshot.

Publishing is two-phase so a crash never leaves a half-written partition in view: every table
is first written to a hidden ``.tmp-*`` folder (``stage_exports``); only when all are written
are they renamed into place (``commit_exports``), old partitions of the same date moved aside
and deleted after. A run killed in between leaves hidden folders that ``recover_exports``
(called at the start of each publish) removes or, for a replaced partition, moves back.

Column names and types are a contract (``export_contract.json``): an export whose schema
differs fails before anything is renamed. Changing it is a deliberate act: run
``profiles export-contract --write``, which bumps the version, and tell the BI users.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from transforms.privacy import customer_key_sql
from transforms.sql import describe, quote_literal

CONTRACT_PATH = Path(__file__).with_name("export_contract.json")
_PARTITION = re.compile(r"^snapshot_date=(\d{4}-\d{2}-\d{2})$")


class ExportContractError(ValueError):
    """An export's columns or types differ from the committed contract."""


@dataclass
class StagedExport:
    name: str
    staging: Path
    target: Path
    rows: int


def load_contract(path: Path = CONTRACT_PATH) -> dict:
    if not path.exists():
        return {"version": 0, "tables": {}}
    return json.loads(path.read_text(encoding="utf-8"))


def contract_problems(name: str, have: dict[str, str], contract: dict) -> list[str]:
    want = contract["tables"].get(name)
    if want is None:
        return [f"{name}: not in the export contract"]
    problems = [f"{name}: column {c} missing (contract: {t})" for c, t in want.items() if c not in have]
    problems += [f"{name}: new column {c} {t}" for c, t in have.items() if c not in want]
    problems += [f"{name}: column {c} is {have[c]}, contract says {t}"
                 for c, t in want.items() if c in have and have[c] != t]
    if not problems and list(have) != list(want):
        problems.append(f"{name}: columns in a different order than the contract")
    return problems


def recover_exports(exports_dir: Path) -> list[str]:
    """Undo what a killed publish left: drop .tmp-* folders, move back a replaced partition
    whose new version never arrived, drop .old-* folders whose replacement is in place."""
    actions = []
    if not exports_dir.exists():
        return actions
    for table_dir in (p for p in exports_dir.iterdir() if p.is_dir()):
        for hidden in sorted(table_dir.glob(".tmp-*")):
            shutil.rmtree(hidden, ignore_errors=True)
            actions.append(f"removed {hidden}")
        if table_dir.name == "latest":  # a symlink made but not yet renamed over the old one
            for link in sorted(table_dir.glob(".*")):
                link.unlink()
                actions.append(f"removed {link}")
        for old in sorted(table_dir.glob(".old-*")):
            partition = table_dir / old.name[len(".old-"):].rsplit("-", 1)[0]
            if partition.exists():
                shutil.rmtree(old, ignore_errors=True)
                actions.append(f"removed {old}")
            else:
                os.rename(old, partition)
                actions.append(f"restored {partition}")
    return actions


def stage_exports(con, selects: dict[str, str], exports_dir: Path, snapshot: dt.date,
                  run_id: str, contract: dict | None) -> list[StagedExport]:
    """Write every export to a hidden folder beside its target; nothing is visible yet."""
    if contract is not None:
        problems = [p for name, sql in selects.items()
                    for p in contract_problems(name, describe(con, sql), contract)]
        if problems:
            raise ExportContractError(
                "exports differ from the contract (transforms/export_contract.json):\n  "
                + "\n  ".join(problems)
                + "\nIf the change is intended, run `profiles export-contract --write` (bumps the "
                  "version) and tell the BI users.")
    version = contract["version"] if contract else 0
    staged = []
    try:
        for name, sql in selects.items():
            target = exports_dir / name / f"snapshot_date={snapshot.isoformat()}"
            target.parent.mkdir(parents=True, exist_ok=True)
            staging = target.parent / f".tmp-{target.name}-{uuid.uuid4().hex[:8]}"
            staging.mkdir()
            staged.append(StagedExport(name, staging, target, 0))
            con.execute(f"COPY ({sql}) TO {quote_literal(str(staging / 'data.parquet'))} "
                        "(FORMAT parquet, COMPRESSION zstd)")
            rows = con.execute("SELECT num_rows FROM parquet_file_metadata(?)",
                               [str(staging / "data.parquet")]).fetchall()[0][0]
            staged[-1].rows = rows
            (staging / "_SUCCESS").write_text(json.dumps(
                {"schema_version": version, "rows": rows, "run_id": run_id}))
    except BaseException:
        for s in staged:
            shutil.rmtree(s.staging, ignore_errors=True)
        raise
    return staged


def commit_exports(staged: list[StagedExport], exports_dir: Path) -> None:
    """Rename every staged folder into place, then point latest/ at the new files."""
    olds = []
    for s in staged:
        if s.target.exists():
            old = s.target.parent / f".old-{s.target.name}-{uuid.uuid4().hex[:8]}"
            os.rename(s.target, old)
            olds.append(old)
        os.rename(s.staging, s.target)
    for old in olds:
        shutil.rmtree(old, ignore_errors=True)
    latest = exports_dir / "latest"
    latest.mkdir(parents=True, exist_ok=True)
    for s in staged:
        link = latest / f"{s.name}.parquet"
        tmp = latest / f".{s.name}.{uuid.uuid4().hex[:8]}"
        os.symlink(os.path.relpath(s.target / "data.parquet", latest), tmp)
        os.replace(tmp, link)  # atomic: a reader sees the old file or the new one


def prune_exports(exports_dir: Path, snapshot: dt.date, retention_days: int) -> list[str]:
    """Delete partitions older than ``retention_days`` before the snapshot date."""
    oldest = snapshot - dt.timedelta(days=retention_days)
    removed = []
    for partition in sorted(exports_dir.glob("*/snapshot_date=*")):
        match = _PARTITION.match(partition.name)
        if match and dt.date.fromisoformat(match.group(1)) < oldest:
            shutil.rmtree(partition)
            removed.append(str(partition))
    return removed


def drop_customers(con, exports_dir: Path, customer_ids: list[str], salt: str) -> int:
    """Remove these customers' rows from every published partition keyed by ``customer_key``
    (used to forget a person); returns the rows removed."""
    if not customer_ids:
        return 0
    keys = ", ".join(quote_literal(k) for (k,) in con.execute(
        f"SELECT {customer_key_sql('c', salt)} FROM unnest(?::VARCHAR[]) t(c)",
        [customer_ids]).fetchall())
    removed = 0
    for parquet in sorted(exports_dir.glob("*/snapshot_date=*/data.parquet")):
        columns = [r[0] for r in con.execute("SELECT name FROM parquet_schema(?)",
                                             [str(parquet)]).fetchall()]
        if "customer_key" in columns:
            removed += _rewrite_partition(con, parquet, f"customer_key NOT IN ({keys})")
    return removed


def _rewrite_partition(con, parquet: Path, where_sql: str) -> int:
    """Rewrite one published file keeping only rows matching ``where_sql``, written aside and
    renamed over the old file. Returns the rows removed."""
    src = quote_literal(str(parquet))
    src = f"read_parquet({src}, hive_partitioning = false)"
    before = con.execute(f"SELECT count(*) FROM {src}").fetchall()[0][0]
    tmp = parquet.with_name(f".{parquet.name}.{uuid.uuid4().hex[:8]}")
    con.execute(f"COPY (SELECT * FROM {src} WHERE {where_sql}) "
                f"TO {quote_literal(str(tmp))} (FORMAT parquet, COMPRESSION zstd)")
    after = con.execute(f"SELECT count(*) FROM read_parquet({quote_literal(str(tmp))}, "
                        "hive_partitioning = false)").fetchall()[0][0]
    if after == before:
        tmp.unlink()
        return 0
    os.replace(tmp, parquet)
    return before - after
