"""Churn risk and customer lifetime value, learned from the customers' own history.

Labels come from what happened after past cutoffs, never from hand-set rules:

- churn: a buyer at the cutoff makes no purchase in the next 90 days;
- CLV: net spend (refunds netted, floored at 0) in the next 365 days.

Features are computed *as of* each cutoff by the same code as today's features
(``build_features(con, cutoff, table)``), so nothing after a cutoff leaks into its row. The
latest cutoff of each model is its holdout; earlier cutoffs train it (scikit-learn histogram
gradient boosting). Today's features are then scored. When the history is too short for a
cutoff with both a past and a future, or the labels are too few, the model is not trained,
the reason is reported and the columns stay NULL: no invented numbers.

Training runs on the first night and then every ``models.retrain_days``: in between, the saved
models (``models_dir``) only score today's features, which is all a night with a few new
records needs. ``profiles build --full`` retrains.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import joblib
import numpy as np
import pyarrow as pa
import sklearn
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.metrics import mean_absolute_error, roc_auc_score, root_mean_squared_error

from transforms.features import build_features
from transforms.sql import fetch_scalar

CHURN_HORIZON_DAYS = 90
CLV_HORIZON_DAYS = 365
# Time-windowed facts only: current states (CRM stage, subscription) would leak the future.
MODEL_FEATURES = [
    "recency_days", "days_since_first_order", "orders_30d", "orders_90d", "orders_365d",
    "orders_lifetime", "spend_30d", "spend_90d", "spend_365d", "spend_lifetime",
    "avg_order_value", "refund_lines", "mean_days_between_orders", "median_days_between_orders",
    "night_order_share", "weekend_order_share", "wechat_mall_spend_share", "followups_90d",
    "days_since_followup", "article_reads_30d", "article_reads_90d", "shares_30d", "shares_90d",
    "tenure_days", "age", "overdue_ratio",
]
# Cast in DuckDB: NumPy would turn DECIMAL spend columns into Python Decimal objects first
# (6 s for 1.3M customers instead of 1).
MODEL_COLUMNS = ", ".join(f"CAST({c} AS DOUBLE) AS {c}" for c in MODEL_FEATURES)
_SCORE_BATCH = 131_072
# Documented like transforms.features.FEATURES (name: meaning, unit), for the data dictionary.
PREDICTIONS: dict[str, tuple[str, str]] = {
    "churn_probability": ("chance a buyer makes no purchase in the next 90 days (NULL: not a "
                          "buyer, or the model could not be trained)", "probability"),
    "predicted_clv_365d": ("predicted net spend in the next 365 days (NULL: model not trained)",
                           "yuan"),
}
MIN_CLASS_ROWS = 30  # of each class (churned / stayed) in training and in the holdout
MIN_CLV_ROWS = 200


@dataclass
class ModelReport:
    name: str
    trained: bool
    reason: str = ""
    cutoffs: list[str] = field(default_factory=list)
    train_rows: int = 0
    holdout_rows: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    model_path: str | None = None
    trained_at: str | None = None  # ISO time the model was fitted
    reused: bool = False  # scored with the saved model of an earlier run

    def as_dict(self) -> dict:
        return asdict(self)


def cutoffs_for(snapshot: dt.date, first_fact: dt.date | None, horizon: int, count: int,
                step: int, min_history: int) -> list[dt.date]:
    """Past cutoffs, newest first: the holdout ``horizon`` days before the snapshot, then
    training cutoffs whose ``horizon`` of future ends by the holdout cutoff (no training label
    overlaps the holdout's), ``step`` days apart; each with ``min_history`` days of facts."""
    if first_fact is None:
        return []
    holdout = snapshot - dt.timedelta(days=horizon)
    training = [holdout - dt.timedelta(days=horizon + i * step) for i in range(count - 1)]
    return [c for c in [holdout, *training] if (c - first_fact).days >= min_history]


def _labelled(con, cutoff: dt.date, horizon: int, population: str,
              sample: str | None = None) -> pa.Table:
    """Features as of ``cutoff`` and what happened in the ``horizon`` days after it, for the
    customers in ``sample`` (a table of ids) or everyone. Rows in customer order: a hash
    join's order varies from run to run, and so did the models trained on it."""
    build_features(con, cutoff, "_asof", population=sample, temporary=True)
    return con.sql(
        f"""WITH future AS (
            SELECT customer_id,
                   count(DISTINCT order_id) FILTER (WHERE NOT is_refund) AS purchases,
                   sum(amount) AS net_spend
            FROM core.order_lines
            WHERE customer_id IS NOT NULL
              AND ordered_at >= $start AND ordered_at < $end
            GROUP BY customer_id)
        SELECT $cutoff::DATE AS cutoff, f.customer_id, {MODEL_COLUMNS},
               coalesce(u.purchases, 0) = 0 AS churned,
               greatest(coalesce(u.net_spend, 0), 0)::DOUBLE AS future_spend
        FROM _asof f LEFT JOIN future u USING (customer_id)
        WHERE {population}
        ORDER BY f.customer_id""",
        params={"cutoff": cutoff, "start": cutoff + dt.timedelta(days=1),
                "end": cutoff + dt.timedelta(days=horizon + 1)},
    ).arrow().read_all()


def _matrix(table: pa.Table) -> np.ndarray:
    """The model features of ``table`` (DOUBLE columns, see MODEL_COLUMNS); NULL is NaN.
    Filled column by column in Fortran order from one chunk per column: about 2.5 times
    faster than np.column_stack over DuckDB's chunked columns (same values)."""
    table = table.select(MODEL_FEATURES).combine_chunks()
    matrix = np.empty((table.num_rows, len(MODEL_FEATURES)), order="F")
    for i, name in enumerate(MODEL_FEATURES):
        matrix[:, i] = table.column(name).to_numpy(zero_copy_only=False)
    return matrix


def _score_today(con, churn_model, clv_model) -> pa.Table:
    """Today's churn probability (buyers only) and CLV per customer, scored in batches: one
    model matrix of 1.3M customers is fresh memory the size of the features, and filling it
    cost more than the scoring itself (page faults); a batch's buffers are reused."""
    ids, churn, clv = [], [], []
    reader = con.sql(f"SELECT customer_id, {MODEL_COLUMNS} FROM features.customer_features"
                     ).to_arrow_reader(_SCORE_BATCH)
    for batch in reader:
        table = pa.Table.from_batches([batch])
        x = _matrix(table)
        buyer = x[:, MODEL_FEATURES.index("orders_lifetime")] > 0
        churn_p = np.full(len(x), np.nan)
        if churn_model is not None and buyer.any():
            churn_p[buyer] = churn_model.predict_proba(x[buyer])[:, 1]
        ids.extend(table.column("customer_id").chunks)
        churn.append(np.round(churn_p, 4))
        clv.append(np.round(clv_model.predict(x), 2) if clv_model is not None
                   else np.full(len(x), np.nan))
    return pa.table({
        "customer_id": pa.chunked_array(ids, reader.schema.field("customer_id").type),
        "churn_probability": pa.array(np.concatenate(churn or [[]]), pa.float64(),
                                      from_pandas=True),
        "predicted_clv_365d": pa.array(np.concatenate(clv or [[]]), pa.float64(),
                                       from_pandas=True),
    })


def _training_sample(con, size: int, seed: int) -> str | None:
    """Past features are built for at most ``size`` customers (a reproducible pseudo-random
    choice by hashed id): at a million customers, six as-of feature builds of everyone cost
    minutes, and the models only ever see a bounded sample anyway."""
    if fetch_scalar(con, "SELECT count(*) FROM core.customers") <= size:
        return None
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _training_population AS
        SELECT customer_id FROM core.customers ORDER BY hash(customer_id || '{int(seed)}')
        LIMIT {int(size)}""")
    return "_training_population"


def _history(con, name: str, snapshot: dt.date, horizon: int, population: str, cfg) -> tuple[
        ModelReport, pa.Table | None, pa.Table | None]:
    """The model's report (cutoffs; the reason when it cannot be trained), its training rows
    and its holdout rows."""
    first = con.execute("SELECT min(ordered_at)::DATE FROM core.order_lines "
                        "WHERE customer_id IS NOT NULL").fetchall()[0][0]
    cutoffs = cutoffs_for(snapshot, first, horizon, cfg.cutoffs, cfg.cutoff_step_days,
                          cfg.min_history_days)
    report = ModelReport(name, False, cutoffs=[c.isoformat() for c in cutoffs])
    if len(cutoffs) < 2:
        report.reason = (
            f"history too short: needs two cutoffs {horizon} days before the snapshot with "
            f"{cfg.min_history_days} days of orders behind them (orders from {first}, "
            f"snapshot {snapshot})")
        return report, None, None
    sample = _training_sample(con, cfg.max_training_rows, cfg.seed)
    holdout = _labelled(con, cutoffs[0], horizon, population, sample)
    train = pa.concat_tables([_labelled(con, c, horizon, population, sample)
                              for c in cutoffs[1:]])
    if train.num_rows > cfg.max_training_rows:  # a bounded sample fits in memory at any size
        rng = np.random.default_rng(cfg.seed)
        train = train.take(np.sort(rng.choice(train.num_rows, cfg.max_training_rows,
                                              replace=False)))
    return report, train, holdout


def train_churn(con, snapshot: dt.date, cfg) -> tuple[ModelReport, object | None]:
    report, train, holdout = _history(
        con, "churn", snapshot, CHURN_HORIZON_DAYS, "orders_lifetime > 0", cfg)
    if report.reason:
        return report, None
    y_train = train.column("churned").to_numpy(zero_copy_only=False).astype(int)
    y_test = holdout.column("churned").to_numpy(zero_copy_only=False).astype(int)
    counts = [int(y.sum()) for y in (y_train, y_test)] + [int((1 - y).sum()) for y in (y_train, y_test)]
    if min(counts) < MIN_CLASS_ROWS:
        report.reason = (f"too few labels: churned/stayed in training {counts[0]}/{counts[2]}, "
                         f"in the holdout {counts[1]}/{counts[3]} (at least {MIN_CLASS_ROWS} each)")
        return report, None
    model = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.08,
                                           random_state=cfg.seed)
    model.fit(_matrix(train), y_train)
    scores = model.predict_proba(_matrix(holdout))[:, 1]
    recency = holdout.column("recency_days").to_numpy(zero_copy_only=False).astype(float)
    report.trained = True
    report.train_rows, report.holdout_rows = train.num_rows, holdout.num_rows
    report.metrics = {
        "holdout_auc": round(float(roc_auc_score(y_test, scores)), 4),
        "recency_only_auc": round(float(roc_auc_score(y_test, np.nan_to_num(recency))), 4),
        "holdout_churn_rate": round(float(y_test.mean()), 4),
    }
    return report, model


def train_clv(con, snapshot: dt.date, cfg) -> tuple[ModelReport, object | None]:
    report, train, holdout = _history(
        con, "clv", snapshot, CLV_HORIZON_DAYS, "tenure_days >= 0", cfg)
    if report.reason:
        return report, None
    if min(train.num_rows, holdout.num_rows) < MIN_CLV_ROWS:
        report.reason = (f"too few customers: {train.num_rows} in training, "
                         f"{holdout.num_rows} in the holdout (at least {MIN_CLV_ROWS} each)")
        return report, None
    y_train = train.column("future_spend").to_numpy()
    y_test = holdout.column("future_spend").to_numpy()
    # Poisson loss: a mean (expected spend), not a median, and never negative.
    model = HistGradientBoostingRegressor(loss="poisson", max_iter=200, learning_rate=0.08,
                                          random_state=cfg.seed)
    model.fit(_matrix(train), y_train)
    predicted = model.predict(_matrix(holdout))
    last_year = np.clip(holdout.column("spend_365d").to_numpy(zero_copy_only=False)
                        .astype(float), 0, None)
    report.trained = True
    report.train_rows, report.holdout_rows = train.num_rows, holdout.num_rows
    report.metrics = {
        # RMSE judges an expected value; MAE favours medians (and so "spend nothing")
        "holdout_rmse": round(float(root_mean_squared_error(y_test, predicted)), 2),
        "last_year_spend_rmse": round(float(root_mean_squared_error(y_test, last_year)), 2),
        "holdout_mae": round(float(mean_absolute_error(y_test, predicted)), 2),
        "last_year_spend_mae": round(float(mean_absolute_error(y_test, last_year)), 2),
        "holdout_mean_spend": round(float(y_test.mean()), 2),
        # CLV is an expected value: summed over customers it should match what they spent
        "holdout_predicted_over_actual_total": round(float(predicted.sum() / max(y_test.sum(), 1)),
                                                     3),
    }
    return report, model


def recent_model(models_dir: Path | None, name: str, now: dt.datetime,
                 retrain_days: int) -> tuple[ModelReport, object] | None:
    """The saved model and its report when it is younger than ``retrain_days`` and was made
    by this scikit-learn for these features; None otherwise (train a new one)."""
    path = models_dir / f"{name}.joblib" if models_dir else None
    if path is None or not path.exists() or retrain_days <= 0:
        return None
    try:
        saved = joblib.load(path)
    except Exception:  # an unreadable or foreign file: retrain rather than fail the night
        return None
    report = ModelReport(**saved["report"])
    fresh = (report.trained_at is not None and
             now - dt.datetime.fromisoformat(report.trained_at) < dt.timedelta(days=retrain_days))
    if not fresh or saved["sklearn"] != sklearn.__version__ or saved["features"] != MODEL_FEATURES:
        return None
    report.reused = True
    return report, saved["model"]


def save_model(model, report: ModelReport, models_dir: Path | None, run_id: str) -> None:
    if models_dir is None or model is None or report.reused:
        return
    models_dir.mkdir(parents=True, exist_ok=True)
    path = models_dir / f"{report.name}.joblib"
    joblib.dump({"model": model, "features": MODEL_FEATURES, "run_id": run_id,
                 "sklearn": sklearn.__version__, "report": report.as_dict()}, path)
    report.model_path = str(path)
    (models_dir / f"{report.name}.json").write_text(json.dumps(report.as_dict(), indent=2))


def build_predictions(con, snapshot: dt.date, cfg, models_dir: Path | None = None,
                      run_id: str = "", retrain: bool = False,
                      now: dt.datetime | None = None) -> list[ModelReport]:
    """features.customer_predictions(customer_id, churn_probability, predicted_clv_365d).
    Models younger than ``cfg.retrain_days`` in ``models_dir`` are reused unless ``retrain``."""
    now = now or dt.datetime.now()
    fitted = []
    for name, train in (("churn", train_churn), ("clv", train_clv)):
        saved = None if retrain else recent_model(models_dir, name, now, cfg.retrain_days)
        report, model = saved if saved else train(con, snapshot, cfg)
        if model is not None and not report.reused:
            report.trained_at = now.isoformat(timespec="seconds")
        fitted.append((report, model))
    (churn, churn_model), (clv, clv_model) = fitted
    con.execute("DROP TABLE IF EXISTS _asof")
    con.register("_predictions", _score_today(con, churn_model, clv_model))
    con.execute("CREATE OR REPLACE TABLE features.customer_predictions AS "
                "SELECT * FROM _predictions")
    con.unregister("_predictions")
    for report, model in fitted:
        save_model(model, report, models_dir, run_id)
    return [churn, clv]
