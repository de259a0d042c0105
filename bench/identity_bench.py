"""Benchmark of the identity stage alone: N persons of generated exports (cached), loaded and
staged once (cached too), then identity resolution timed in a fresh process exactly as the
``customer_identity`` asset runs it, and scored against the generator's ground truth.

    .venv/bin/python bench/identity_bench.py --persons 1000000

Prints wall time, peak memory of the process (imports included) and precision/recall; appends
them to bench/results/identity.csv. Not a timed test.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

CUSTOMER_ENTITIES = ("crm_customers", "erp_customers", "wechat_followers")


def stage_customer_records(landing: Path, warehouse: Path) -> None:
    """Load and stage the three customer entities through Dagster, as the nightly job does."""
    from dagster import AssetKey, AssetSelection, materialize

    from pipelines.definitions import ALL_ASSETS
    from pipelines.resources import Warehouse

    os.environ["PROFILES_LANDING"] = str(landing)
    os.environ["PROFILES_WAREHOUSE"] = str(warehouse)
    keys = [AssetKey(f"{layer}_{e}") for e in CUSTOMER_ENTITIES for layer in ("raw", "staging")]
    started = time.perf_counter()
    result = materialize(ALL_ASSETS, selection=AssetSelection.assets(*keys),
                         resources={"warehouse": Warehouse()})
    assert result.success, "staging failed"
    print(f"staged customer records in {time.perf_counter() - started:.1f}s → {warehouse}")


def resolve(warehouse: Path, landing: Path) -> dict:
    from pipelines.config import load_config
    from pipelines.resources import open_warehouse
    from transforms.identity import resolve_identities
    from transforms.identity_score import score_identity

    os.environ["PROFILES_WAREHOUSE"] = str(warehouse)
    cfg = load_config()
    con = open_warehouse(cfg)
    started = time.perf_counter()
    stats = resolve_identities(con, cfg.identity, "bench", dt.datetime.now())
    seconds = time.perf_counter() - started
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    score = score_identity(con, landing / "ground_truth.csv").as_dict()
    con.close()
    return {"seconds": seconds, "peak_gb": peak_gb, **stats, **score}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--persons", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--stage-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    from build_bench import ensure_dataset

    landing = ensure_dataset(args.persons, args.seed)
    staged = landing.parent / f"{landing.name}_staged.duckdb"
    if args.stage_only:  # staged beside, then renamed: a killed run leaves no half-built cache
        partial = staged.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        stage_customer_records(landing, partial)
        partial.rename(staged)
        return
    if not staged.exists():  # in its own process, so the peak memory below is identity's own
        subprocess.run([sys.executable, __file__, "--persons", str(args.persons),
                        "--seed", str(args.seed), "--stage-only"], check=True)

    workdir = Path(tempfile.mkdtemp(prefix="identity_bench_"))
    try:
        warehouse = workdir / "profiles.duckdb"
        shutil.copy(staged, warehouse)
        r = resolve(warehouse, landing)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"\npersons {args.persons}, cores {os.cpu_count()}: {r['source_records']} source "
          f"records → {r['customers']} customers in {r['seconds']:.1f}s, peak memory "
          f"{r['peak_gb']:.2f} GB")
    print(f"links: {r['strong_key_links']} strong-key, {r['probabilistic_links']} probabilistic; "
          f"{r['hub_keys']} hub keys; {r['clusters_split_by_cap']} clusters split by the cap")
    print(f"precision {r['precision']:.4f}, recall {r['recall']:.4f}, recall on pairs with "
          f"evidence {r['recall_findable']:.4f}, F1 {r['f1']:.4f}")
    results = BENCH / "results" / "identity.csv"
    results.parent.mkdir(exist_ok=True)
    columns = ["date", "persons", "cores", "source_records", "customers", "seconds", "peak_gb",
               "precision", "recall", "recall_findable"]
    new = not results.exists()
    with open(results, "a", newline="") as fh:
        writer = csv.writer(fh)
        if new:
            writer.writerow(columns)
        row = {**r, "date": dt.date.today().isoformat(), "persons": args.persons,
               "cores": os.cpu_count()}
        writer.writerow([round(v, 4) if isinstance(v, float) else v
                         for v in (row[c] for c in columns)])


if __name__ == "__main__":
    main()
