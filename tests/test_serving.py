"""The serving file: a night starts from the published file and brings the history tables up
to date day by day; what it serves must equal the working warehouse, as a fresh file would."""

import datetime as dt

import duckdb

from transforms.serving import build_serving_file, swap_into_place

DAY = dt.date(2026, 11, 3)


def served_equals_working(con, serving) -> bool:
    con.execute(f"ATTACH '{serving}' AS s (READ_ONLY)")
    try:
        return all(con.execute(f"""SELECT count(*) FROM (
            (SELECT * FROM {t} EXCEPT ALL SELECT * FROM s.{t})
            UNION ALL (SELECT * FROM s.{t} EXCEPT ALL SELECT * FROM {t}))""").fetchall()[0][0] == 0
            for t in ("history.profile_snapshots", "profile.tag_changes",
                      "profile.customer_profile"))
    finally:
        con.execute("DETACH s")


def publish(con, serving, day, run_id):
    swap_into_place(build_serving_file(con, serving, run_id, day), serving)


def test_a_night_syncs_the_served_history_by_day_and_copies_the_rest(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("CREATE SCHEMA history; CREATE SCHEMA profile")
    con.execute("CREATE TABLE profile.customer_profile AS "
                "SELECT 'C1' AS customer_id, '张伟' AS name, '+8613800138000' AS phone")
    con.execute("""CREATE TABLE history.profile_snapshots AS
        SELECT DATE '2026-11-01' + d::INT AS snapshot_date, 'C' || c AS customer_id,
               d * 10 + c AS score FROM range(3) r(d), range(2) s(c)""")
    con.execute("CREATE TABLE profile.tag_changes AS "  # a change recorded without a date
                "SELECT NULL::DATE AS snapshot_date, 'r0' AS run_id, 'vip' AS tag_id")
    serving = tmp_path / "serving" / "profiles.duckdb"
    publish(con, serving, DAY, "r1")
    assert served_equals_working(con, serving)

    # Next night: a new day, the oldest day pruned, a customer forgotten on an older day, a
    # new profile column; then the same day published again with changed (same count) rows.
    next_day = DAY + dt.timedelta(days=1)
    con.execute("INSERT INTO history.profile_snapshots VALUES (?, 'C0', 30), (?, 'C1', 31)",
                [next_day, next_day])
    con.execute("DELETE FROM history.profile_snapshots WHERE snapshot_date = '2026-11-01' "
                "OR (snapshot_date = '2026-11-02' AND customer_id = 'C1')")
    con.execute("INSERT INTO profile.tag_changes VALUES (?, 'r2', 'vip')", [next_day])
    con.execute("ALTER TABLE profile.customer_profile ADD COLUMN city VARCHAR DEFAULT '广州'")
    publish(con, serving, next_day, "r2")
    assert served_equals_working(con, serving)
    con.execute("UPDATE history.profile_snapshots SET score = -1 WHERE snapshot_date = ?",
                [next_day])
    publish(con, serving, next_day, "r3")
    assert served_equals_working(con, serving)
    # A history table whose columns changed is copied whole.
    con.execute("ALTER TABLE history.profile_snapshots ADD COLUMN segment VARCHAR")
    publish(con, serving, next_day, "r4")
    assert served_equals_working(con, serving)
    with duckdb.connect(str(serving), read_only=True) as served:
        assert served.execute("SELECT run_id FROM meta.publish_info").fetchall() == [("r4",)]
        assert served.execute("SELECT phone FROM analyst.customer_profile").fetchall() == [
            ("138****8000",)]
