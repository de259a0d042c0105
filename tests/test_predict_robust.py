"""The churn and CLV models never break a night (real DuckDB, real scikit-learn): all-NULL or
constant features are dropped and named, a single class, too few rows or too little history
skip a model with its reason, a model no better than its naive baseline is not published, and
failures in training or scoring become a NULL column with the exception named.

Each world is a few hundred hand-planned customers who buy every ``period`` days from
``phase`` days after START until ``stop``; build_features makes their features as the nightly
job does. No follow-ups, WeChat events or mall orders: wechat_mall_spend_share and
days_since_followup are NULL for everyone, as in the night that crashed with scikit-learn's
"window shape cannot be larger than input array shape"."""

import datetime as dt

import duckdb
import joblib
import numpy as np
import pyarrow as pa
import pytest
from dagster import materialize
from handmade import REPO_CONFIG
from threadpoolctl import threadpool_limits

from assets.features import customer_predictions
from pipelines.config import ModelsConfig
from pipelines.resources import Warehouse
from transforms import predict
from transforms.features import build_features

SNAPSHOT = dt.date(2026, 11, 20)
START = dt.date(2023, 1, 1)
DAYS = (SNAPSHOT - START).days
NEVER = DAYS + 1
CLV_HOLDOUT = dt.date(2025, 11, 20)  # cutoffs_for(SNAPSHOT, ..., 365, ...)[0]


def world(con, phase, period, stop, amount, birth_dates=None) -> None:
    """core.* tables of customers C00000… and features.customer_features as of SNAPSHOT."""
    phase, period, stop = (np.asarray(a, dtype=np.int64) for a in (phase, period, stop))
    end = np.minimum(stop, NEVER)
    orders = np.where(phase < end, (end - phase - 1) // period + 1, 0)
    n = len(phase)
    con.register("_plan", pa.table({
        "customer_id": [f"C{i:05d}" for i in range(n)], "phase": phase, "period": period,
        "orders": orders, "amount": np.round(np.asarray(amount, dtype=float), 2),
        "birth_date": pa.array(birth_dates if birth_dates is not None else [None] * n,
                               pa.date32())}))
    for schema in ("core", "identity", "staging"):
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    con.execute("""CREATE OR REPLACE TABLE core.customers AS
        SELECT customer_id, NULL::VARCHAR AS gender, birth_date, NULL::VARCHAR AS province,
               NULL::VARCHAR AS city, NULL::VARCHAR AS industry, NULL::VARCHAR AS lead_source,
               NULL::VARCHAR AS crm_stage, NULL::VARCHAR AS owner,
               ($start::DATE + phase::INT - 1)::TIMESTAMP AS first_seen_at,
               false AS wechat_subscribed
        FROM _plan""", {"start": START})
    con.execute("""CREATE OR REPLACE TABLE core.order_lines AS
        SELECT customer_id, 'erp' AS channel, customer_id || '-' || k AS order_id, 1 AS line_no,
               ($start::DATE + (phase + k * period)::INT)::TIMESTAMP + INTERVAL 12 HOUR
                   AS ordered_at,
               '美妆' AS category, amount::DECIMAL(12, 2) AS amount, false AS is_refund
        FROM (SELECT *, unnest(range(0, orders)) AS k FROM _plan)""", {"start": START})
    con.unregister("_plan")
    con.execute("CREATE OR REPLACE TABLE core.followups (customer_id VARCHAR, "
                "followup_at TIMESTAMP)")
    con.execute("CREATE OR REPLACE TABLE core.opportunity_stages (customer_id VARCHAR, "
                "opportunity_code VARCHAR, stage VARCHAR, entered_at TIMESTAMP)")
    con.execute("CREATE OR REPLACE TABLE core.wechat_events (customer_id VARCHAR, "
                "event_type VARCHAR, event_at TIMESTAMP, invited_openid VARCHAR)")
    con.execute("CREATE OR REPLACE TABLE identity.customer_map (record_id VARCHAR, "
                "source VARCHAR, source_key VARCHAR, customer_id VARCHAR)")
    con.execute("CREATE OR REPLACE TABLE staging.wechat_followers (openid VARCHAR, "
                "subscribed_at TIMESTAMP)")
    build_features(con, SNAPSHOT)


def lively(n: int = 400, seed: int = 2):
    """Periods of 10-120 days, half the customers stop at some point: both models learn
    (measured on this seed: churn AUC 0.9896 vs recency alone 0.9239, CLV RMSE 379.71 vs
    last year's spend 505.76)."""
    rng = np.random.default_rng(seed)
    period = rng.integers(10, 120, n)
    phase = rng.integers(0, 60, n)
    stop = np.where(rng.random(n) < 0.5, rng.integers(300, DAYS, n), NEVER)
    return phase, period, stop, rng.lognormal(5, 0.3, n)


def night(con, models_dir=None, **kwargs) -> dict[str, predict.ModelReport]:
    reports = predict.build_predictions(con, SNAPSHOT, ModelsConfig(), models_dir, "test",
                                        **kwargs)
    return {r.name: r for r in reports}


def counts(con) -> tuple[int, int, int, int]:
    """(customers, buyers, churn probabilities, CLV predictions) in customer_predictions."""
    return con.execute("""SELECT count(*), count(*) FILTER (WHERE f.orders_lifetime > 0),
                                 count(p.churn_probability), count(p.predicted_clv_365d)
                          FROM features.customer_predictions p
                          JOIN features.customer_features f USING (customer_id)""").fetchall()[0]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Gradient boosting on one OpenMP thread: these fits are small, and on a busy two-core
    machine its threads made a night 4 times slower (3.3 s against 0.9 s, measured)."""
    with threadpool_limits(1):
        yield


@pytest.fixture
def lively_con():
    con = duckdb.connect()
    world(con, *lively())
    yield con
    con.close()


def test_all_null_features_are_dropped_and_named_and_the_models_publish(lively_con, tmp_path):
    """The crash of the night: the same world made the code before this fix raise ValueError
    ("window shape cannot be larger than input array shape")."""
    reports = night(lively_con, tmp_path)
    for r in reports.values():
        assert r.trained and r.published and r.reason == "", r
        for name in ("wechat_mall_spend_share", "days_since_followup", "age"):
            assert r.dropped_features[name] == "all NULL in the training rows"
            assert name not in r.features
        assert "recency_days" in r.features and set(r.features).isdisjoint(r.dropped_features)
        assert set(r.features) | set(r.dropped_features) == set(predict.MODEL_FEATURES)
        # The kept list is saved with the model, and the model was fitted on exactly it.
        saved = joblib.load(tmp_path / f"{r.name}.joblib")
        assert saved["features"] == saved["model"].features == r.features
        assert saved["model"].estimator.n_features_in_ == len(r.features)
    assert reports["churn"].metrics["holdout_auc"] > reports["churn"].metrics["recency_only_auc"]
    assert reports["clv"].metrics["holdout_rmse"] < reports["clv"].metrics["last_year_spend_rmse"]
    customers, buyers, churn, clv = counts(lively_con)
    assert churn == buyers > 0 and clv == customers == 400


def test_constant_features_are_dropped_but_a_feature_with_nulls_is_kept():
    con = duckdb.connect()
    # Everyone born 1990-01-01: age 36 at both churn training cutoffs, 34 at both CLV ones.
    world(con, *lively(), birth_dates=[dt.date(1990, 1, 1)] * 400)
    reports = night(con)
    assert reports["churn"].dropped_features["age"] == "the same value (36) in every training row"
    assert reports["clv"].dropped_features["age"] == "the same value (34) in every training row"
    assert reports["churn"].dropped_features["refund_lines"] == (
        "the same value (0) in every training row")  # nobody ever refunded
    assert all(r.published and "age" not in r.features for r in reports.values())
    # Half of them without a birth date: one value and NULLs, which says who has one.
    world(con, *lively(), birth_dates=[dt.date(1990, 1, 1), None] * 200)
    reports = night(con)
    assert all("age" in r.features and "age" not in r.dropped_features
               for r in reports.values())
    assert all(r.published for r in reports.values())


@pytest.fixture(scope="module")
def steady(tmp_path_factory):
    """Everyone buys every 73 days and never stops: nobody churns within 90 days, and the
    next 365 days' spend is exactly the last 365 days' (5 orders each; no customer orders on
    the CLV holdout's cutoff day, which would put a sixth order in its 366-day window)."""
    skip = (CLV_HOLDOUT - START).days % 73
    phases = [p for p in range(73) if p != skip]
    n = 300
    rng = np.random.default_rng(7)
    con = duckdb.connect()
    world(con, [phases[i % len(phases)] for i in range(n)], [73] * n, [NEVER] * n,
          rng.lognormal(5, 0.5, n))
    models_dir = tmp_path_factory.mktemp("steady_models")
    reports = night(con, models_dir)
    yield con, reports, models_dir
    con.close()


def test_a_single_class_skips_churn_with_its_reason(steady):
    con, reports, models_dir = steady
    churn = reports["churn"]
    assert not churn.trained and not churn.published
    assert churn.reason.startswith("too few labels: churned/stayed in training 0/600")
    assert churn.reason.endswith("(a single class: nobody churned)")
    assert not (models_dir / "churn.joblib").exists()
    assert "nobody churned" in (models_dir / "churn.json").read_text()
    customers, buyers, churned, _ = counts(con)
    assert customers == buyers == 300 and churned == 0


def test_clv_no_better_than_last_year_is_not_published(steady):
    """Last year's spend is exactly next year's here (RMSE 0): the model cannot beat it."""
    con, reports, models_dir = steady
    clv = reports["clv"]
    assert clv.trained and not clv.published
    assert clv.metrics["last_year_spend_rmse"] == 0.0 < clv.metrics["holdout_rmse"]
    assert clv.baseline == "last_year_spend_rmse"
    rmse = f"{clv.metrics['holdout_rmse']:g}"
    assert clv.decision == (f"holdout RMSE {rmse} >= last-year-spend RMSE 0 on the holdout: "
                            "not published")
    assert clv.reason == ("no better than its baseline: holdout RMSE "
                          f"{rmse} >= last-year-spend RMSE 0 on the holdout")
    assert counts(con)[3] == 0
    assert not (models_dir / "clv.joblib").exists()  # a later night must not reuse it
    assert "not published" in (models_dir / "clv.json").read_text()


def test_too_little_history_or_too_few_customers_skip_both_models():
    con = duckdb.connect()
    # Orders only in the last 150 days: no cutoff has a future and 180 days of past.
    world(con, DAYS - 150 + np.arange(300) % 20, [10] * 300, [NEVER] * 300, [100.0] * 300)
    reports = night(con)
    for r in reports.values():
        assert not r.trained and not r.published
        assert r.reason.startswith("history too short: needs two cutoffs")
    assert counts(con)[2:] == (0, 0)
    # A long history but 20 customers.
    world(con, *lively(20, seed=2))
    reports = night(con)
    assert reports["churn"].reason.startswith("too few labels: churned/stayed")
    assert reports["clv"].reason.startswith("too few customers: 40 in training, 20 in the holdout")
    assert not any(r.published for r in reports.values())
    assert counts(con)[2:] == (0, 0)


def recency_decides(con) -> None:
    """200 customers buy every 20 days for ever; 200 bought every 20 days and stopped in
    2025, so at every churn cutoff the churned ones are exactly those with the longest
    recency: recency alone has AUC 1 on the holdout, and no model can beat it."""
    rng = np.random.default_rng(3)
    stop = rng.integers(300, (dt.date(2026, 1, 1) - START).days, 200)
    world(con, np.arange(400) % 20, [20] * 400, np.concatenate([[NEVER] * 200, stop]),
          rng.lognormal(5, 0.3, 400))


def test_churn_no_better_than_recency_alone_is_not_published(tmp_path):
    con = duckdb.connect()
    recency_decides(con)
    churn = night(con, tmp_path)["churn"]
    assert churn.trained and not churn.published
    assert churn.metrics["recency_only_auc"] == 1.0 >= churn.metrics["holdout_auc"]
    assert churn.baseline == "recency_only_auc"
    auc = f"{churn.metrics['holdout_auc']:g}"
    assert churn.decision == f"holdout AUC {auc} <= recency-only AUC 1 on the holdout: not published"
    assert churn.reason.startswith("no better than its baseline: holdout AUC")
    assert counts(con)[2] == 0
    assert not (tmp_path / "churn.joblib").exists()


def test_the_asset_publishes_the_night_with_both_figures_and_the_decision(tmp_path, monkeypatch):
    path = tmp_path / "warehouse" / "profiles.duckdb"
    path.parent.mkdir()
    con = duckdb.connect(str(path))
    recency_decides(con)
    con.close()
    monkeypatch.setenv("PROFILES_WAREHOUSE", str(path))
    result = materialize([customer_predictions],
                         resources={"warehouse": Warehouse(config_path=str(REPO_CONFIG))})
    assert result.success
    [event] = result.get_asset_materialization_events()
    meta = {k: v.value for k, v in event.materialization.metadata.items()}
    assert meta["churn/trained"] is True and meta["churn/published"] is False
    assert meta["churn/recency_only_auc"] == 1.0 and "churn/holdout_auc" in meta
    assert meta["churn/baseline_decision"].endswith("on the holdout: not published")
    assert meta["churn/reason"].startswith("no better than its baseline")
    assert meta["churn/dropped_features"]["days_since_followup"] == "all NULL in the training rows"
    assert meta["churn/detail"]["published"] is False
    assert isinstance(meta["clv/published"], bool) and "clv/baseline_decision" in meta


def test_a_feature_null_for_everyone_tonight_skips_the_saved_model(lively_con, tmp_path):
    first = night(lively_con, tmp_path)
    assert all(r.published for r in first.values())
    lively_con.execute("UPDATE features.customer_features SET recency_days = NULL")
    second = night(lively_con, tmp_path)
    for r in second.values():
        assert r.reused and not r.published
        assert r.reason.startswith("not scored tonight: recency_days NULL for every customer")
        assert (tmp_path / f"{r.name}.joblib").exists()  # the model is fine; tonight's data not
    assert counts(lively_con)[2:] == (0, 0)
    build_features(lively_con, SNAPSHOT)  # the source is back
    third = night(lively_con, tmp_path)
    assert all(r.reused and r.published for r in third.values())
    assert counts(lively_con)[2] > 0


def test_a_saved_model_whose_features_no_longer_match_is_retrained(lively_con, tmp_path):
    night(lively_con, tmp_path)
    path = tmp_path / "churn.joblib"
    saved = joblib.load(path)
    saved["model"] = predict.Fitted(saved["model"].estimator, saved["features"][:-1])
    saved["features"] = saved["features"][:-1]
    joblib.dump(saved, path)
    churn = night(lively_con, tmp_path)["churn"]
    assert not churn.reused and churn.published
    assert churn.not_reused.startswith("the saved model does not match its feature list: the "
                                       "model was fitted on")
    saved = joblib.load(path)
    saved["candidates"] = [*predict.MODEL_FEATURES, "a_feature_since_removed"]
    joblib.dump(saved, path)
    churn = night(lively_con, tmp_path)["churn"]
    assert churn.not_reused == "the model features changed since the saved model was trained"
    assert churn.published


def test_a_model_that_fails_to_scores_leaves_only_its_column_null(lively_con, tmp_path):
    night(lively_con, tmp_path)
    churn, clv = (joblib.load(tmp_path / f"{n}.joblib")["model"] for n in ("churn", "clv"))
    broken = predict.Fitted(churn.estimator, churn.features[:-1])  # one column short
    failures = {}
    scored = predict._score_today(lively_con, broken, clv, failures)
    assert failures["churn"].startswith("scoring failed: ValueError: X has")
    assert scored.column("churn_probability").null_count == scored.num_rows
    assert scored.column("predicted_clv_365d").null_count == 0


def test_an_exception_in_training_is_a_skip_with_its_type_and_message(lively_con):
    lively_con.execute("DROP TABLE core.followups")  # a broken input, not a mock
    reports = night(lively_con)
    for r in reports.values():
        assert not r.trained and not r.published
        assert r.reason.startswith("training failed: CatalogException: ")
        assert "followups" in r.reason and ".py:" in r.reason  # where it was raised
    assert counts(lively_con) == (400, counts(lively_con)[1], 0, 0)  # the night published
