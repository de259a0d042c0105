"""Staging assets: typed, normalised rows per entity; unusable rows to staging.quarantine."""


from dagster import AssetExecutionContext, AssetsDefinition, MaterializeResult, MetadataValue, asset

from assets._metadata import table_metadata
from pipelines.resources import Warehouse
from transforms.schema import ENTITIES
from transforms.staging import build_staging, ensure_staging_schema


def _staging_asset(entity_name: str) -> AssetsDefinition:
    entity = ENTITIES[entity_name]

    @asset(name=f"staging_{entity_name}", group_name="staging", kinds={"duckdb"},
           deps=[f"raw_{entity_name}"],
           description=f"{entity.description}, typed and normalised (E.164 phones, ISO dates, "
                       f"yuan amounts, canonical regions). Rejects go to staging.quarantine.")
    def _stage(context: AssetExecutionContext, warehouse: Warehouse) -> MaterializeResult:
        cfg = warehouse.config
        src = cfg.sources.get(entity_name)
        mapping = {f: m.column for f, m in src.mapping().items()} if src else {}
        units = {f: m.unit for f, m in src.mapping().items()} if src else {}
        with warehouse.connect() as con:
            ensure_staging_schema(con)
            stats = build_staging(con, entity_name, mapping, units, cfg.phone_region,
                                  full=warehouse.full_rebuild)
            accounting = con.execute(
                """SELECT source_file, rows_read, rows_staged, rows_quarantined, balanced
                FROM staging.file_accounting WHERE entity = ? ORDER BY source_file""",
                [entity_name]).fetchall()
            reasons = con.execute(
                """SELECT coalesce(column_name, '(row)') || ': ' || reason, count(*)
                FROM staging.quarantine WHERE entity = ? GROUP BY ALL ORDER BY 2 DESC LIMIT 10""",
                [entity_name]).fetchall()
            meta = table_metadata(con, f"staging.{entity_name}")
        unbalanced = [a for a in accounting if not a[4]]
        if unbalanced:  # rows_read = staged + quarantined must hold for every file
            raise RuntimeError(f"row accounting does not balance for {unbalanced}")
        for reason, count in reasons:
            context.log.warning(f"quarantined {count} row(s): {reason}")
        meta.update({
            "rows_in": MetadataValue.int(stats.rows_in),
            "rows_parsed_this_run": MetadataValue.int(stats.rows_parsed),
            "full_rebuild": MetadataValue.bool(stats.full_rebuild),
            "rows_staged": MetadataValue.int(stats.rows_staged),
            "rows_quarantined": MetadataValue.int(stats.rows_quarantined),
            "value_issues": MetadataValue.int(stats.value_issues),
            "file_accounting": MetadataValue.md(
                "| file | read | staged | quarantined |\n|---|---|---|---|\n" + "\n".join(
                    f"| {f} | {r} | {s} | {q} |" for f, r, s, q, _ in accounting)),
        })
        return MaterializeResult(metadata=meta)

    return _stage


staging_assets = [_staging_asset(name) for name in ENTITIES]
