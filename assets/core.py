"""Core assets: golden customer records and facts attached to customer ids."""


from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from assets._metadata import table_metadata
from pipelines.resources import Warehouse
from transforms.core import build_customers, ensure_core_schema
from transforms.facts import build_facts
from transforms.sql import fetch_scalar


@asset(group_name="core", kinds={"duckdb"}, deps=["customer_identity"],
       description="core.customers: one golden record per customer by the survivorship rules "
                   "in profiles.yaml, with field lineage in core.customer_field_lineage.")
def core_customers(warehouse: Warehouse) -> MaterializeResult:
    with warehouse.connect() as con:
        ensure_core_schema(con)
        computed = build_customers(con, warehouse.config.survivorship.rules(),
                                   full=warehouse.full_rebuild)
        meta = table_metadata(con, "core.customers")
        meta["golden_records_computed"] = MetadataValue.int(computed)
        meta["customers_with_same_source_duplicates"] = MetadataValue.int(fetch_scalar(
            con, """SELECT count(*) FROM (SELECT customer_id, source FROM identity.customer_map
                    GROUP BY ALL HAVING count(*) > 1)"""))
        return MaterializeResult(metadata=meta)


@asset(group_name="core", kinds={"duckdb"},
       deps=["customer_identity", "staging_erp_orders", "staging_wechat_events",
             "staging_crm_followups", "staging_crm_opportunities"],
       description="core.order_lines (ERP + WeChat mall), core.wechat_events, core.followups, "
                   "core.opportunity_stages; facts of unknown customers in core.unmatched_facts.")
def core_facts(context: AssetExecutionContext, warehouse: Warehouse) -> MaterializeResult:
    """Incremental on ordinary nights: new staging rows are appended (transforms.facts)."""
    with warehouse.connect() as con:
        ensure_core_schema(con)
        counts = build_facts(con, full=warehouse.full_rebuild)
        meta = table_metadata(con, "core.order_lines")
    if counts["unmatched_facts"]:
        context.log.warning(f"{counts['unmatched_facts']} fact rows reference no known customer "
                            "(see core.unmatched_facts)")
    meta.update({name: MetadataValue.int(n) for name, n in counts.items()})
    return MaterializeResult(metadata=meta)
