"""Profile assets: tags from analysts' rules, segments, and the wide customer profile."""


from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    asset,
)

from assets._metadata import table_metadata
from pipelines.resources import Warehouse
from transforms.profile import build_profile
from transforms.segments import build_segments
from transforms.tags import evaluate_tags, load_rules, validate_rules


@asset(group_name="profile", kinds={"duckdb"}, deps=["customer_features"],
       description="profile.customer_tags (customer, tag, level 1/2/3) from tag_rules/*.yaml, "
                   "evaluated in one pass; profile.tag_catalog with coverage per tag; "
                   "profile.tag_changes: tags gained / lost per customer since the last run.")
def customer_tags(context: AssetExecutionContext, warehouse: Warehouse) -> MaterializeResult:
    rules = load_rules(warehouse.config.tag_rules_dir)
    with warehouse.connect() as con:
        validate_rules(rules, con)
        counts = evaluate_tags(con, rules, warehouse.config.resolved_snapshot_date(),
                               context.run_id, full=warehouse.full_rebuild)
        coverage = con.execute("""SELECT level1 || '/' || level2 || '/' || level3, coverage
                                  FROM profile.tag_catalog ORDER BY tag_id""").fetchall()
        changes = con.execute("""SELECT tag_id, change, count(*) FROM profile.tag_changes
                                 WHERE run_id = ? GROUP BY ALL ORDER BY ALL""",
                              [context.run_id]).fetchall()
        meta = table_metadata(con, "profile.customer_tags")
    meta["tags_defined"] = MetadataValue.int(counts["tags"])
    meta["coverage"] = MetadataValue.json({name: float(c) for name, c in coverage})
    meta["changes_since_previous_run"] = MetadataValue.json(
        {f"{tag} {change}": n for tag, change, n in changes})
    return MaterializeResult(metadata=meta)


@asset(group_name="profile", kinds={"duckdb", "sklearn"}, deps=["customer_features"],
       description="profile.customer_segments: KMeans segments (k by silhouette, ids carried "
                   "from the previous run's centroids) with persona names; "
                   "marts.segment_summary with size and feature means per segment.")
def customer_segments(warehouse: Warehouse) -> MaterializeResult:
    cfg = warehouse.config
    with warehouse.connect() as con:
        result = build_segments(con, (cfg.segments.k_min, cfg.segments.k_max),
                                cfg.segments.sample_size, cfg.segments.seed, cfg.models_dir,
                                cfg.resolved_snapshot_date().isoformat())
        meta = table_metadata(con, "marts.segment_summary", preview_rows=20)
    meta.update({
        "k": MetadataValue.int(result.k),
        "silhouette": MetadataValue.float(result.silhouette if result.silhouette is not None
                                          else float("nan")),
        "sizes": MetadataValue.json({result.names[s]: n for s, n in result.sizes.items()}),
        "model_path": MetadataValue.path(str(result.model_path or "")),
    })
    return MaterializeResult(metadata=meta)


@asset(group_name="profile", kinds={"duckdb"},
       deps=["core_customers", "customer_features", "customer_predictions", "customer_tags",
             "customer_segments"],
       description="profile.customer_profile: one row per customer with golden fields, "
                   "features, segment and tags.",
       check_specs=[AssetCheckSpec("one_row_per_customer", asset="customer_profile",
                                   blocking=True,
                                   description="every customer exactly once, none missing")])
def customer_profile(warehouse: Warehouse) -> MaterializeResult:
    snapshot = warehouse.config.resolved_snapshot_date()
    with warehouse.connect() as con:
        build_profile(con, snapshot, warehouse.config.privacy.consent_required)
        rows, distinct, customers = con.execute(
            """SELECT count(*), count(DISTINCT customer_id),
                      (SELECT count(*) FROM core.customers) FROM profile.customer_profile"""
        ).fetchall()[0]
        meta = table_metadata(con, "profile.customer_profile")
    check = AssetCheckResult(
        check_name="one_row_per_customer", passed=rows == distinct == customers,
        severity=AssetCheckSeverity.ERROR,
        metadata={"rows": rows, "distinct_customer_ids": distinct, "core_customers": customers})
    return MaterializeResult(metadata=meta, check_results=[check])
