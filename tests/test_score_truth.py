"""Scoring identity resolution against a plain truth file (source, source_key, person_id): the
pairwise figures are exact, the findable-pair figures are absent (nothing says which pairs
could be found), not 0 or 1.0; with an evidence column they are present. Also through
`profiles score --truth` and the nightly self-scoring. Real DuckDB files, hand-made map."""

import shutil

import duckdb
import pytest
from handmade import write_exports

from pipelines.cli import main
from pipelines.config import load_config
from pipelines.definitions import build_definitions
from transforms.identity_score import score_identity
from transforms.summary import run_summary

TRUTH = ("source,source_key,person_id\n"
         "crm,KH1,P1\ncrm,KH2,P1\nwechat,o1,P1\n"
         "crm,KH3,P2\nerp,C3,P3\nerp,c 4,P4\nwechat,o9,P4\n")  # o9: no customer holds it
EVIDENCE = ["phone|name", "phone", "", "name", "name", "phone", "phone"]
MAP = [("crm", "KH1", "A"), ("crm", "KH2", "A"), ("wechat", "o1", "B"), ("crm", "KH3", "C"),
       ("erp", "C3", "C"), ("erp", "C4", "D")]
# predicted pairs KH1-KH2 (right), KH3-C3 (wrong); true pairs KH1-KH2, KH1-o1, KH2-o1 (P4's
# pair has o9, which no customer holds); P4 alone is exactly one whole customer (D).
PAIRWISE = {"records": 6, "unmapped_truth_records": 1, "persons": 4, "customers": 4,
            "predicted_pairs": 2, "true_pairs": 3, "correct_pairs": 1, "precision": 0.5,
            "recall": 0.3333, "f1": 0.4, "exact_clusters": 0.25, "split_persons": 1,
            "merged_customers": 1}
FINDABLE = ("findable_pairs", "findable_found", "recall_findable")


def with_evidence(truth: str) -> str:
    header, *rows = truth.splitlines()
    return "\n".join([header + ",evidence"]
                     + [f"{r},{e}" for r, e in zip(rows, EVIDENCE, strict=True)]) + "\n"


@pytest.fixture
def warehouse(tmp_path):
    path = tmp_path / "warehouse" / "profiles.duckdb"
    path.parent.mkdir()
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE SCHEMA identity")
        con.execute("CREATE TABLE identity.customer_map (source VARCHAR, source_key VARCHAR, "
                    "customer_id VARCHAR)")
        con.executemany("INSERT INTO identity.customer_map VALUES (?, ?, ?)", MAP)
    return path


@pytest.mark.parametrize("cache", [False, True])
def test_a_three_column_truth_scores_without_findable_figures(warehouse, tmp_path, cache):
    truth = tmp_path / "truth.csv"
    truth.write_text(TRUTH, encoding="utf-8")
    with duckdb.connect(str(warehouse)) as con:
        for _ in range(2 if cache else 1):  # the second from identity.truth_records
            score = score_identity(con, truth, cache=cache)
            assert score.as_dict() == PAIRWISE  # the findable figures are absent
            assert (score.findable_pairs, score.findable_found, score.recall_findable) == (
                None, None, None)


def test_with_evidence_the_findable_figures_are_present(warehouse, tmp_path):
    truth = tmp_path / "truth.csv"
    truth.write_text(TRUTH, encoding="utf-8")
    with duckdb.connect(str(warehouse)) as con:
        # What the previous version cached (no has_evidence column) is simply rebuilt.
        con.execute("CREATE TABLE identity.truth_state AS SELECT '1:abc' AS digest")
        assert "recall_findable" not in score_identity(con, truth, cache=True).as_dict()
        # Evidence added to the same file: the cached records are rebuilt. Only KH1-KH2 share
        # evidence (phone) and one customer holds both; C4-o9 would, but o9 is unmapped.
        truth.write_text(with_evidence(TRUTH), encoding="utf-8")
        for cache in (True, False):
            assert score_identity(con, truth, cache=cache).as_dict() == {
                **PAIRWISE, "findable_pairs": 1, "findable_found": 1, "recall_findable": 1.0}


def test_profiles_score_prints_na_for_the_findable_figures(warehouse, tmp_path, monkeypatch,
                                                           capsys):
    monkeypatch.setenv("PROFILES_WAREHOUSE", str(warehouse))
    truth = tmp_path / "truth.csv"
    truth.write_text(TRUTH, encoding="utf-8")
    assert main(["score", "--truth", str(truth)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"identity resolution against {truth}"
    assert lines[1:] == [f"  {k:<24}{v}" for k, v in PAIRWISE.items() if k not in (
        "exact_clusters", "split_persons", "merged_customers")] + [
        f"  {k:<24}n/a (no evidence column)" for k in FINDABLE] + [
        "  exact_clusters          0.25", "  split_persons           1",
        "  merged_customers        1"]
    truth.write_text("source,customer,person_id\ncrm,KH1,P1\n", encoding="utf-8")
    assert main(["score", "--truth", str(truth)]) == 2
    assert capsys.readouterr().err == (
        f"error: {truth}: ground truth lacks column(s) source_key (has source, customer, "
        "person_id; needs source, source_key, person_id and optionally evidence)\n")


def test_the_nightly_self_score_copes_with_a_three_column_truth(tmp_path, monkeypatch):
    """identity.ground_truth (ground_truth.csv in the landing folder) without evidence: the
    build scores itself, identity.latest_score and the run summary have no findable figures."""
    landing = write_exports(tmp_path / "landing")
    for folder in ("erp", "wechat"):  # the CRM customer list alone is enough here
        shutil.rmtree(landing / folder)
        (landing / folder).mkdir()
    for name in ("followups.csv", "opportunities.csv"):
        (landing / "crm" / name).unlink()
    # KH001 and KH009 are one person (张伟, one phone); KH006 is quarantined (malformed row).
    (landing / "ground_truth.csv").write_text(
        "source,source_key,person_id\ncrm,KH001,P1\ncrm,KH009,P1\ncrm,KH002,P2\n"
        "crm,KH003,P3\ncrm,KH004,P4\ncrm,KH006,P6\n", encoding="utf-8")
    warehouse = tmp_path / "warehouse" / "profiles.duckdb"
    for key, value in {"PROFILES_LANDING": landing, "PROFILES_WAREHOUSE": warehouse,
                       "PROFILES_EXPORTS": tmp_path / "exports", "PROFILES_PII_SALT": "salt",
                       "PROFILES_LOG_LEVEL": "ERROR"}.items():
        monkeypatch.setenv(key, str(value))
    assert load_config().ground_truth_path == landing / "ground_truth.csv"
    result = build_definitions().resolve_job_def("nightly_rebuild").execute_in_process(
        raise_on_error=False, run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}})
    assert result.success, [e.step_failure_data.error.message for e in result.all_events
                            if e.is_step_failure]
    with duckdb.connect(str(warehouse), read_only=True) as con:
        scores = dict(con.execute("SELECT metric, value FROM identity.latest_score").fetchall())
        summary = run_summary(con, load_config().resolved_snapshot_date())
    assert {k: scores[k] for k in ("records", "unmapped_truth_records", "true_pairs",
                                   "correct_pairs", "precision", "recall")} == {
        "records": 5, "unmapped_truth_records": 1, "true_pairs": 1, "correct_pairs": 1,
        "precision": 1.0, "recall": 1.0}
    assert not set(FINDABLE) & set(scores)
    assert (summary["identity_precision"], summary["identity_recall_findable"]) == (1.0, None)
