"""The committed sample (data/sample, ~2,000 persons from the generator) built end to end by
Dagster into a temporary directory, as `make run` does, with invariants on the result.

The build runs with DuckDB limited to 128 MB and one thread (the repo default is 4 GB): a
warehouse bigger than memory must spill to the temp directory, not fail (tests/test_memory.py
shows the spill itself)."""

from pathlib import Path

import duckdb
import joblib
import polars as pl
import pytest
from handmade import write_config

from pipelines.definitions import build_definitions
from transforms import predict

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample"
LOW_MEMORY_LIMIT = "128MB"


@pytest.fixture(scope="module")
def sample_build(tmp_path_factory):
    assert (SAMPLE / "ground_truth.csv").exists(), "the committed sample is missing"
    root = tmp_path_factory.mktemp("sample")
    config = write_config(root / "config", lambda d: d["warehouse"].update(
        memory_limit=LOW_MEMORY_LIMIT, threads=1))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PROFILES_CONFIG", str(config))
        mp.setenv("PROFILES_LANDING", str(SAMPLE))
        mp.setenv("PROFILES_WAREHOUSE", str(root / "warehouse" / "profiles.duckdb"))
        mp.setenv("PROFILES_EXPORTS", str(root / "exports"))
        result = build_definitions().resolve_job_def("nightly_rebuild").execute_in_process(
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}})
    assert result.success
    con = duckdb.connect(str(root / "warehouse" / "profiles.duckdb"), read_only=True)
    yield root, con, result
    con.close()


def test_every_file_loaded_and_accounted(sample_build):
    _, con, _ = sample_build
    files = con.execute("""SELECT entity, rows_read, rows_staged, rows_quarantined, balanced
                           FROM staging.file_accounting""").fetchall()
    assert {f[0] for f in files} == {"crm_customers", "crm_followups", "crm_opportunities",
                                     "erp_customers", "erp_orders", "wechat_followers",
                                     "wechat_events"}
    assert all(f[4] for f in files)
    assert all(f[1] > 0 for f in files)


def test_the_planted_defects_are_quarantined_with_reasons(sample_build):
    _, con, _ = sample_build
    reasons = con.execute("""SELECT entity, coalesce(column_name, '(row)'), reason, count(*)
                             FROM staging.quarantine GROUP BY ALL ORDER BY ALL""").fetchall()
    by_entity = {}
    for entity, column, reason, n in reasons:
        by_entity.setdefault(entity, []).append((column, reason, n))
    assert any("TOO MANY COLUMNS" in r or "MISSING COLUMNS" in r
               for _, r, _ in by_entity["crm_customers"])
    assert any(r == "invalid JSON" for _, r, _ in by_entity["wechat_events"])
    erp = {(c, r) for c, r, _ in by_entity["erp_orders"]}
    assert ("下单时间", "cannot parse as a date/time") in erp
    assert ("金额", "cannot parse as an amount") in erp
    assert con.execute("""SELECT count(*) FROM core.unmatched_facts
                          WHERE fact = 'order_lines'""").fetchall()[0][0] >= 1


def test_profile_has_one_row_per_customer_and_no_customer_is_lost(sample_build):
    _, con, _ = sample_build
    rows, distinct = con.execute("SELECT count(*), count(DISTINCT customer_id) "
                                 "FROM profile.customer_profile").fetchall()[0]
    assert rows == distinct > 1000
    # Every current source record maps to exactly one customer that has a profile.
    lost = con.execute("""SELECT count(*) FROM identity.source_records r
        LEFT JOIN identity.customer_map m USING (record_id)
        LEFT JOIN profile.customer_profile p USING (customer_id)
        WHERE p.customer_id IS NULL""").fetchall()[0][0]
    assert lost == 0


def test_switchboard_numbers_are_hubs_not_links(sample_build):
    _, con, _ = sample_build
    hubs = con.execute("SELECT key_value, records FROM identity.hub_keys WHERE key_type = 'phone'"
                       ).fetchall()
    assert any(n >= 3 for _, n in hubs)
    merged = con.execute("""SELECT count(*) FROM identity.customer_map m
        JOIN identity.source_records r USING (record_id)
        JOIN identity.hub_keys h ON h.key_type = 'phone' AND h.key_value = r.phone
        GROUP BY m.customer_id HAVING count(DISTINCT r.name_key) > 2""").fetchall()
    assert merged == []


def test_identity_meets_its_targets_on_the_sample(sample_build):
    """Pairwise precision >= 0.995 and recall >= 0.97 on pairs that share evidence, scored
    by the asset itself against the generator's ground truth."""
    _, _, result = sample_build
    [event] = [e for e in result.get_asset_materialization_events()
               if e.asset_key.to_user_string() == "customer_identity"]
    meta = {k: v.value for k, v in event.materialization.metadata.items()}
    assert meta["score/predicted_pairs"] > 1200
    assert meta["score/precision"] >= 0.995
    assert meta["score/recall_findable"] >= 0.97
    assert meta["score/recall"] < meta["score/recall_findable"]  # blind followers exist
    assert meta["probabilistic_links"] > 100


def test_churn_model_beats_recency_alone_and_clv_is_predicted(sample_build):
    """Trained on features as of past cutoffs, judged on the newest cutoff's real outcome."""
    _, con, result = sample_build
    [event] = [e for e in result.get_asset_materialization_events()
               if e.asset_key.to_user_string() == "customer_predictions"]
    meta = {k: v.value for k, v in event.materialization.metadata.items()}
    assert meta["churn/trained"] and meta["clv/trained"]
    assert meta["churn/holdout_auc"] > meta["churn/recency_only_auc"]
    assert meta["clv/holdout_rmse"] < meta["clv/last_year_spend_rmse"]
    buyers, scored, bounded = con.execute(
        """SELECT count(*) FILTER (WHERE orders_lifetime > 0), count(churn_probability),
                  bool_and(churn_probability BETWEEN 0 AND 1 AND predicted_clv_365d >= 0)
           FROM profile.customer_profile""").fetchall()[0]
    assert buyers == scored and bounded


def test_scoring_in_batches_gives_the_stored_predictions(sample_build, monkeypatch):
    """Today's customers are scored batch by batch; a small batch must change nothing."""
    root, con, _ = sample_build
    models = {name: joblib.load(root / "warehouse" / "models" / f"{name}.joblib")["model"]
              for name in ("churn", "clv")}
    monkeypatch.setattr(predict, "_SCORE_BATCH", 100)
    scored = predict._score_today(con, models["churn"], models["clv"])
    assert scored.num_rows == con.execute("SELECT count(*) FROM core.customers").fetchall()[0][0]
    stored = con.sql("SELECT * FROM features.customer_predictions ORDER BY customer_id").pl()
    assert pl.from_arrow(scored).sort("customer_id").equals(stored)


def test_parquet_export_matches_the_profile(sample_build):
    root, con, _ = sample_build
    exported = pl.read_parquet(next((root / "exports" / "profile").glob("snapshot_date=*"))
                               / "data.parquet")
    assert exported.height == con.execute("SELECT count(*) FROM profile.customer_profile"
                                          ).fetchall()[0][0]
