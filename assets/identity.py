"""Identity asset: source records → links (strong keys with hub guards, then Splink) →
size-capped clusters → stable customer ids; scored against a ground truth when one is set."""


import datetime as dt

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from assets._metadata import table_metadata
from pipelines.resources import Warehouse
from transforms.identity import resolve_identities
from transforms.identity_score import score_identity


@asset(group_name="identity", kinds={"duckdb", "splink"},
       deps=["staging_crm_customers", "staging_erp_customers", "staging_wechat_followers"],
       description="Links customer records of CRM, ERP and WeChat: shared phone, email, unionid "
                   "or CRM reference (hub keys excluded), then Splink on names (Han and pinyin), "
                   "birth date, city, address; clusters capped in size; stable customer ids "
                   "(identity.customer_map; merges and splits in identity.id_changes).")
def customer_identity(context: AssetExecutionContext, warehouse: Warehouse) -> MaterializeResult:
    cfg = warehouse.config.identity
    truth = warehouse.config.ground_truth_path
    timings: dict[str, float] = {}
    with warehouse.connect() as con:
        stats = resolve_identities(con, cfg, context.run_id, dt.datetime.now(),
                                   full=warehouse.full_rebuild, timings=timings)
        hubs = con.execute("""SELECT key_type, key_value, records, distinct_names, reason
                              FROM identity.hub_keys ORDER BY records DESC""").fetchall()
        rules = dict(con.execute("SELECT rule, count(*) FROM identity.record_links "
                                 "GROUP BY ALL ORDER BY 1").fetchall())
        score = score_identity(con, truth, cache=True) if truth else None
        con.execute("DROP TABLE IF EXISTS identity.latest_score")
        if score is not None:  # read by the run summary on the published asset
            con.execute("CREATE TABLE identity.latest_score AS "
                        "SELECT unnest(map_keys(m)) AS metric, unnest(map_values(m)) AS value "
                        "FROM (SELECT MAP(?::VARCHAR[], ?::DOUBLE[]) AS m)",
                        [list(score.as_dict()), [float(v) for v in score.as_dict().values()]])
        meta = table_metadata(con, "identity.customer_map")
    for key_type, value, n, names, reason in hubs[:20]:
        context.log.warning(f"hub {key_type} {_masked(value)}: {n} records, {names} names ({reason}); "
                            "not used for linking")
    if stats["clusters_split_by_cap"]:
        context.log.warning(f"{stats['clusters_split_by_cap']} cluster(s) over "
                            f"{cfg.max_cluster_records} records split on their weakest links "
                            "(identity.cluster_splits)")
    meta.update({name: MetadataValue.int(int(n)) for name, n in stats.items()})
    meta["links_by_rule"] = MetadataValue.json(rules)
    meta["seconds_by_step"] = MetadataValue.json(timings)
    meta["hub_key_list"] = MetadataValue.md(
        "| type | value | records | names | reason |\n|---|---|---|---|---|\n"
        + "\n".join(f"| {t} | {_masked(v)} | {n} | {d} | {r} |" for t, v, n, d, r in hubs))
    if score is not None:
        meta["ground_truth"] = MetadataValue.path(str(truth))
        meta.update({f"score/{k}": MetadataValue.float(float(v)) if isinstance(v, float)
                     else MetadataValue.int(int(v)) for k, v in score.as_dict().items()})
    return MaterializeResult(metadata=meta)


def _masked(value: str) -> str:
    """Dagster's event log keeps metadata forever and `profiles forget` cannot reach it: show
    enough of a hub key to recognise a switchboard (+86105*****678), not a person's number.
    The whole value is in identity.hub_keys."""
    return value[:6] + "*" * max(len(value) - 9, 1) + value[-3:] if len(value) > 9 else "***"
