"""python -m pipelines.sample --persons N --seed S --out DIR [--end YYYY-MM-DD]"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from pathlib import Path

from pipelines.sample.generator import generate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.sample", description=__doc__)
    parser.add_argument("--persons", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=Path("data/sample"))
    parser.add_argument("--end", type=date.fromisoformat, default=date(2026, 11, 20),
                        help="last day of generated activity (default 2026-11-20)")
    parser.add_argument("--years", type=int, default=3, help="years of history before --end")
    parser.add_argument("--workers", type=int, default=None,
                        help="processes rendering chunks (default: CPU count, at most 8; "
                        "the output is the same whatever the number)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    counts = generate(args.out, persons=args.persons, seed=args.seed, end_date=args.end,
                      years=args.years, workers=args.workers)
    seconds = time.perf_counter() - started
    print(f"{args.persons} persons, seed {args.seed}, {seconds:.1f}s → {args.out}")
    for name, rows in counts.items():
        size = (args.out / name).stat().st_size
        print(f"  {name:<26}{rows:>12,} rows {size / 1e6:>10.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
