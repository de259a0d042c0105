"""Feature assets: one row per customer as of the snapshot date."""


from dagster import MaterializeResult, MetadataValue, asset

from assets._metadata import table_metadata
from pipelines.resources import Warehouse
from transforms.features import build_features


@asset(group_name="features", kinds={"duckdb"}, deps=["core_customers", "core_facts"],
       description="features.customer_features: basic, value (RFM), behaviour, funnel and "
                   "WeChat features per customer as of the snapshot date (see FEATURES).")
def customer_features(warehouse: Warehouse) -> MaterializeResult:
    snapshot = warehouse.config.resolved_snapshot_date()
    with warehouse.connect() as con:
        build_features(con, snapshot)
        meta = table_metadata(con, "features.customer_features")
        rfm = con.execute("""SELECT rfm_segment, count(*) FROM features.customer_features
                             GROUP BY ALL ORDER BY 2 DESC""").fetchall()
    meta["snapshot_date"] = MetadataValue.text(snapshot.isoformat())
    meta["rfm_segments"] = MetadataValue.json(dict(rfm))
    return MaterializeResult(metadata=meta)
