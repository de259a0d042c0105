"""History and publishing: the only assets whose output analysts and BI tools see.

``published_profile`` runs only when every blocking check upstream passed (Dagster skips it
otherwise), so a bad export or a failed check never reaches the serving file or the exports.
"""

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from pipelines.faults import crash_point
from pipelines.resources import Warehouse
from transforms.export import (
    commit_exports,
    contract_select,
    load_contract,
    prune_exports,
    recover_exports,
    stage_exports,
)
from transforms.history import record_history
from transforms.privacy import masked_select, pii_salt
from transforms.serving import build_serving_file, swap_into_place
from transforms.sql import describe, quote_ident
from transforms.summary import run_summary

# export name → working table. Column names and types are fixed by transforms/export_contract.json.
EXPORTS = {
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
ROWS_PER_CUSTOMER = {"customer_tags"}  # exports whose customer keys are hashed once per customer


def export_selects(con, salt: str | None, contract: dict | None = None) -> dict[str, str]:
    """The SELECT of each export: PII masked when a salt is given, then typed by the contract
    (``contract`` or, with a salt, the committed one: the contract describes masked exports)
    and text neutralised for spreadsheets (transforms/export.py: contract_select). The snapshot
    date is the partition folder, not a column (readers would see it twice)."""
    if contract is None and salt is not None:
        contract = load_contract()
    selects = {}
    for name, table in EXPORTS.items():
        columns = [c for c in describe(con, table) if c != "snapshot_date"]
        sql = (masked_select(columns, table, salt, name in ROWS_PER_CUSTOMER)
               if salt is not None else
               f"SELECT {', '.join(map(quote_ident, columns))} FROM {table}")
        selects[name] = contract_select(name, sql, describe(con, sql), contract)
    return selects


@asset(group_name="profile", kinds={"duckdb"}, deps=["customer_profile"],
       description="history.profile_snapshots (each customer's segment, value tier, lifecycle, "
                   "tags and key figures per day) and history.profile_changes (tag gained / "
                   "lost, segment / value tier / lifecycle changed, per customer and day).")
def profile_history(warehouse: Warehouse) -> MaterializeResult:
    cfg = warehouse.config
    with warehouse.connect() as con:
        stats = record_history(con, cfg.resolved_snapshot_date(), cfg.history.value_tier_group,
                               cfg.history.lifecycle_group, cfg.history.snapshot_days)
        changes = con.execute(
            "SELECT change, count(*) FROM history.profile_changes WHERE snapshot_date = ? "
            "GROUP BY ALL ORDER BY ALL", [cfg.resolved_snapshot_date()]).fetchall()
    return MaterializeResult(metadata={
        "snapshots_kept": MetadataValue.int(stats["snapshots_kept"]),
        "changes_today": MetadataValue.int(stats["changes_today"]),
        "compared_with": MetadataValue.text(str(stats["compared_with"] or "first snapshot")),
        "changes_by_kind": MetadataValue.json({c: n for c, n in changes}),
    })


@asset(group_name="publish", kinds={"duckdb", "parquet"},
       deps=["customer_profile", "profile_history", "marts", "customer_segments"],
       description="Publishes for analysts and BI, only after every blocking check passed: "
                   "the serving DuckDB file (built aside, atomically renamed over the old one) "
                   "and PII-masked Parquet exports (<exports>/<table>/snapshot_date=…/, "
                   "latest/<table>.parquet), with retention. Metadata: the run summary.")
def published_profile(context: AssetExecutionContext, warehouse: Warehouse) -> MaterializeResult:
    cfg = warehouse.config
    snapshot = cfg.resolved_snapshot_date()
    for action in recover_exports(cfg.exports_dir):
        context.log.warning(f"left by an interrupted run: {action}")
    salt = pii_salt(cfg.warehouse_path) if cfg.publish.mask_pii else None
    contract = load_contract() if cfg.publish.mask_pii else None
    with warehouse.connect() as con:
        staged = stage_exports(con, export_selects(con, salt), cfg.exports_dir, snapshot,
                               context.run_id, contract)
        crash_point("publish:exports_staged")
        serving_tmp = build_serving_file(con, cfg.serving_path, context.run_id, snapshot)
        crash_point("publish:serving_built")
        summary = run_summary(con, snapshot)
    # The visible step: a few renames, exports first, then the serving file.
    commit_exports(staged, cfg.exports_dir)
    swap_into_place(serving_tmp, cfg.serving_path)
    pruned = prune_exports(cfg.exports_dir, snapshot, cfg.publish.retention_days)
    return MaterializeResult(metadata={
        "serving_file": MetadataValue.path(str(cfg.serving_path)),
        "exports_dir": MetadataValue.path(str(cfg.exports_dir)),
        "snapshot_date": MetadataValue.text(snapshot.isoformat()),
        "export_rows": MetadataValue.json({s.name: s.rows for s in staged}),
        "pii_masked": MetadataValue.bool(salt is not None),
        "partitions_pruned": MetadataValue.int(len(pruned)),
        "summary/rows_per_layer": MetadataValue.json(summary["rows_per_layer"]),
        "summary/quarantine_by_entity": MetadataValue.json(summary["quarantine_by_entity"]),
        "summary/identity_precision": MetadataValue.float(
            summary["identity_precision"] if summary["identity_precision"] is not None
            else float("nan")),
        "summary/tag_coverage_change": MetadataValue.json(summary["tag_coverage_change"]),
    })
