"""Segments on generated customers: k by silhouette, the same ids on a rerun, and most ids
kept when 5% new customers arrive (real scikit-learn, real DuckDB)."""

import numpy as np
import pyarrow as pa

from transforms.segments import build_segments

# Four kinds of customer: (recency days, orders in 365 days, spend in 365 days, reads in 90 days)
KINDS = [(20, 15, 9000, 2), (60, 4, 1500, 1), (400, 0, 0, 0), (200, 1, 300, 25)]


def customers(n: int, start: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    kind = rng.integers(0, len(KINDS), n)
    center = np.array(KINDS, dtype=float)[kind]
    noisy = np.clip(center * rng.lognormal(0, 0.25, center.shape), 0, None)
    return pa.table({
        "customer_id": [f"C{start + i:09d}" for i in range(n)],
        "recency_days": pa.array(np.where(noisy[:, 1] > 0, noisy[:, 0].round(), np.nan),
                                 from_pandas=True),  # NULL: never bought
        "orders_365d": noisy[:, 1].round(), "spend_365d": noisy[:, 2].round(2),
        "article_reads_90d": noisy[:, 3].round(), "shares_90d": np.zeros(n), "age": np.full(n, 35),
    })


def segment(con, table: pa.Table, models_dir, k_range=(2, 6)) -> dict[str, int]:
    con.execute("CREATE SCHEMA IF NOT EXISTS features")
    con.register("_generated", table)
    con.execute("CREATE OR REPLACE TABLE features.customer_features AS SELECT * FROM _generated")
    con.unregister("_generated")
    result = build_segments(con, k_range, 5_000, 0, models_dir, "2026-11-20")
    assert result.k == 4 and result.silhouette > 0.5  # the four kinds, found by silhouette
    return dict(con.execute("SELECT customer_id, segment_id FROM profile.customer_segments"
                            ).fetchall())


def test_segment_ids_hold_on_a_rerun_and_when_new_customers_arrive(con, tmp_path):
    base = customers(2_000, 0, seed=1)
    first = segment(con, base, tmp_path)
    # The rerun starts from the saved centroids: same k and ids even if the range moved.
    assert segment(con, base, tmp_path, k_range=(5, 8)) == first
    grown = pa.concat_tables([base, customers(100, 2_000, seed=2)])
    third = segment(con, grown, tmp_path)
    kept = sum(third[c] == s for c, s in first.items()) / len(first)
    assert kept >= 0.98
    # Segment 1 is the most valuable kind, named from its centroid.
    name = con.execute("SELECT segment_name FROM marts.segment_summary WHERE segment_id = 1"
                       ).fetchall()[0][0]
    assert name.startswith("高价值·高频")


def test_without_a_previous_model_ids_follow_spend(con, tmp_path):
    segment(con, customers(1_000, 0, seed=3), tmp_path)
    spend = [r[0] for r in con.execute(
        "SELECT avg_spend_365d FROM marts.segment_summary ORDER BY segment_id").fetchall()]
    assert spend == sorted(spend, reverse=True)


def test_segments_do_not_depend_on_the_row_order_of_the_features(con, tmp_path):
    """Features are written unsorted: the KMeans sample (1,000 of 3,000 here) is picked by
    hashed id, so shuffled rows give the same model and the same segment of every customer."""
    table = customers(3_000, 0, seed=4)
    shuffled = table.take(np.random.default_rng(5).permutation(table.num_rows))
    con.execute("CREATE SCHEMA IF NOT EXISTS features")
    results = []
    for rows, models in ((table, tmp_path / "a"), (shuffled, tmp_path / "b")):
        con.register("_generated", rows)
        con.execute("CREATE OR REPLACE TABLE features.customer_features AS SELECT * FROM _generated")
        con.unregister("_generated")
        result = build_segments(con, (2, 6), 1_000, 0, models, "2026-11-20")
        results.append((result.silhouette, con.execute(  # silhouette: of the sample itself
            "SELECT customer_id, segment_id, segment_name FROM profile.customer_segments "
            "ORDER BY ALL").fetchall()))
    assert results[0] == results[1]
