"""Benchmark: generate N persons of exports (cached), then run the nightly job exactly as
Dagster does on two nights: night 1 is a full rebuild from an empty warehouse over every export
except the last ``--new`` share of each file's records, as of yesterday; night 2 is an
incremental run as of today, when those records arrive as new files (bench/nights.py).
Prints per-asset wall time for both nights side by side, totals, peak memory and the "floor"
(DuckDB reading every input once with one GROUP BY per file). The incremental night is also
split into the time spent recomputing every customer's date-dependent outputs (EVERYONE) and
the rest.

    .venv/bin/python bench/build_bench.py --persons 100000

Not a timed test: it prints figures and appends them to bench/results/nightly.csv.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import fastexcel
import yaml

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

from bench.nights import split_nights  # noqa: E402


def ensure_dataset(persons: int, seed: int) -> Path:
    from pipelines.sample import generate

    out = BENCH / "cache" / f"p{persons}_s{seed}"
    if not (out / "ground_truth.csv").exists():
        started = time.perf_counter()
        generate(out, persons=persons, seed=seed)
        print(f"generated {persons} persons in {time.perf_counter() - started:.1f}s → {out}")
    return out


def floor_seconds(landing: Path) -> float:
    """Read every input file once and aggregate it: the least any pipeline must spend."""
    con = duckdb.connect()
    started = time.perf_counter()
    for path in sorted(p.resolve() for p in landing.rglob("*") if p.is_file()):
        if path.suffix == ".csv" and path.name != "ground_truth.csv":
            src = path
            if "customers" in path.name or "opportunities" in path.name:  # GB18030: transcode
                src = Path(tempfile.mkstemp(suffix=".csv")[1])
                src.write_text(path.read_text(encoding="gb18030"), encoding="utf-8")
            rel = con.sql(f"SELECT * FROM read_csv('{src}', all_varchar=true, header=false, "
                          "skip=1, ignore_errors=true)")
            rel.aggregate(f'"{rel.columns[0]}", count(*)').fetchall()
            if src != path:
                src.unlink()
        elif path.suffix == ".jsonl":
            con.execute(f"SELECT json_extract_string(line, '$.openid'), count(*) FROM read_csv("
                        f"'{path}', columns={{'line': 'VARCHAR'}}, delim=chr(1), quote='', "
                        "header=false) WHERE json_valid(line) GROUP BY ALL").fetchall()
        elif path.suffix == ".xlsx":
            arrow = fastexcel.read_excel(str(path)).load_sheet(0, header_row=1, dtypes="string"
                                                               ).to_arrow()
            con.register("x", arrow)
            con.execute(f'SELECT "{arrow.column_names[0]}", count(*) FROM x GROUP BY ALL').fetchall()
            con.unregister("x")
    return time.perf_counter() - started


def link_files(source: Path, landing: Path) -> None:
    """Make ``source``'s export files appear in ``landing`` (as a source system drops them)."""
    for path in source.rglob("*"):
        if path.is_file():
            target = landing / path.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(path.resolve())


def use_memory_limit(workdir: Path, memory_limit: str) -> None:
    """Run with the project's profiles.yaml but another DuckDB memory limit (a copy in workdir)."""
    config = yaml.safe_load((BENCH.parent / "profiles.yaml").read_text(encoding="utf-8"))
    config["warehouse"]["memory_limit"] = memory_limit
    (workdir / "profiles.yaml").write_text(yaml.safe_dump(config, allow_unicode=True),
                                           encoding="utf-8")
    os.environ["PROFILES_CONFIG"] = str(workdir / "profiles.yaml")
    os.environ["PROFILES_TAG_RULES"] = str(BENCH.parent / "tag_rules")


# Steps that recompute every customer on every night, whatever changed: day counts, ranks,
# model scores, tags, segments and the profile move with the snapshot date, and everything
# published is rewritten. Plus the features' finish (metadata of customer_features).
EVERYONE = ["customer_predictions", "customer_tags", "customer_segments", "customer_profile",
            "customer_profile_profile_expectations", "profile_history", "marts",
            "published_profile"]


def run_build(landing: Path, workdir: Path, snapshot: dt.date
              ) -> tuple[float, dict[str, float], dict, float]:
    """Total seconds, seconds per step, identity's seconds per stage, features' finish."""
    os.environ["PROFILES_SNAPSHOT_DATE"] = snapshot.isoformat()
    os.environ["PROFILES_LANDING"] = str(landing)
    os.environ["PROFILES_WAREHOUSE"] = str(workdir / "warehouse" / "profiles.duckdb")
    os.environ["PROFILES_EXPORTS"] = str(workdir / "exports")
    from dagster import DagsterInstance

    from pipelines.definitions import build_definitions

    job = build_definitions().resolve_job_def("nightly_rebuild")
    instance = DagsterInstance.ephemeral()
    started = time.perf_counter()
    result = job.execute_in_process(
        instance=instance,
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}})
    total = time.perf_counter() - started
    assert result.success, "build failed"
    steps = {s.step_key: s.end_time - s.start_time
             for s in instance.get_run_step_stats(result.run_id)
             if s.start_time is not None and s.end_time is not None}
    identity = result.asset_materializations_for_node("customer_identity")[0].metadata
    features = result.asset_materializations_for_node("customer_features")[0].metadata
    return (total, steps, identity["seconds_by_step"].value,
            features["seconds_finishing_everyone"].value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--persons", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--new", type=float, default=0.01,
                        help="share of each export's records that arrive on night 2")
    parser.add_argument("--memory-limit", default=None,
                        help="DuckDB memory limit for both nights (default: profiles.yaml's), "
                             "e.g. 2GB to see a rebuild larger than memory spill to disk")
    parser.add_argument("--keep", action="store_true",
                        help="keep the warehouse (to profile a step on it) and print where")
    args = parser.parse_args()
    night1, night2 = split_nights(ensure_dataset(args.persons, args.seed), args.new)
    workdir = Path(tempfile.mkdtemp(prefix="profiles_bench_"))
    landing = workdir / "landing"
    try:
        if args.memory_limit:
            use_memory_limit(workdir, args.memory_limit)
        from pipelines.config import load_config

        memory_limit = load_config(None).warehouse.memory_limit  # read before workdir goes
        link_files(night1, landing)
        (landing / "ground_truth.csv").symlink_to(night1.parent / "ground_truth.csv")
        today = dt.date.today()  # night 2 is the next day, as on a schedule: windows move too
        full, full_steps, full_identity, _ = run_build(landing, workdir, today - dt.timedelta(days=1))
        link_files(night2, landing)
        incremental, incr_steps, incr_identity, incr_finish = run_build(landing, workdir, today)
        floor = floor_seconds(landing)
    finally:
        if args.keep:
            print(f"warehouse kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    print(f"\n{'asset':<40}{'full':>10}{'incremental':>13}")
    for step in sorted(full_steps, key=lambda k: -full_steps[k]):
        print(f"{step:<40}{full_steps[step]:>10.2f}{incr_steps.get(step, 0):>13.2f}")
    for step in full_identity:
        print(f"{'  identity: ' + step:<40}{full_identity[step]:>10.2f}"
              f"{incr_identity.get(step, 0):>13.2f}")
    share = incremental / full
    everyone = incr_finish + sum(incr_steps.get(step, 0) for step in EVERYONE)
    print(f"\nincremental night: {everyone:.1f}s ({everyone / full:.1%} of full) recomputing "
          f"every customer's date-dependent outputs (features finish {incr_finish:.1f}s and the "
          f"EVERYONE steps), {incremental - everyone:.1f}s ({(incremental - everyone) / full:.1%}"
          f") the rest")
    print(f"\npersons {args.persons}, cores {os.cpu_count()}: full rebuild {full:.1f}s, "
          f"incremental night ({args.new:.0%} new records) {incremental:.1f}s = {share:.1%} of "
          f"full; floor {floor:.1f}s, full/floor {full / floor:.1f}, incremental/floor "
          f"{incremental / floor:.1f}; peak memory {peak_gb:.2f} GB (DuckDB memory limit "
          f"{memory_limit})")
    append_result([dt.date.today().isoformat(), args.persons, os.cpu_count(), args.new,
                   round(full, 1), round(incremental, 1), round(share, 3), round(floor, 1),
                   round(full / floor, 1), round(peak_gb, 2), memory_limit, round(everyone, 1)])


RESULT_COLUMNS = ["date", "persons", "cores", "new_share", "full_s", "incremental_s",
                  "incremental_of_full", "floor_s", "full_to_floor", "peak_gb", "memory_limit",
                  "incremental_everyone_s"]


def append_result(row: list) -> None:
    """One row in bench/results/nightly.csv. Older rows gain the columns added since: rows
    from before memory_limit ran with the 4GB default; incremental_everyone_s is unknown."""
    results = BENCH / "results" / "nightly.csv"
    results.parent.mkdir(exist_ok=True)
    rows = list(csv.reader(results.open(newline=""))) if results.exists() else [RESULT_COLUMNS]
    if rows[0] != RESULT_COLUMNS:
        defaults = {"memory_limit": "4GB"}
        rows = [RESULT_COLUMNS] + [
            old + [defaults.get(c, "") for c in RESULT_COLUMNS[len(old):]] for old in rows[1:]]
    with open(results, "w", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows + [row])


if __name__ == "__main__":
    main()
