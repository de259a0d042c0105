"""Feature assets: one row per customer as of the snapshot date."""


from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from assets._metadata import table_metadata
from pipelines.resources import Warehouse
from transforms.features_refresh import refresh_features
from transforms.predict import build_predictions


@asset(group_name="features", kinds={"duckdb"}, deps=["core_customers", "core_facts"],
       description="features.customer_features: basic, value (RFM), behaviour, funnel and "
                   "WeChat features per customer as of the snapshot date (see FEATURES). A "
                   "night summarises again only customers whose inputs changed.")
def customer_features(warehouse: Warehouse) -> MaterializeResult:
    snapshot = warehouse.config.resolved_snapshot_date()
    with warehouse.connect() as con:
        refreshed = refresh_features(con, snapshot, full=warehouse.full_rebuild)
        meta = table_metadata(con, "features.customer_features")
        rfm = con.execute("""SELECT rfm_segment, count(*) FROM features.customer_features
                             GROUP BY ALL ORDER BY 2 DESC""").fetchall()
    meta["snapshot_date"] = MetadataValue.text(snapshot.isoformat())
    meta["rfm_segments"] = MetadataValue.json(dict(rfm))
    meta["customers_summarised"] = MetadataValue.int(refreshed.summarised)
    meta["summarised_everyone"] = MetadataValue.bool(refreshed.full)
    meta["summarised_because"] = MetadataValue.text(refreshed.reason)
    meta["seconds_finishing_everyone"] = MetadataValue.float(round(refreshed.finish_seconds, 2))
    return MaterializeResult(metadata=meta)


@asset(group_name="features", kinds={"duckdb", "sklearn"}, deps=["customer_features"],
       description="features.customer_predictions: churn probability (no purchase in the next "
                   "90 days) and predicted net spend in the next 365 days, from gradient "
                   "boosting trained on features as of past cutoffs; NULL when a model is not "
                   "published (history short, labels too few, no better than its naive "
                   "baseline, or failed), with the reason in the metadata.")
def customer_predictions(context: AssetExecutionContext, warehouse: Warehouse) -> MaterializeResult:
    cfg = warehouse.config
    snapshot = cfg.resolved_snapshot_date()
    with warehouse.connect() as con:
        reports = build_predictions(con, snapshot, cfg.models, cfg.models_dir, context.run_id,
                                    retrain=warehouse.full_rebuild)
        meta = table_metadata(con, "features.customer_predictions")
    for r in reports:
        if not r.published:
            context.log.warning(f"{r.name} model not published: {r.reason}; its column is NULL")
        meta[f"{r.name}/trained"] = MetadataValue.bool(r.trained)
        meta[f"{r.name}/published"] = MetadataValue.bool(r.published)
        meta[f"{r.name}/reason"] = MetadataValue.text(r.reason)
        meta[f"{r.name}/reused_saved_model"] = MetadataValue.bool(r.reused)
        meta[f"{r.name}/baseline_decision"] = MetadataValue.text(r.decision)
        meta[f"{r.name}/dropped_features"] = MetadataValue.json(r.dropped_features)
        meta[f"{r.name}/detail"] = MetadataValue.json(r.as_dict())
        for name, value in r.metrics.items():
            meta[f"{r.name}/{name}"] = MetadataValue.float(value)
    return MaterializeResult(metadata=meta)
