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

A model is published only when it beats its named naive baseline on the same holdout (churn:
the holdout AUC of recency alone; CLV: the RMSE of "same net spend as the last 365 days");
both figures and the decision are in the report. Features that are entirely NULL or take one
value in every training row are dropped before fitting (scikit-learn 1.9 histogram gradient
boosting raised ``ValueError: window shape cannot be larger than input array shape`` on an
all-NaN column) and named in the report; the kept list is saved with the model and scoring
uses it. One model's failure, in training or scoring (an exception, a saved model whose
features no longer match, a feature NULL for everyone today), leaves its column NULL with the
exception's type and message as the reason: the night still publishes.

Training runs on the first night and then every ``models.retrain_days``: in between, the saved
models (``models_dir``) only score today's features, which is all a night with a few new
records needs. ``profiles build --full`` retrains.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import traceback
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
                          "buyer, or the model was not published: not trained, no better than "
                          "recency alone, or not scorable tonight)", "probability"),
    "predicted_clv_365d": ("predicted net spend in the next 365 days (NULL: model not published: "
                           "not trained, no better than last year's spend, or not scorable "
                           "tonight)", "yuan"),
}
MIN_CLASS_ROWS = 30  # of each class (churned / stayed) in training and in the holdout
MIN_CLV_ROWS = 200
log = logging.getLogger(__name__)


@dataclass
class ModelReport:
    name: str
    trained: bool  # fitted (published only if it also beat its baseline and could be scored)
    reason: str = ""  # why the column is NULL tonight ("" when published)
    cutoffs: list[str] = field(default_factory=list)
    train_rows: int = 0
    holdout_rows: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    model_path: str | None = None
    trained_at: str | None = None  # ISO time the model was fitted
    reused: bool = False  # scored with the saved model of an earlier run
    published: bool = False  # tonight's column holds this model's predictions
    features: list[str] = field(default_factory=list)  # what the model was fitted on
    dropped_features: dict[str, str] = field(default_factory=dict)  # name: why not used
    baseline: str = ""  # the naive baseline's metric, next to the model's in metrics
    decision: str = ""  # the model against its baseline, and what was done
    not_reused: str = ""  # why a saved model was not reused (then trained again)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Fitted:
    """A fitted estimator and the model features (a subset of MODEL_FEATURES, in order) it
    was fitted on: scoring passes exactly those columns."""

    estimator: object
    features: list[str]

    def problem(self) -> str:
        """Why this model cannot score MODEL_FEATURES columns ("" when it can)."""
        unknown = [f for f in self.features if f not in MODEL_FEATURES]
        if unknown:
            return f"the model needs features that no longer exist: {', '.join(unknown)}"
        fitted_on = getattr(self.estimator, "n_features_in_", None)
        if fitted_on != len(self.features):
            return (f"the model was fitted on {fitted_on} features but its saved feature list "
                    f"has {len(self.features)}")
        return ""

    def score(self, x: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Churn probability or CLV of ``rows`` (a mask) of ``x``, a MODEL_FEATURES matrix."""
        if self.features == MODEL_FEATURES:
            x = x if rows is None else x[rows]
        else:
            columns = [MODEL_FEATURES.index(f) for f in self.features]
            x = x[:, columns] if rows is None else x[np.ix_(rows, columns)]
        if hasattr(self.estimator, "predict_proba"):
            return self.estimator.predict_proba(x)[:, 1]
        return self.estimator.predict(x)


def _fitted(model) -> Fitted | None:
    """``model`` as a Fitted; a bare estimator (saved before feature lists were kept) was
    fitted on all MODEL_FEATURES."""
    if model is None or isinstance(model, Fitted):
        return model
    return Fitted(model, list(MODEL_FEATURES))


def _describe(error: BaseException) -> str:
    """An exception's type, message and where it was raised, for a report's reason: a
    programming error must be visible, not swallowed."""
    message = " ".join(str(error).split())
    if len(message) > 300:
        message = message[:297] + "..."
    frames = traceback.extract_tb(error.__traceback__)
    where = f" (in {frames[-1].name}, {Path(frames[-1].filename).name}:{frames[-1].lineno})" \
        if frames else ""
    return f"{type(error).__name__}: {message}{where}"


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


def _matrix(table: pa.Table, features: list[str] = MODEL_FEATURES) -> np.ndarray:
    """The ``features`` of ``table`` (DOUBLE columns, see MODEL_COLUMNS); NULL is NaN.
    Filled column by column in Fortran order from one chunk per column: about 2.5 times
    faster than np.column_stack over DuckDB's chunked columns (same values)."""
    table = table.select(features).combine_chunks()
    matrix = np.empty((table.num_rows, len(features)), order="F")
    for i, name in enumerate(features):
        matrix[:, i] = table.column(name).to_numpy(zero_copy_only=False)
    return matrix


def usable_features(x: np.ndarray) -> tuple[list[str], dict[str, str]]:
    """The MODEL_FEATURES columns of ``x`` (training rows) worth fitting on, and why the others
    are not: entirely NULL (histogram gradient boosting fails on an all-NaN column), or one
    value in every row (nothing to learn). A column with NULLs and one value is kept: whether
    a customer has the feature at all is information."""
    kept, dropped = [], {}
    for i, name in enumerate(MODEL_FEATURES):
        column = x[:, i]
        present = column[~np.isnan(column)]
        if present.size == 0:
            dropped[name] = "all NULL in the training rows"
        elif present.size == column.size and present.min() == present.max():
            dropped[name] = f"the same value ({present[0]:g}) in every training row"
        else:
            kept.append(name)
    return kept, dropped


def _score_today(con, churn_model, clv_model, failures: dict[str, str] | None = None
                 ) -> pa.Table:
    """Today's churn probability (buyers only) and CLV per customer, scored in batches: one
    model matrix of 1.3M customers is fresh memory the size of the features, and filling it
    cost more than the scoring itself (page faults); a batch's buffers are reused. A model
    that raises leaves its whole column NULL, and ``failures`` says why (by model name)."""
    failures = {} if failures is None else failures
    models = {"churn": _fitted(churn_model), "clv": _fitted(clv_model)}
    decimals = {"churn": 4, "clv": 2}
    ids, scored = [], {"churn": [], "clv": []}
    reader = con.sql(f"SELECT customer_id, {MODEL_COLUMNS} FROM features.customer_features"
                     ).to_arrow_reader(_SCORE_BATCH)
    for batch in reader:
        table = pa.Table.from_batches([batch])
        x = _matrix(table)
        buyer = x[:, MODEL_FEATURES.index("orders_lifetime")] > 0
        ids.extend(table.column("customer_id").chunks)
        for name, model in models.items():
            values = np.full(len(x), np.nan)
            rows = buyer if name == "churn" else None
            if model is not None and name not in failures and (rows is None or rows.any()):
                try:
                    if rows is None:
                        values = model.score(x)
                    else:
                        values[rows] = model.score(x, rows)
                except Exception as error:  # reported, the other model goes on
                    log.warning("%s model failed to score", name, exc_info=True)
                    failures[name] = f"scoring failed: {_describe(error)}"
            scored[name].append(np.round(values, decimals[name]))
    total = sum(len(c) for c in ids)
    columns = {name: np.full(total, np.nan) if name in failures
               else np.concatenate(scored[name] or [[]]) for name in scored}
    return pa.table({
        "customer_id": pa.chunked_array(ids, reader.schema.field("customer_id").type),
        "churn_probability": pa.array(columns["churn"], pa.float64(), from_pandas=True),
        "predicted_clv_365d": pa.array(columns["clv"], pa.float64(), from_pandas=True),
    })


def _null_today(con, name: str, model: Fitted) -> list[str]:
    """The model's features that are NULL for everyone it would score today (churn: buyers):
    scoring would treat a whole source gone missing as every customer lacking it."""
    if not model.features:
        return []
    where = "WHERE orders_lifetime > 0" if name == "churn" else ""
    counts = con.execute(
        "SELECT " + ", ".join(f"count({f})" for f in model.features) +
        f", count(*) FROM features.customer_features {where}").fetchall()[0]
    if counts[-1] == 0:
        return []
    return [f for f, n in zip(model.features, counts[:-1], strict=True) if n == 0]


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


def _features_for(report: ModelReport, train: pa.Table) -> np.ndarray | None:
    """The training matrix of the usable features (report.features; the others in
    report.dropped_features), or None with report.reason set when none is usable."""
    x = _matrix(train)
    kept, report.dropped_features = usable_features(x)
    report.features = kept
    if not kept:
        report.reason = ("no usable features: every model feature is NULL or takes one value "
                         "in all training rows")
        return None
    return x if kept == MODEL_FEATURES else x[:, [MODEL_FEATURES.index(f) for f in kept]]


def _judge(report: ModelReport, model_figure: str, baseline_figure: str, label: str,
           baseline_label: str, higher_is_better: bool) -> bool:
    """Whether the model beats its baseline on the holdout (strictly, on the reported
    figures); the decision goes to the report, and the reason when it does not."""
    model, baseline = report.metrics[model_figure], report.metrics[baseline_figure]
    beats = model > baseline if higher_is_better else model < baseline
    report.baseline = baseline_figure
    comparison = (">" if beats else "<=") if higher_is_better else ("<" if beats else ">=")
    report.decision = (f"{label} {model:g} {comparison} {baseline_label} {baseline:g} on the "
                       f"holdout: {'published' if beats else 'not published'}")
    if not beats:
        report.reason = (f"no better than its baseline: {label} {model:g} {comparison} "
                         f"{baseline_label} {baseline:g} on the holdout")
    return beats


def train_churn(con, snapshot: dt.date, cfg) -> tuple[ModelReport, Fitted | None]:
    """The churn model and its report; no model when it cannot be trained or does not beat
    recency alone on the holdout."""
    report, train, holdout = _history(
        con, "churn", snapshot, CHURN_HORIZON_DAYS, "orders_lifetime > 0", cfg)
    if report.reason:
        return report, None
    report.train_rows, report.holdout_rows = train.num_rows, holdout.num_rows
    y_train = train.column("churned").to_numpy(zero_copy_only=False).astype(int)
    y_test = holdout.column("churned").to_numpy(zero_copy_only=False).astype(int)
    counts = [int(y.sum()) for y in (y_train, y_test)] + [int((1 - y).sum()) for y in (y_train, y_test)]
    if min(counts) < MIN_CLASS_ROWS:
        single = (" (a single class: nobody churned)" if counts[0] + counts[1] == 0 else
                  " (a single class: nobody stayed)" if counts[2] + counts[3] == 0 else "")
        report.reason = (f"too few labels: churned/stayed in training {counts[0]}/{counts[2]}, "
                         f"in the holdout {counts[1]}/{counts[3]} (at least {MIN_CLASS_ROWS} "
                         f"each){single}")
        return report, None
    x_train = _features_for(report, train)
    if x_train is None:
        return report, None
    model = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.08,
                                           random_state=cfg.seed)
    model.fit(x_train, y_train)
    scores = model.predict_proba(_matrix(holdout, report.features))[:, 1]
    recency = holdout.column("recency_days").to_numpy(zero_copy_only=False).astype(float)
    report.trained = True
    report.metrics = {
        "holdout_auc": round(float(roc_auc_score(y_test, scores)), 4),
        "recency_only_auc": round(float(roc_auc_score(y_test, np.nan_to_num(recency))), 4),
        "holdout_churn_rate": round(float(y_test.mean()), 4),
    }
    if not _judge(report, "holdout_auc", "recency_only_auc", "holdout AUC",
                  "recency-only AUC", higher_is_better=True):
        return report, None
    return report, Fitted(model, report.features)


def train_clv(con, snapshot: dt.date, cfg) -> tuple[ModelReport, Fitted | None]:
    """The CLV model and its report; no model when it cannot be trained or does not beat
    "same net spend as the last 365 days" (RMSE) on the holdout."""
    report, train, holdout = _history(
        con, "clv", snapshot, CLV_HORIZON_DAYS, "tenure_days >= 0", cfg)
    if report.reason:
        return report, None
    report.train_rows, report.holdout_rows = train.num_rows, holdout.num_rows
    if min(train.num_rows, holdout.num_rows) < MIN_CLV_ROWS:
        report.reason = (f"too few customers: {train.num_rows} in training, "
                         f"{holdout.num_rows} in the holdout (at least {MIN_CLV_ROWS} each)")
        return report, None
    y_train = train.column("future_spend").to_numpy()
    y_test = holdout.column("future_spend").to_numpy()
    if not y_train.sum() > 0:  # the Poisson loss needs some spend to learn from
        report.reason = (f"nobody in the {train.num_rows} training rows spent anything in the "
                         f"{CLV_HORIZON_DAYS} days after their cutoff")
        return report, None
    x_train = _features_for(report, train)
    if x_train is None:
        return report, None
    # Poisson loss: a mean (expected spend), not a median, and never negative.
    model = HistGradientBoostingRegressor(loss="poisson", max_iter=200, learning_rate=0.08,
                                          random_state=cfg.seed)
    model.fit(x_train, y_train)
    predicted = model.predict(_matrix(holdout, report.features))
    last_year = np.clip(holdout.column("spend_365d").to_numpy(zero_copy_only=False)
                        .astype(float), 0, None)
    report.trained = True
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
    if not _judge(report, "holdout_rmse", "last_year_spend_rmse", "holdout RMSE",
                  "last-year-spend RMSE", higher_is_better=False):
        return report, None
    return report, Fitted(model, report.features)


def _train_guarded(train, name: str, con, snapshot: dt.date, cfg
                   ) -> tuple[ModelReport, Fitted | None]:
    """``train``, with any exception turned into a model not trained tonight, its type and
    message as the reason (and the traceback in the log): one model never fails the night."""
    try:
        return train(con, snapshot, cfg)
    except Exception as error:  # reported in the reason, logged with traceback
        log.warning("%s model training failed", name, exc_info=True)
        return ModelReport(name, False, reason=f"training failed: {_describe(error)}"), None


def recent_model(models_dir: Path | None, name: str, now: dt.datetime,
                 retrain_days: int) -> tuple[ModelReport, Fitted] | str:
    """The saved model and its report when it is younger than ``retrain_days`` and was made
    by this scikit-learn for these features; otherwise why not ("" when there is none):
    train a new one."""
    path = models_dir / f"{name}.joblib" if models_dir else None
    if path is None or not path.exists() or retrain_days <= 0:
        return ""
    try:
        saved = joblib.load(path)
        report = ModelReport(**saved["report"])
        model = _fitted(saved["model"])
        trained_at = dt.datetime.fromisoformat(report.trained_at or "")
        candidates = saved.get("candidates", saved["features"])  # files before kept lists
    except Exception as error:  # an unreadable or foreign file: retrain
        return f"the saved model could not be read: {_describe(error)}"
    if now - trained_at >= dt.timedelta(days=retrain_days):
        return f"the saved model was trained {trained_at.isoformat()}, {retrain_days} days or more ago"
    if saved["sklearn"] != sklearn.__version__:
        return f"the saved model was made by scikit-learn {saved['sklearn']}"
    if candidates != MODEL_FEATURES:
        return "the model features changed since the saved model was trained"
    if model.problem():
        return f"the saved model does not match its feature list: {model.problem()}"
    report.reused, report.published, report.reason = True, False, ""
    return report, model


def save_model(model: Fitted | None, report: ModelReport, models_dir: Path | None,
               run_id: str) -> None:
    """Keep a newly trained model that beat its baseline (``model``) for the next nights, and
    tonight's report next to it. Without a model the saved one is removed: the newest
    training (or a saved model that failed to score) decides, not an older file."""
    if models_dir is None:
        return
    models_dir.mkdir(parents=True, exist_ok=True)
    path = models_dir / f"{report.name}.joblib"
    if model is None:
        path.unlink(missing_ok=True)
        report.model_path = None
    elif not report.reused:
        report.model_path = str(path)
        joblib.dump({"model": model, "features": model.features, "candidates": MODEL_FEATURES,
                     "run_id": run_id, "sklearn": sklearn.__version__,
                     "report": report.as_dict()}, path)
    (models_dir / f"{report.name}.json").write_text(json.dumps(report.as_dict(), indent=2))


def _scoring_problem(con, name: str, model: Fitted) -> str:
    """Why ``model`` should not score today's features ("" when it should)."""
    try:
        if model.problem():
            return f"not scorable: {model.problem()}"
        missing = _null_today(con, name, model)
    except Exception as error:  # reported; the column stays NULL
        return f"today's features could not be checked: {_describe(error)}"
    if missing:
        return (f"not scored tonight: {', '.join(missing)} NULL for every customer it would "
                f"score, and the model was fitted with {'it' if len(missing) == 1 else 'them'}")
    return ""


def build_predictions(con, snapshot: dt.date, cfg, models_dir: Path | None = None,
                      run_id: str = "", retrain: bool = False,
                      now: dt.datetime | None = None) -> list[ModelReport]:
    """features.customer_predictions(customer_id, churn_probability, predicted_clv_365d).
    Models younger than ``cfg.retrain_days`` in ``models_dir`` are reused unless ``retrain``.
    A column is NULL unless its model was trained (or reused), beat its baseline and scored
    today's features; the report says why not (``reason``)."""
    now = now or dt.datetime.now()
    fitted = []
    for name, train in (("churn", train_churn), ("clv", train_clv)):
        saved = "" if retrain else recent_model(models_dir, name, now, cfg.retrain_days)
        if isinstance(saved, tuple):
            report, model = saved
        else:
            report, model = _train_guarded(train, name, con, snapshot, cfg)
            report.not_reused = saved
            if model is not None:
                report.trained_at = now.isoformat(timespec="seconds")
        fitted.append((report, model))
    con.execute("DROP TABLE IF EXISTS _asof")
    scorable = {}
    for report, model in fitted:
        problem = _scoring_problem(con, report.name, model) if model is not None else ""
        if problem:
            report.reason = problem
        elif model is not None:
            scorable[report.name] = model
    failures: dict[str, str] = {}
    con.register("_predictions", _score_today(con, scorable.get("churn"), scorable.get("clv"),
                                              failures))
    con.execute("CREATE OR REPLACE TABLE features.customer_predictions AS "
                "SELECT * FROM _predictions")
    con.unregister("_predictions")
    for report, model in fitted:
        report.published = report.name in scorable and report.name not in failures
        report.reason = failures.get(report.name, report.reason)
        save_model(None if report.name in failures else model, report, models_dir, run_id)
    return [report for report, _ in fitted]
