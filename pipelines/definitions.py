"""Dagster definitions: every asset, the nightly job, its schedule and the new-export sensor.

Loading this module validates the configuration and the tag rules, so a wrong config or rule
fails the code location (and `profiles build`) before any run starts.
"""

from __future__ import annotations

import datetime as dt

from dagster import (
    AssetSelection,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    Definitions,
    FreshnessPolicy,
    ScheduleDefinition,
    define_asset_job,
    in_process_executor,
)

from assets.checks import QUALITY_CHECKS
from assets.core import core_customers, core_facts
from assets.features import customer_features, customer_predictions
from assets.identity import customer_identity
from assets.marts import marts
from assets.profile import customer_profile, customer_segments, customer_tags
from assets.publish import profile_history, published_profile
from assets.raw import raw_assets
from assets.staging import staging_assets
from pipelines.alerts import alert_sensors
from pipelines.config import load_config
from pipelines.resources import Warehouse
from pipelines.sensors import new_export_sensor
from transforms.tags import load_rules, validate_rules

ALL_ASSETS = [
    *raw_assets, *staging_assets, customer_identity, core_customers, core_facts,
    customer_features, customer_predictions, customer_tags, customer_segments, customer_profile,
    profile_history, marts,
]

# One process runs every step: DuckDB allows a single writer to the warehouse file.
nightly_rebuild = define_asset_job(
    "nightly_rebuild", selection=AssetSelection.all(), executor_def=in_process_executor,
    description="Load new exports and rebuild every layer from raw to the Parquet exports.",
)


def build_definitions(config_path: str | None = None) -> Definitions:
    cfg = load_config(config_path)
    validate_rules(load_rules(cfg.tag_rules_dir))
    status = cfg.schedule.enabled
    schedule = ScheduleDefinition(
        name="nightly_rebuild_schedule", job=nightly_rebuild, cron_schedule=cfg.schedule.cron,
        execution_timezone=cfg.schedule.timezone,
        default_status=DefaultScheduleStatus.RUNNING if status else DefaultScheduleStatus.STOPPED,
    )
    sensor_status = DefaultSensorStatus.RUNNING if status else DefaultSensorStatus.STOPPED
    sensor = new_export_sensor(cfg, nightly_rebuild, sensor_status)
    # Stale (red in the UI, and an alert) when the last publish is older than the window.
    published = published_profile.map_asset_specs(lambda spec: spec.replace_attributes(
        freshness_policy=FreshnessPolicy.time_window(
            fail_window=dt.timedelta(hours=cfg.publish.freshness_hours))))
    return Definitions(
        assets=[*ALL_ASSETS, published], asset_checks=QUALITY_CHECKS, jobs=[nightly_rebuild],
        schedules=[schedule], sensors=[sensor, *alert_sensors(sensor_status)],
        resources={"warehouse": Warehouse(config_path=config_path or "")},
        executor=in_process_executor,
    )


defs = build_definitions()
