"""Dagster asset checks backed by Great Expectations suites (transforms.quality_suites).

One check step per layer keeps GX's start-up cost to four times a run. Raw, staging and core
checks warn; the profile check is blocking with ERROR severity, so a failure stops
``published_profile`` (nothing reaches analysts or BI). Every outcome is also kept in
``quality.results``, and row counts in ``quality.row_counts`` for the next run's comparison.
"""

import datetime as dt
import json

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    MetadataValue,
    asset_check,
    multi_asset_check,
)

from pipelines.resources import Warehouse
from transforms.quality import Outcome, Suite, validate
from transforms.quality_suites import (
    core_suites,
    ensure_quality_schema,
    profile_suites,
    raw_suites,
    staging_suites,
)
from transforms.schema import ENTITIES


def run_suites(context, warehouse: Warehouse, check_name: str, build_suites) -> list[Outcome]:
    """Build the suites (they read previous row counts), run them with GX, record the results."""
    with warehouse.connect() as con:
        ensure_quality_schema(con)
        suites: list[Suite] = build_suites(con, warehouse.config, context.op_execution_context.run_id)
        outcomes = validate(con, suites)
        now = dt.datetime.now()
        con.executemany("INSERT INTO quality.results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [
            (context.op_execution_context.run_id, now, check_name, o.suite, o.expectation, o.column, o.success,
             json.dumps(o.observed, ensure_ascii=False), o.unexpected_count,
             json.dumps(o.unexpected_sample, ensure_ascii=False), o.error) for o in outcomes])
        for suite in (s for s in suites if s.is_table):
            con.execute("INSERT INTO quality.row_counts SELECT ?, ?, count(*), ? FROM "
                        f"{suite.source}", [suite.source, context.op_execution_context.run_id, now])
    for o in outcomes:
        if not o.success:
            context.log.warning(f"{o.suite}: {o.describe()}")
    return outcomes


def check_result(asset_key: str, outcomes: list[Outcome], severity: AssetCheckSeverity,
                 check_name: str) -> AssetCheckResult:
    failed = [o for o in outcomes if not o.success]
    return AssetCheckResult(
        asset_key=asset_key, check_name=check_name, passed=not failed, severity=severity,
        metadata={
            "expectations": MetadataValue.int(len(outcomes)),
            "failed": MetadataValue.int(len(failed)),
            "failures": MetadataValue.md("\n".join(f"- {o.suite}: {o.describe()}" for o in failed)
                                         or "none"),
            "results": MetadataValue.md("\n".join(f"- {o.suite}: {o.describe()}" for o in outcomes)),
        })


def _layer_check(layer: str, assets: dict[str, tuple[str, ...]], build_suites):
    """One check per asset of a layer, run in one step. ``assets``: asset → its suites' prefixes."""
    name = f"{layer}_quality"

    @multi_asset_check(
        name=f"{layer}_expectations",
        specs=[AssetCheckSpec(name, asset=a, description=f"Great Expectations suite on {', '.join(p)}")
               for a, p in assets.items()])
    def _check(context: AssetCheckExecutionContext, warehouse: Warehouse):
        outcomes = run_suites(context, warehouse, name, build_suites)
        for asset_name, prefixes in assets.items():
            mine = [o for o in outcomes if o.suite.startswith(prefixes)]
            yield check_result(asset_name, mine, AssetCheckSeverity.WARN, name)

    return _check


raw_check = _layer_check(
    "raw", {f"raw_{e}": (f"raw.{e}",) for e in ENTITIES},
    lambda con, cfg, run_id: raw_suites(list(ENTITIES), cfg.quality))
staging_check = _layer_check(
    "staging", {f"staging_{e}": (f"staging.{e}",) for e in ENTITIES},
    lambda con, cfg, run_id: staging_suites(con, list(ENTITIES), cfg.quality, run_id))
core_check = _layer_check(
    "core", {"core_customers": ("core.customers",),
             "core_facts": ("core.order_lines", "core.wechat_events")},
    lambda con, cfg, run_id: core_suites(cfg.quality, cfg.resolved_snapshot_date()))


@asset_check(asset="customer_profile", name="profile_expectations", blocking=True,
             description="Great Expectations suite on the profile: one row per customer id, row "
                         "count against the previous run, null rates, value ranges, tag coverage. "
                         "Blocking: a failure stops publishing.")
def profile_check(context: AssetCheckExecutionContext, warehouse: Warehouse) -> AssetCheckResult:
    outcomes = run_suites(context, warehouse, "profile_expectations",
                          lambda con, cfg, run_id: profile_suites(con, cfg.quality, run_id))
    return check_result("customer_profile", outcomes, AssetCheckSeverity.ERROR,
                        "profile_expectations")


QUALITY_CHECKS = [raw_check, staging_check, core_check, profile_check]
