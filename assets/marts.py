"""Mart assets and the Parquet export for BI tools."""


from dagster import MaterializeResult, MetadataValue, asset

from pipelines.resources import Warehouse
from transforms.export import export_table
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


@asset(group_name="publish", kinds={"parquet"}, deps=["customer_profile", "marts"],
       description="Parquet export of the profile, tags, segments and marts for BI: "
                   "<exports>/<table>/snapshot_date=YYYY-MM-DD/data.parquet, written aside "
                   "and renamed into place with a _SUCCESS marker.")
def parquet_exports(warehouse: Warehouse) -> MaterializeResult:
    cfg = warehouse.config
    snapshot = cfg.resolved_snapshot_date()
    tables = {
        "profile": "profile.customer_profile",
        "customer_tags": "profile.customer_tags",
        "segments": "profile.customer_segments",
        "segment_summary": "marts.segment_summary",
        "region_distribution": "marts.region_distribution",
        "lead_source_conversion": "marts.lead_source_conversion",
        "signed_vs_potential": "marts.signed_vs_potential",
        "funnel_stage_dwell": "marts.funnel_stage_dwell",
        "customers_by_region_industry_segment": "marts.customers_by_region_industry_segment",
        "tag_cooccurrence": "marts.tag_cooccurrence",
        "tag_summary": "marts.tag_summary",
    }
    written = {}
    with warehouse.connect() as con:
        for name, table in tables.items():
            written[name] = str(export_table(con, table, name, cfg.exports_dir, snapshot))
    return MaterializeResult(metadata={
        "exports_dir": MetadataValue.path(str(cfg.exports_dir)),
        "files": MetadataValue.json(written),
        "snapshot_date": MetadataValue.text(snapshot.isoformat()),
    })
