"""The serving file analysts open: built beside the published one, then renamed over it.

The working warehouse is the pipeline's scratch space (one writer, half-built while a run is
going). Analysts and BI read ``serving.duckdb`` instead: a new file written next to it under
a hidden name (starting from a copy of the published one, see build_serving_file) and moved
into place with one atomic ``rename`` once every blocking check passed.
An analyst's open read-only connection keeps reading the old file (the inode stays alive until
they disconnect) and is never blocked; a new connection sees the new file whole. A run killed
mid-way leaves a hidden ``.*.tmp`` file that the next publish removes.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
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
# Tables only appended to and pruned by snapshot_date: a night brings the previous serving
# file's copy up to date day by day instead of copying the whole history (35 days kept).
APPENDED_BY_DATE = ("history.profile_snapshots", "history.profile_changes", "profile.tag_changes")
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


def build_serving_file(con, serving_path: Path, run_id: str, snapshot: dt.date,
                       reuse_previous: bool = True) -> Path:
    """The served tables of the working warehouse in a new hidden file; returns it.

    With ``reuse_previous`` the new file starts as a copy of the published one: the history
    tables (APPENDED_BY_DATE) then take only the dates that differ from it, instead of every
    kept day again; every other table is copied whole. ``reuse_previous=False`` writes a
    fresh file (after a forget: a copied file would keep the deleted rows in its free blocks)."""
    serving_path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(serving_path)
    tmp = serving_path.with_name(f".{serving_path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tables = served_tables(con)
    if reuse_previous and serving_path.exists():
        shutil.copyfile(serving_path, tmp)
    try:
        con.execute(f"ATTACH {quote_literal(str(tmp))} AS _serving")
    except duckdb.Error:  # an unreadable published file: start from nothing
        tmp.unlink(missing_ok=True)
        con.execute(f"ATTACH {quote_literal(str(tmp))} AS _serving")
    try:
        synced = _drop_all_but_history(con, tables)
        con.execute("CHECKPOINT _serving")  # the dropped tables' blocks are reused below
        for schema in sorted({t.split(".")[0] for t in tables} | {"meta"}):
            con.execute(f"CREATE SCHEMA IF NOT EXISTS _serving.{schema}")
        for table in tables:
            if table in synced:
                _sync_by_date(con, table, snapshot)
            else:
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
        serving.execute("CREATE SCHEMA IF NOT EXISTS analyst")
        for name, sql in views.items():
            serving.execute(f"CREATE OR REPLACE VIEW analyst.{name} AS {sql}")
        serving.execute("CHECKPOINT")
    return tmp


def _drop_all_but_history(con, tables: list[str]) -> set[str]:
    """Empty the attached copy except the history tables whose columns are still the working
    warehouse's; returns those (a fresh file: none)."""
    present = {f"{s}.{t}" for s, t in con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = '_serving'"
    ).fetchall()}
    synced = {t for t in APPENDED_BY_DATE if t in present and t in tables
              and describe(con, f"_serving.{t}") == describe(con, t)}
    for table in sorted(present - synced):
        con.execute(f"DROP TABLE _serving.{table}")
    return synced


def _sync_by_date(con, table: str, snapshot: dt.date) -> None:
    """Replace the served rows of each date whose row count differs from the working table's
    (new days, pruned days, rows forgotten) and of the snapshot being published."""
    day = "coalesce(snapshot_date, DATE '0001-01-01')"
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _stale_days AS
        SELECT day FROM (SELECT {day} AS day, count(*) AS n FROM {table} GROUP BY ALL) w
        FULL JOIN (SELECT {day} AS day, count(*) AS n FROM _serving.{table} GROUP BY ALL) s
          USING (day)
        WHERE w.n IS DISTINCT FROM s.n OR day = $snap""", {"snap": snapshot})
    con.execute(f"DELETE FROM _serving.{table} WHERE {day} IN (SELECT day FROM _stale_days)")
    con.execute(f"INSERT INTO _serving.{table} BY NAME SELECT * FROM {table} "
                f"WHERE {day} IN (SELECT day FROM _stale_days)")
    con.execute("DROP TABLE _stale_days")


def swap_into_place(tmp: Path, serving_path: Path) -> None:
    """The one visible step: an atomic rename over the published file, then fsync the folder."""
    os.replace(tmp, serving_path)
    fd = os.open(serving_path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
