"""Raw layer assets: one per source entity; each appends its new export files to raw.<entity>."""


import datetime as dt

from dagster import AssetExecutionContext, AssetsDefinition, MaterializeResult, MetadataValue, asset

from assets._metadata import table_metadata
from pipelines.config import ConfigError, check_source_headers
from pipelines.resources import Warehouse
from transforms.privacy import pii_salt
from transforms.raw import ensure_raw_schema, file_hashes, is_registered, load_file
from transforms.readers import ExportFileError, prefetched_sheets
from transforms.schema import ENTITIES


def _raw_asset(entity_name: str) -> AssetsDefinition:
    entity = ENTITIES[entity_name]

    @asset(name=f"raw_{entity_name}", group_name="raw", kinds={"duckdb"},
           description=f"{entity.description}: every exported row as text, with lineage "
                       f"(file, row, sha256, load time). Files already loaded are skipped.")
    def _load(context: AssetExecutionContext, warehouse: Warehouse) -> MaterializeResult:
        cfg = warehouse.config
        src = cfg.sources.get(entity_name)
        loads, failed, skipped = [], [], 0
        with warehouse.connect() as con:
            ensure_raw_schema(con)
            if src is not None:
                files = cfg.source_files(entity_name)
                shas = file_hashes(con, files, rehash=warehouse.full_rebuild)
                new = [p for p in files if not is_registered(con, shas[p], entity_name)]
                skipped = len(files) - len(new)
                # Check every new file first: a file with a missing column stops the load
                # before any file of this source is loaded.
                problems = check_source_headers(cfg, only=entity_name, paths=new)
                if problems:
                    raise ConfigError(f"{cfg.config_path}:\n  " + "\n  ".join(problems))
                mapping = {f: m.column for f, m in src.mapping().items()}
                optional = frozenset(f for f, m in src.mapping().items() if m.optional)
                salt = pii_salt(cfg.warehouse_path)  # recognises rows of forgotten persons
                loaded_at = dt.datetime.now()
                opts = src.read_options()
                for path, sheet in prefetched_sheets(new, opts):
                    try:
                        result = load_file(con, entity_name, path, opts, mapping, loaded_at,
                                           context.run_id, salt, optional, sha=shas[path],
                                           sheet=sheet())
                    except ExportFileError as exc:
                        # An unreadable file must not stop the good files: record it and go on;
                        # it is retried on the next run (it is not in the registry).
                        context.log.error(str(exc))
                        con.execute("INSERT INTO raw.file_errors VALUES (?, ?, ?, ?, ?)",
                                    [entity_name, str(path), str(exc), loaded_at, context.run_id])
                        failed.append(str(path))
                        continue
                    loads.append(result)
                    context.log.info(
                        f"{path.name}: same content as a file loaded before, skipped"
                        if result.skipped else
                        f"{path.name}: {result.rows_read} rows read, {result.rows_loaded} "
                        f"loaded, {result.rows_rejected} rejected, {result.rows_forgotten} of "
                        "forgotten persons dropped")
                if skipped:
                    context.log.info(f"{skipped} file(s) already loaded, skipped")
            else:
                context.log.info(f"no source configured for {entity_name}; table left as is")
            meta = table_metadata(con, f"raw.{entity_name}")
        new = [r for r in loads if not r.skipped]
        meta.update({
            "files_found": MetadataValue.int(len(loads) + len(failed) + skipped),
            "files_loaded": MetadataValue.int(len(new)),
            "rows_read": MetadataValue.int(sum(r.rows_read for r in new)),
            "rows_loaded": MetadataValue.int(sum(r.rows_loaded for r in new)),
            "rows_rejected": MetadataValue.int(sum(r.rows_rejected for r in new)),
            "rows_forgotten": MetadataValue.int(sum(r.rows_forgotten for r in new)),
            "files_unreadable": MetadataValue.json(failed),
        })
        return MaterializeResult(metadata=meta)

    return _load


raw_assets = [_raw_asset(name) for name in ENTITIES]
