"""The nightly schedule and the new-export sensor, evaluated the way the Dagster daemon does."""

from dagster import DagsterInstance, RunRequest, build_sensor_context

from pipelines.definitions import build_definitions


def test_schedule_runs_the_rebuild_at_2am_shanghai(workdir):
    schedule = build_definitions().resolve_schedule_def("nightly_rebuild_schedule")
    assert schedule.cron_schedule == "0 2 * * *"
    assert schedule.execution_timezone == "Asia/Shanghai"
    assert schedule.job_name == "nightly_rebuild"


def test_sensor_requests_a_run_only_when_a_new_file_lands(workdir):
    sensor = build_definitions().resolve_sensor_def("new_export_sensor")
    with DagsterInstance.ephemeral() as instance:
        ctx = build_sensor_context(instance=instance)
        first = sensor.evaluate_tick(ctx)
        assert [type(r) for r in first.run_requests] == [RunRequest]
        assert first.run_requests[0].tags["files"] == "7"

        ctx = build_sensor_context(instance=instance, cursor=first.cursor)
        quiet = sensor.evaluate_tick(ctx)
        assert quiet.run_requests == [] and quiet.skip_message == "no new export files"

        (workdir / "landing" / "erp" / "orders_02.xlsx").write_bytes(
            (workdir / "landing" / "erp" / "orders_01.xlsx").read_bytes())
        ctx = build_sensor_context(instance=instance, cursor=quiet.cursor)
        new = sensor.evaluate_tick(ctx)
        assert len(new.run_requests) == 1 and new.run_requests[0].tags["files"] == "1"



def test_the_published_profile_is_stale_after_26_hours(workdir):
    import datetime as dt

    from dagster import AssetKey

    defs = build_definitions()
    spec = defs.resolve_assets_def("published_profile").specs_by_key[AssetKey("published_profile")]
    assert spec.freshness_policy.fail_window.to_timedelta() == dt.timedelta(hours=26)
    sensors = {s.name for s in defs.sensors}
    assert {"alert_on_run_failure", "alert_on_check_failure"} <= sensors
