"""Identity assets: source records → links (with hub guards) → stable customer ids."""


import datetime as dt

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from assets._metadata import table_metadata
from pipelines.resources import Warehouse
from transforms.identity import (
    assign_customer_ids,
    build_links,
    build_source_records,
    cluster_records,
    ensure_identity_schema,
)


@asset(group_name="identity", kinds={"duckdb"},
       deps=["staging_crm_customers", "staging_erp_customers", "staging_wechat_followers"],
       description="Links customer records of CRM, ERP and WeChat that share a phone, email, "
                   "unionid or CRM reference (hub keys excluded), clusters them and assigns "
                   "stable customer ids (identity.customer_map; history in identity.id_changes).")
def customer_identity(context: AssetExecutionContext, warehouse: Warehouse) -> MaterializeResult:
    cfg = warehouse.config
    with warehouse.connect() as con:
        ensure_identity_schema(con)
        records = build_source_records(con)
        links = build_links(con, cfg.identity.hub_max_distinct_names, cfg.identity.hub_max_records)
        clusters = cluster_records(con)
        ids = assign_customer_ids(con, context.run_id, dt.datetime.now())
        hubs = con.execute("""SELECT key_type, key_value, records, distinct_names, reason
                              FROM identity.hub_keys ORDER BY records DESC LIMIT 20""").fetchall()
        meta = table_metadata(con, "identity.customer_map")
    for key_type, value, n, names, reason in hubs:
        context.log.warning(f"hub {key_type} {value}: {n} records, {names} names ({reason}); "
                            "not used for linking")
    meta.update({
        "source_records": MetadataValue.int(records),
        "links": MetadataValue.int(links["links"]),
        "hub_keys": MetadataValue.int(links["hub_keys"]),
        "clusters": MetadataValue.int(clusters),
        "customers": MetadataValue.int(ids["customers"]),
        "ids_merged": MetadataValue.int(ids["merges"]),
        "ids_split": MetadataValue.int(ids["splits"]),
    })
    return MaterializeResult(metadata=meta)
