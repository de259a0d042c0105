"""Operating it nightly: publishing is atomic, a killed run damages nothing, analysts are never
blocked, exports read the same in three readers, forgetting a person is complete and lasting,
schema drift stops the run, alerts reach a group robot. Real builds on the hand-made exports."""

import hashlib
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.dataset as pads
import pytest
from handmade import write_exports

from pipelines.alerts import root_message
from pipelines.cli import main
from pipelines.config import REPO_ROOT
from pipelines.definitions import build_definitions

NEW_CRM = ("客户编号,客户名称,手机,邮箱,性别,出生日期,省份,城市,地址,行业,客户来源,客户阶段,负责人,"
           "创建时间,营销授权\n"
           "KH010,周杰,13600136000,zj@qq.com,男,1992-02-02,浙江,杭州,,IT/互联网,官网,线索,李雷,"
           "2026-11-21,是\n")


def build(raise_on_error=True):
    result = build_definitions().resolve_job_def("nightly_rebuild").execute_in_process(
        raise_on_error=raise_on_error,
        run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}})
    return result


def env_for(root: Path) -> dict:
    return {"PROFILES_LANDING": str(root / "landing"),
            "PROFILES_WAREHOUSE": str(root / "warehouse" / "profiles.duckdb"),
            "PROFILES_EXPORTS": str(root / "exports"), "PROFILES_LOG_LEVEL": "ERROR",
            "PROFILES_PII_SALT": "test-salt"}


def visible_files(folder: Path) -> dict[str, str]:
    """Every published file (hidden work files excluded) → sha256 of its content."""
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if path.is_file() and not any(part.startswith(".") for part in rel.parts):
            out[str(rel)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def hidden_files(folder: Path) -> list[str]:
    return [str(p) for p in folder.rglob(".*")]


@pytest.fixture
def landed(tmp_path, monkeypatch):
    write_exports(tmp_path / "landing")
    for key, value in env_for(tmp_path).items():
        monkeypatch.setenv(key, value)
    return tmp_path


ANALYST = """
import sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
q = "SELECT count(*), (SELECT run_id FROM meta.publish_info) FROM profile.customer_profile"
print(con.execute(q).fetchall(), flush=True)
sys.stdin.readline()  # the killed runs and the rebuild happen here
print(con.execute(q).fetchall(), flush=True)
"""


def test_killed_runs_damage_nothing_and_an_open_analyst_connection_survives(landed):
    root = landed
    assert build().success
    serving, exports = root / "serving" / "profiles.duckdb", root / "exports"
    published = (hashlib.sha256(serving.read_bytes()).hexdigest(), visible_files(exports))
    assert len(published[1]) >= 22  # 11 exports × (data.parquet + _SUCCESS) + latest links
    # An analyst holds a read-only connection to the serving file through everything below.
    analyst = subprocess.Popen([sys.executable, "-c", ANALYST, str(serving)], text=True,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    before = analyst.stdout.readline()
    # New data lands, so a half-done publish would show; then the build is killed (SIGKILL,
    # no cleanup) at a step, after the exports were written aside, after the serving file was.
    (root / "landing" / "crm" / "customers_20261121.csv").write_bytes(NEW_CRM.encode("gb18030"))
    for point in ("customer_identity", "publish:exports_staged", "publish:serving_built"):
        killed = subprocess.run(
            [sys.executable, "-m", "pipelines.cli", "build"], cwd=REPO_ROOT,
            env={**os.environ, **env_for(root), "PROFILES_CRASH_AT": point},
            capture_output=True, text=True, timeout=600)
        assert killed.returncode == -signal.SIGKILL, (point, killed.stderr[-2000:])
        assert hashlib.sha256(serving.read_bytes()).hexdigest() == published[0], point
        assert visible_files(exports) == published[1], point
    assert hidden_files(exports) or hidden_files(serving.parent)  # the kills left work files
    # The next run needs no cleanup by hand and is not blocked by the analyst: it succeeds,
    # publishes the new data and tidies up.
    assert build().success
    assert hidden_files(exports) == [] and hidden_files(serving.parent) == []
    analyst.stdin.write("\n")
    analyst.stdin.flush()
    after = analyst.stdout.readline()
    assert analyst.wait(timeout=60) == 0
    assert before == after  # the old file, whole, for as long as the connection lives
    with duckdb.connect(str(serving), read_only=True) as con:  # a new connection: the new file
        count, run_id = con.execute("SELECT count(*), (SELECT run_id FROM meta.publish_info) "
                                    "FROM profile.customer_profile").fetchall()[0]
        assert con.execute("SELECT count(*) FROM profile.customer_profile WHERE name = '周杰'"
                           ).fetchall() == [(1,)]
    assert count == eval(before)[0][0] + 1 and run_id not in before


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """One build shared by tests that only read what it published (or, for schema drift,
    prove that a failed run leaves it alone)."""
    root = tmp_path_factory.mktemp("published")
    write_exports(root / "landing")
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env_for(root).items():
            mp.setenv(key, value)
        assert build().success
        yield root


def test_exports_read_the_same_in_duckdb_polars_and_pyarrow(published):
    root = published
    for name in ("profile", "customer_tags", "segments", "segment_summary"):
        folder = root / "exports" / name
        columns = ["snapshot_date", "customer_key"] if name != "segment_summary" else [
            "snapshot_date", "segment_id"]
        by_duckdb = duckdb.sql(
            f"SELECT {', '.join(columns)} FROM read_parquet('{folder}/*/*.parquet', "
            "hive_partitioning = true)").fetchall()
        by_polars = pl.scan_parquet(f"{folder}/**/*.parquet", hive_partitioning=True
                                    ).select(columns).collect().rows()
        by_arrow = pads.dataset(folder, format="parquet", partitioning="hive"
                                ).to_table(columns=columns).to_pylist()
        norm = sorted((str(r[0]), r[1]) for r in by_duckdb)
        assert norm and norm == sorted((str(r[0]), r[1]) for r in by_polars)
        assert norm == sorted((str(r["snapshot_date"]), r[columns[1]]) for r in by_arrow)
    # latest/ points at today's file; PII is masked, the schema is the contract's.
    latest = pl.read_parquet(root / "exports" / "latest" / "profile.parquet")
    zhang = latest.filter(pl.col("name") == "张*").row(0, named=True)
    assert zhang["phone"] == "138****8000" and len(zhang["email"]) == 64
    assert "customer_id" not in latest.columns and "address" not in latest.columns
    assert zhang["birth_year"] == 1985
    # Tags are keyed like the profile (their keys are hashed once per customer, then joined).
    tagged = pl.read_parquet(root / "exports" / "latest" / "customer_tags.parquet")
    assert tagged["customer_key"].null_count() == 0
    assert set(tagged["customer_key"]) <= set(latest["customer_key"])
    success = json.loads(next((root / "exports" / "profile").glob("*/_SUCCESS")).read_text())
    assert success["rows"] == latest.height and success["schema_version"] >= 1


def everything_holding(root: Path, needles: list[str]) -> list[str]:
    """Every table (working warehouse, serving file) and Parquet file with a needle in any
    column, as text."""
    found = []
    for db in (root / "warehouse" / "profiles.duckdb", root / "serving" / "profiles.duckdb"):
        with duckdb.connect(str(db), read_only=True) as con:
            tables = con.execute("SELECT table_schema || '.' || table_name FROM "
                                 "information_schema.tables").fetchall()
            for (table,) in tables:
                cond = " OR ".join(f"contains(t::VARCHAR, '{n}')" for n in needles)
                if con.execute(f"SELECT count(*) FROM {table} t WHERE {cond}").fetchall()[0][0]:
                    found.append(f"{db.name}:{table}")
    for parquet in (root / "exports").rglob("*.parquet"):
        cond = " OR ".join(f"contains(t::VARCHAR, '{n}')" for n in needles)
        if duckdb.sql(f"SELECT count(*) FROM read_parquet('{parquet}', hive_partitioning = false)"
                      f" t WHERE {cond}").fetchall()[0][0]:
            found.append(str(parquet))
    return found


def test_forget_removes_a_person_everywhere_and_for_good(landed, capsys):
    root = landed
    assert build().success
    needles = ["13800138000", "zw@qq.com", "张伟"]
    assert everything_holding(root, needles)  # before: everywhere
    key = pl.read_parquet(root / "exports" / "latest" / "profile.parquet").filter(
        pl.col("name") == "张*")["customer_key"][0]
    assert main(["forget", "--phone", "138-0013-8000"]) == 0
    assert "1 customer(s)" in capsys.readouterr().out
    assert everything_holding(root, needles + [key]) == []
    with duckdb.connect(str(root / "warehouse" / "profiles.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(DISTINCT kind) FROM privacy.tombstones").fetchall()[0][0] >= 4
        assert con.execute("SELECT bool_and(balanced) FROM staging.file_accounting"
                           ).fetchall() == [(True,)]
    # An old export re-sent (new bytes: one more customer) brings back only the new customer.
    resent = (root / "landing" / "crm" / "customers.csv").read_bytes().decode("gb18030").rstrip()
    (root / "landing" / "crm" / "customers_resent.csv").write_bytes(
        (resent + "\n" + NEW_CRM.splitlines()[1] + "\n").encode("gb18030"))
    assert build().success
    assert everything_holding(root, needles + [key]) == []
    with duckdb.connect(str(root / "serving" / "profiles.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM profile.customer_profile WHERE name = '周杰'"
                           ).fetchall() == [(1,)]
    with duckdb.connect(str(root / "warehouse" / "profiles.duckdb"), read_only=True) as con:
        resent_row = con.execute("""SELECT rows_read, rows_loaded, rows_rejected, rows_forgotten
            FROM raw.file_registry WHERE source_file LIKE '%customers_resent.csv'""").fetchall()
        assert resent_row == [(8, 5, 1, 2)]  # KH001 and KH009 are both 张伟
        assert con.execute("SELECT bool_and(balanced) FROM staging.file_accounting"
                           ).fetchall() == [(True,)]


def test_schema_drift_stops_the_run_and_publishes_nothing(published):
    root = published
    serving = root / "serving" / "profiles.duckdb"
    published = (serving.read_bytes(), visible_files(root / "exports"))
    header, *rows = (root / "landing" / "crm" / "customers.csv").read_bytes().decode(
        "gb18030").splitlines()
    drifted = header.replace("手机", "手机号码") + ",微信号"
    (root / "landing" / "crm" / "customers_20261122.csv").write_text(
        "\n".join([drifted] + [r + ",wx" for r in rows[:2]]) + "\n", encoding="utf-8")
    result = build(raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    message = root_message(failure.step_failure_data.error)
    assert "customers_20261122.csv lacks mapped column(s) '手机' (field phone)" in message
    assert "['微信号', '手机号码']" in message
    assert (serving.read_bytes(), visible_files(root / "exports")) == published


class _Robot(http.server.BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Robot.received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b'{"errcode": 0, "errmsg": "ok"}')

    def log_message(self, *args):
        pass


def test_a_failed_run_posts_a_robot_message(monkeypatch):
    from dagster import (
        DagsterInstance,
        DefaultSensorStatus,
        build_run_status_sensor_context,
        job,
        op,
    )

    from pipelines.alerts import alert_sensors

    server = http.server.HTTPServer(("127.0.0.1", 0), _Robot)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("PROFILES_ALERT_WEBHOOK", f"http://127.0.0.1:{server.server_port}/send")

    @op
    def load_erp_orders():
        raise ValueError("orders_99.xlsx: not a valid XLSX file")

    @job
    def nightly():
        load_erp_orders()

    instance = DagsterInstance.ephemeral()
    result = nightly.execute_in_process(instance=instance, raise_on_error=False)
    on_failure, _ = alert_sensors(DefaultSensorStatus.STOPPED)
    context = build_run_status_sensor_context(
        sensor_name="alert_on_run_failure", dagster_instance=instance,
        dagster_run=result.dagster_run, dagster_event=result.get_run_failure_event(),
    ).for_run_failure()
    _Robot.received.clear()
    on_failure(context)
    server.shutdown()
    [message] = _Robot.received
    assert message["msgtype"] == "text"  # the shape WeCom and DingTalk robots both accept
    content = message["text"]["content"]
    assert content.startswith("客户画像 ") and "nightly" in content
    assert "load_erp_orders" in content and "orders_99.xlsx" in content


def test_recovery_undoes_what_a_publish_killed_between_renames_left(tmp_path):
    from transforms.export import recover_exports

    profile, tags, latest = (tmp_path / n for n in ("profile", "customer_tags", "latest"))
    for folder in (profile / ".tmp-snapshot_date=2026-11-21-aaaa1111",
                   profile / ".old-snapshot_date=2026-11-20-bbbb2222",  # new one never arrived
                   tags / "snapshot_date=2026-11-20",
                   tags / ".old-snapshot_date=2026-11-20-cccc3333", latest):  # replaced
        folder.mkdir(parents=True)
    (profile / ".old-snapshot_date=2026-11-20-bbbb2222" / "data.parquet").write_text("old")
    os.symlink("../profile/snapshot_date=2026-11-20/data.parquet", latest / ".profile.dddd4444")
    recover_exports(tmp_path)
    assert hidden_files(tmp_path) == []
    assert (profile / "snapshot_date=2026-11-20" / "data.parquet").read_text() == "old"
    assert (tags / "snapshot_date=2026-11-20").is_dir()
