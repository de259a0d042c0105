"""Mart assets: analyses over the profile (published by assets.publish)."""


from dagster import MaterializeResult, MetadataValue, asset

from pipelines.resources import Warehouse
from transforms.marts import build_marts


@asset(group_name="marts", kinds={"duckdb"}, deps=["customer_profile"],
       description="Analyses over the profile: region distribution, lead source conversion, "
                   "signed vs potential customers, funnel dwell per stage, customers by region "
                   "× industry × segment, tag co-occurrence, tag summary (segment summary is "
                   "built with the segments).")
def marts(warehouse: Warehouse) -> MaterializeResult:
    funnel = warehouse.config.funnel
    with warehouse.connect() as con:
        counts = build_marts(con, funnel.signed_stages, funnel.potential_stages)
    return MaterializeResult(metadata={f"marts.{k}": MetadataValue.int(v) for k, v in counts.items()})
