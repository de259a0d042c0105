"""Benchmark: generate N persons of exports (cached), run the nightly job exactly as Dagster
does, and print per-asset wall time, total time, peak memory and the "floor" (DuckDB reading
every input once with one GROUP BY per file).

    .venv/bin/python bench/build_bench.py --persons 100000

Not a timed test: it prints figures and appends them to bench/results/build.csv.
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

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))


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
    for path in sorted(landing.rglob("*")):
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


def run_build(landing: Path, workdir: Path) -> tuple[float, dict[str, float]]:
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
    return total, steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--persons", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    landing = ensure_dataset(args.persons, args.seed)
    workdir = Path(tempfile.mkdtemp(prefix="profiles_bench_"))
    try:
        floor = floor_seconds(landing)
        total, steps = run_build(landing, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    print(f"\n{'asset':<32}{'seconds':>10}")
    for step, seconds in sorted(steps.items(), key=lambda kv: -kv[1]):
        print(f"{step:<32}{seconds:>10.2f}")
    print(f"\npersons {args.persons}, cores {os.cpu_count()}: total {total:.1f}s, floor "
          f"{floor:.1f}s, total/floor {total / floor:.1f}, peak memory {peak_gb:.2f} GB")
    results = BENCH / "results" / "build.csv"
    results.parent.mkdir(exist_ok=True)
    new = not results.exists()
    with open(results, "a", newline="") as fh:
        writer = csv.writer(fh)
        if new:
            writer.writerow(["date", "persons", "cores", "total_s", "floor_s", "ratio", "peak_gb"])
        writer.writerow([dt.date.today().isoformat(), args.persons, os.cpu_count(),
                         round(total, 1), round(floor, 1), round(total / floor, 1),
                         round(peak_gb, 2)])


if __name__ == "__main__":
    main()
