"""`profiles` command: the jobs a person runs by hand.

    profiles build            check config + rules, then materialise every asset once
    profiles check            only the checks (config, export headers, tag rules)
    profiles sample           generate realistic sample exports
    profiles score            score identity resolution against a ground truth file
    profiles explain ID       why a customer carries each tag
    profiles forget --phone P remove a person everywhere (also --email, --customer-id)
    profiles export-contract  compare the Parquet exports' schema with the contract
    profiles dev              start the Dagster UI (dagster dev -w workspace.yaml)
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path

from pipelines.config import REPO_ROOT, ConfigError, load_config, preflight
from transforms.tags import TagRuleError, load_rules, validate_rules


def _check(config_path: str | None):
    cfg = load_config(config_path)
    preflight(cfg)
    validate_rules(load_rules(cfg.tag_rules_dir))
    return cfg


def cmd_check(args) -> int:
    cfg = _check(args.config)
    files = sum(len(cfg.source_files(n)) for n in cfg.sources)
    print(f"ok: {cfg.config_path} — {len(cfg.sources)} sources, {files} export files, "
          f"tag rules in {cfg.tag_rules_dir}")
    return 0


def cmd_build(args) -> int:
    cfg = _check(args.config)
    from dagster import DagsterInstance

    from pipelines.alerts import root_message
    from pipelines.definitions import build_definitions

    defs = build_definitions(args.config)
    job = defs.resolve_job_def("nightly_rebuild")
    instance = DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else DagsterInstance.ephemeral()
    started = dt.datetime.now()
    log_level = os.environ.get("PROFILES_LOG_LEVEL", "INFO")
    result = job.execute_in_process(
        instance=instance, raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}},
                    "resources": {"warehouse": {"config": {"config_path": args.config or "",
                                                           "full_rebuild": args.full}}}})
    if not result.success:
        for event in result.all_events:
            if event.is_step_failure:
                message = root_message(event.step_failure_data.error)
                print(f"FAILED {event.step_key}: {message}", file=sys.stderr)
        return 1
    seconds = (dt.datetime.now() - started).total_seconds()
    print_summary(cfg, seconds)
    return 0


def print_summary(cfg, seconds: float) -> None:
    from pipelines.resources import open_warehouse

    con = open_warehouse(cfg, read_only=True)
    try:
        def one(sql):
            return con.execute(sql).fetchall()[0][0]

        print(f"\nBuilt in {seconds:.1f}s (snapshot date {cfg.resolved_snapshot_date()})")
        print(f"  serving   : {cfg.serving_path}  (what analysts open)")
        print(f"  exports   : {cfg.exports_dir}  (Parquet for BI, PII masked)")
        print(f"  warehouse : {cfg.warehouse_path}  (working file of the pipeline)")
        print(f"  files     : {one('SELECT count(*) FROM raw.file_registry')} loaded, "
              f"{one('SELECT sum(rows_read) FROM staging.file_accounting')} rows read, "
              f"{one('SELECT sum(rows_staged) FROM staging.file_accounting')} staged, "
              f"{one('SELECT sum(rows_quarantined) FROM staging.file_accounting')} quarantined")
        print(f"  customers : {one('SELECT count(*) FROM profile.customer_profile')} profiles from "
              f"{one('SELECT count(*) FROM identity.source_records')} source records "
              f"({one('SELECT count(*) FROM identity.hub_keys')} hub keys ignored)")
        print("  segments  :")
        for sid, name, n in con.execute("SELECT segment_id, segment_name, customers "
                                        "FROM marts.segment_summary ORDER BY 1").fetchall():
            print(f"    {sid}. {name:<28} {n}")
        print("  top tags  :")
        for name, n in con.execute("""SELECT level1 || ' / ' || level3, customers
                FROM profile.tag_catalog ORDER BY customers DESC LIMIT 8""").fetchall():
            print(f"    {name:<28} {n}")
        print(f"\nQuery it:  duckdb -readonly {cfg.serving_path} -c "
              "\"SELECT * FROM profile.customer_profile LIMIT 5\"")
    finally:
        con.close()


def cmd_sample(args) -> int:
    from pipelines.sample import generate

    end = dt.date.fromisoformat(args.end) if args.end else None
    kwargs = {"end_date": end} if end else {}
    counts = generate(Path(args.out), persons=args.persons, seed=args.seed, **kwargs)
    for name, n in counts.items():
        print(f"  {name}: {n}")
    return 0


def cmd_score(args) -> int:
    from pipelines.resources import open_warehouse
    from transforms.identity_score import score_identity

    cfg = load_config(args.config)
    truth = Path(args.truth) if args.truth else cfg.ground_truth_path
    if truth is None or not truth.exists():
        print("error: no ground truth (pass --truth or set identity.ground_truth)", file=sys.stderr)
        return 2
    con = open_warehouse(cfg, read_only=True)
    try:
        score = score_identity(con, truth)
    except ValueError as exc:  # a truth file without source, source_key or person_id
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        con.close()
    print(f"identity resolution against {truth}")
    for name, value in vars(score).items():  # every figure, also those not measured
        print(f"  {name:<24}{'n/a (no evidence column)' if value is None else value}")
    return 0


def cmd_explain(args) -> int:
    from pipelines.resources import open_warehouse
    from transforms.explain import explain, render

    cfg = load_config(args.config)
    rules = load_rules(cfg.tag_rules_dir)
    con = open_warehouse(cfg, read_only=True)
    try:
        result = explain(con, args.customer_id.strip().upper(), rules)
    finally:
        con.close()
    print(render(result))
    return 0 if result.customer_id else 1


def cmd_export_contract(args) -> int:
    """Compare the exports' columns and types (from the working warehouse) with the contract;
    with --write, record them as the new contract version."""
    import json

    from assets.publish import export_selects
    from pipelines.resources import open_warehouse
    from transforms.export import CONTRACT_PATH, contract_problems, load_contract
    from transforms.sql import describe

    cfg = load_config(args.config)
    con = open_warehouse(cfg, read_only=True)
    try:
        schemas = {name: describe(con, sql)
                   for name, sql in export_selects(con, salt="contract").items()}
    finally:
        con.close()
    contract = load_contract()
    problems = [p for name, schema in schemas.items()
                for p in contract_problems(name, schema, contract)]
    problems += [f"{name}: in the contract, no longer exported"
                 for name in contract["tables"] if name not in schemas]
    for problem in problems:
        print(problem)
    if not problems:
        print(f"exports match the contract (version {contract['version']})")
        return 0
    if not args.write:
        return 1
    new = {"version": contract["version"] + 1, "tables": schemas}
    CONTRACT_PATH.write_text(json.dumps(new, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {CONTRACT_PATH} (version {new['version']}); tell the BI users what changed")
    return 0


def cmd_forget(args) -> int:
    """Remove a person from the warehouse, the serving file and every Parquet export."""
    from pipelines.resources import open_warehouse
    from transforms.export import drop_customers
    from transforms.forget import forget
    from transforms.privacy import pii_salt
    from transforms.serving import build_serving_file, swap_into_place

    if not (args.phone or args.email or args.customer_id):
        print("error: give --phone, --email or --customer-id", file=sys.stderr)
        return 2
    cfg = load_config(args.config)
    salt = pii_salt(cfg.warehouse_path)
    con = open_warehouse(cfg)
    try:
        report = forget(con, salt, args.phone, args.email,
                        args.customer_id.strip().upper() if args.customer_id else None)
        removed_from_exports = drop_customers(con, cfg.exports_dir, report.customer_ids, salt)
        if cfg.serving_path.exists():  # republish without the person, in a fresh file
            snapshot = con.execute("SELECT max(snapshot_date) FROM profile.customer_profile"
                                   ).fetchall()[0][0]
            swap_into_place(build_serving_file(con, cfg.serving_path, f"forget:{report.request_id}",
                                               snapshot, reuse_previous=False), cfg.serving_path)
    finally:
        con.close()
    print(f"forget request {report.request_id}: {len(report.customer_ids)} customer(s), "
          f"{report.identifiers} identifier(s) tombstoned")
    for table, n in sorted({**report.rows_removed, **report.swept}.items()):
        if n:
            print(f"  {table:<40}{n} row(s) removed")
    print(f"  {'Parquet exports':<40}{removed_from_exports} row(s) removed")
    print(f"  serving file republished: {cfg.serving_path}")
    return 0


def cmd_dev(args) -> int:
    os.environ.setdefault("DAGSTER_HOME", str(REPO_ROOT / ".dagster_home"))
    Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
    os.chdir(REPO_ROOT)
    dagster = Path(sys.executable).with_name("dagster")
    os.execv(str(dagster), [str(dagster), "dev", "-w", "workspace.yaml"])
    return 0  # not reached


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="profiles", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="config file (default: $PROFILES_CONFIG or profiles.yaml)")
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="materialise every asset once")
    build.add_argument("--full", action="store_true",
                       help="restage every raw row and retrain the models (default: incremental)")
    build.set_defaults(func=cmd_build)
    sub.add_parser("check", help="validate config, export headers and tag rules"
                   ).set_defaults(func=cmd_check)
    sub.add_parser("dev", help="start the Dagster UI on localhost:3000").set_defaults(func=cmd_dev)
    sample = sub.add_parser("sample", help="generate realistic sample exports")
    sample.add_argument("--persons", type=int, default=2000)
    sample.add_argument("--seed", type=int, default=42)
    sample.add_argument("--out", default="data/sample")
    sample.add_argument("--end", help="last date of generated activity (YYYY-MM-DD)")
    sample.set_defaults(func=cmd_sample)
    score = sub.add_parser("score", help="pairwise precision / recall of identity resolution")
    score.add_argument("--truth", help="ground truth CSV (default: identity.ground_truth)")
    score.set_defaults(func=cmd_score)
    forget_cmd = sub.add_parser("forget", help="remove a person from every layer and export "
                                "(PIPL / GDPR); a tombstone keeps them out of later loads")
    forget_cmd.add_argument("--phone")
    forget_cmd.add_argument("--email")
    forget_cmd.add_argument("--customer-id")
    forget_cmd.set_defaults(func=cmd_forget)
    contract = sub.add_parser("export-contract",
                              help="compare the Parquet exports' schema with the contract")
    contract.add_argument("--write", action="store_true", help="record a new contract version")
    contract.set_defaults(func=cmd_export_contract)
    explain_cmd = sub.add_parser("explain", help="why a customer carries each tag")
    explain_cmd.add_argument("customer_id")
    explain_cmd.set_defaults(func=cmd_explain)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, TagRuleError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
