"""Memory safety: the warehouse connection spills to its temp directory instead of failing
when the work is larger than the memory limit (the whole build under a low limit is in
tests/test_sample_build.py)."""

from handmade import write_config

from pipelines.config import load_config
from pipelines.resources import open_warehouse


def test_work_larger_than_the_memory_limit_spills_to_the_temp_directory(tmp_path):
    cfg = load_config(write_config(tmp_path / "cfg", lambda d: d["warehouse"].update(
        memory_limit="64MB", threads=1, path=str(tmp_path / "wh" / "profiles.duckdb"))))
    con = open_warehouse(cfg)
    try:
        assert con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0] == "61.0 MiB"
        # ~250 MB of rows held in a temp table: four times the limit must go to disk.
        con.execute("""CREATE TEMP TABLE big AS
                       SELECT i, md5(i::VARCHAR) || md5((i + 1)::VARCHAR) AS s
                       FROM range(3000000) t(i)""")
        spilled = con.execute("SELECT path, size FROM duckdb_temporary_files()").fetchall()
        assert spilled and all(path.startswith(str(tmp_path / "wh" / "duckdb_tmp"))
                               for path, _ in spilled)
        assert sum(size for _, size in spilled) > 64 * 2**20
        # A sort and a grouping over it, each bigger than memory, still complete.
        assert con.execute("SELECT count(DISTINCT s), max(s) FROM (SELECT s FROM big ORDER BY s)"
                           ).fetchall()[0][0] == 3000000
    finally:
        con.close()


def test_freed_memory_is_kept_up_to_the_limit_unless_switched_off(tmp_path):
    flush = "SELECT current_setting('allocator_bulk_deallocation_flush_threshold')"
    seen = {}
    for keep in (True, False):
        cfg = load_config(write_config(tmp_path / f"cfg{keep}", lambda d, keep=keep: d[
            "warehouse"].update(memory_limit="96MB", keep_freed_memory=keep,
                                path=str(tmp_path / f"wh{keep}" / "profiles.duckdb"))))
        con = open_warehouse(cfg)
        try:
            seen[keep] = con.execute(flush).fetchall()[0][0]
        finally:
            con.close()
    assert seen[True] == "91.5 MiB"  # the memory limit (96 MB)
    assert seen[False] != seen[True]  # DuckDB's default
