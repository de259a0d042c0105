"""The serving file analysts open: built beside the published one, then renamed over it.

The working warehouse is the pipeline's scratch space (one writer, half-built while a run is
going). Analysts and BI read ``serving.duckdb`` instead: a fresh file written next to it under
a hidden name and moved into place with one atomic ``rename`` once every blocking check passed.
An analyst's open read-only connection keeps reading the old file (the inode stays alive until
they disconnect) and is never blocked; a new connection sees the new file whole. A run killed
mid-way leaves a hidden ``.*.tmp`` file that the next publish removes.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from pathlib import Path

import duckdb

from transforms.privacy import masked_select
from transforms.sql import describe, quote_literal

# Tables copied whole (schema.table); every table of the marts schema is copied as well.
SERVED_TABLES = [
    "profile.customer_profile", "profile.customer_tags", "profile.tag_catalog",
    "profile.tag_changes", "profile.customer_segments", "profile.data_dictionary",
    "history.profile_snapshots", "history.profile_changes", "identity.id_lookup",
]
# Analyst views without PII: analyst.<name> over the served table.
ANALYST_VIEWS = {"customer_profile": "profile.customer_profile"}


def remove_stale(serving_path: Path) -> list[str]:
    stale = sorted(serving_path.parent.glob(f".{serving_path.name}.*.tmp*"))
    for path in stale:
        path.unlink(missing_ok=True)
    return [str(p) for p in stale]


def served_tables(con) -> list[str]:
    marts = [f"marts.{t}" for (t,) in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'marts' "
        "AND table_catalog = current_database() ORDER BY 1").fetchall()]
    existing = {f"{s}.{t}" for s, t in con.execute(
        "SELECT table_schema, table_name FROM information_schema.tables "
        "WHERE table_catalog = current_database()").fetchall()}
    return [t for t in SERVED_TABLES if t in existing] + marts


def build_serving_file(con, serving_path: Path, run_id: str, snapshot: dt.date) -> Path:
    """Copy the served tables from the working warehouse into a new hidden file; returns it."""
    serving_path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(serving_path)
    tmp = serving_path.with_name(f".{serving_path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tables = served_tables(con)
    con.execute(f"ATTACH {quote_literal(str(tmp))} AS _serving")
    try:
        for schema in sorted({t.split(".")[0] for t in tables} | {"meta"}):
            con.execute(f"CREATE SCHEMA _serving.{schema}")
        for table in tables:
            con.execute(f"CREATE TABLE _serving.{table} AS SELECT * FROM {table}")
        con.execute(
            "CREATE TABLE _serving.meta.publish_info AS SELECT ?::VARCHAR AS run_id, "
            "?::DATE AS snapshot_date, now()::TIMESTAMP AS published_at, ?::VARCHAR[] AS tables",
            [run_id, snapshot, tables])
        # The view SQL is stored in the file: built from the serving file's own tables.
        views = {name: masked_select(list(describe(con, source)), source, salt=None)
                 for name, source in ANALYST_VIEWS.items()}
    finally:
        con.execute("DETACH _serving")
    with duckdb.connect(str(tmp)) as serving:
        serving.execute("CREATE SCHEMA analyst")
        for name, sql in views.items():
            serving.execute(f"CREATE VIEW analyst.{name} AS {sql}")
        serving.execute("CHECKPOINT")
    return tmp


def swap_into_place(tmp: Path, serving_path: Path) -> None:
    """The one visible step: an atomic rename over the published file, then fsync the folder."""
    os.replace(tmp, serving_path)
    fd = os.open(serving_path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
