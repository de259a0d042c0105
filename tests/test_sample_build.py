"""The committed sample (data/sample, ~2,000 persons from the generator) built end to end by
Dagster into a temporary directory, as `make run` does, with invariants on the result."""

from pathlib import Path

import duckdb
import polars as pl
import pytest

from pipelines.definitions import build_definitions

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample"


@pytest.fixture(scope="module")
def sample_build(tmp_path_factory):
    assert (SAMPLE / "ground_truth.csv").exists(), "the committed sample is missing"
    root = tmp_path_factory.mktemp("sample")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PROFILES_LANDING", str(SAMPLE))
        mp.setenv("PROFILES_WAREHOUSE", str(root / "warehouse" / "profiles.duckdb"))
        mp.setenv("PROFILES_EXPORTS", str(root / "exports"))
        result = build_definitions().resolve_job_def("nightly_rebuild").execute_in_process(
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}})
    assert result.success
    con = duckdb.connect(str(root / "warehouse" / "profiles.duckdb"), read_only=True)
    yield root, con
    con.close()


def test_every_file_loaded_and_accounted(sample_build):
    _, con = sample_build
    files = con.execute("""SELECT entity, rows_read, rows_staged, rows_quarantined, balanced
                           FROM staging.file_accounting""").fetchall()
    assert {f[0] for f in files} == {"crm_customers", "crm_followups", "crm_opportunities",
                                     "erp_customers", "erp_orders", "wechat_followers",
                                     "wechat_events"}
    assert all(f[4] for f in files)
    assert all(f[1] > 0 for f in files)


def test_the_planted_defects_are_quarantined_with_reasons(sample_build):
    _, con = sample_build
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
    _, con = sample_build
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
    _, con = sample_build
    hubs = con.execute("SELECT key_value, records FROM identity.hub_keys WHERE key_type = 'phone'"
                       ).fetchall()
    assert any(n >= 3 for _, n in hubs)
    merged = con.execute("""SELECT count(*) FROM identity.customer_map m
        JOIN identity.source_records r USING (record_id)
        JOIN identity.hub_keys h ON h.key_type = 'phone' AND h.key_value = r.phone
        GROUP BY m.customer_id HAVING count(DISTINCT r.name_key) > 2""").fetchall()
    assert merged == []


def test_identity_precision_against_ground_truth(sample_build):
    """Deterministic rules must almost never merge two different people (pairwise precision)."""
    _, con = sample_build
    truth = pl.read_csv(SAMPLE / "ground_truth.csv", infer_schema=False)
    mapped = con.sql("SELECT source, source_key, customer_id FROM identity.customer_map").pl()
    scorer = duckdb.connect()
    scorer.register("truth", truth)
    scorer.register("mapped", mapped)
    pairs = scorer.execute("""
        WITH j AS (SELECT m.customer_id, t.person_id, m.source, m.source_key FROM mapped m
                   JOIN truth t ON t.source = m.source AND t.source_key = m.source_key)
        SELECT count(*) AS predicted, count(*) FILTER (WHERE a.person_id = b.person_id) AS correct
        FROM j a JOIN j b ON a.customer_id = b.customer_id
         AND (a.source, a.source_key) < (b.source, b.source_key)""").fetchall()[0]
    predicted, correct = pairs
    assert predicted > 500
    assert correct / predicted >= 0.99


def test_parquet_export_matches_the_profile(sample_build):
    root, con = sample_build
    exported = pl.read_parquet(next((root / "exports" / "profile").glob("snapshot_date=*"))
                               / "data.parquet")
    assert exported.height == con.execute("SELECT count(*) FROM profile.customer_profile"
                                          ).fetchall()[0][0]
