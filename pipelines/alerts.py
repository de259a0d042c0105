"""Alerts to a WeCom (企业微信) or DingTalk (钉钉) group robot when a run fails or a check fails.

Set PROFILES_ALERT_WEBHOOK to the robot's URL. Both robots accept the same text message,
``{"msgtype": "text", "text": {"content": "…"}}``; every message starts with 客户画像 so a
DingTalk robot secured by keyword can use that keyword. Without the variable the sensors log
the message and send nothing.
"""

from __future__ import annotations

import json
import os
import urllib.request

from dagster import (
    DagsterEventType,
    DagsterRunStatus,
    DefaultSensorStatus,
    EventRecordsFilter,
    RunFailureSensorContext,
    RunStatusSensorContext,
    run_failure_sensor,
    run_status_sensor,
)

WEBHOOK_ENV = "PROFILES_ALERT_WEBHOOK"
PREFIX = "客户画像"


def robot_message(text: str) -> dict:
    return {"msgtype": "text", "text": {"content": f"{PREFIX} {text}"}}


def post_alert(text: str, url: str | None = None, timeout: float = 10) -> bool:
    """POST the message; True when the robot answered errcode 0 (both robots' success)."""
    url = url or os.environ.get(WEBHOOK_ENV)
    if not url:
        return False
    request = urllib.request.Request(
        url, data=json.dumps(robot_message(text), ensure_ascii=False).encode("utf-8"),
        headers={"Content-Type": "application/json; charset=utf-8"}, method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body = json.loads(response.read().decode("utf-8") or "{}")
    return body.get("errcode", 0) == 0


def root_message(error) -> str:
    """The innermost cause of a Dagster SerializableErrorInfo: the message a person can act on."""
    while error.cause is not None:
        error = error.cause
    return error.message.strip()


def failure_text(run_id: str, job: str, failures: list[str]) -> str:
    lines = [f"夜间任务失败 / run failed: {job} ({run_id[:8]})"] + failures[:5]
    return "\n".join(lines)


def failed_checks(instance, run_id: str) -> list[str]:
    records = instance.get_event_records(EventRecordsFilter(
        event_type=DagsterEventType.ASSET_CHECK_EVALUATION), limit=1000)
    failed = []
    for record in records:
        entry = record.event_log_entry
        if entry.run_id != run_id:
            continue
        evaluation = entry.dagster_event.event_specific_data
        if not evaluation.passed:
            failed.append(f"{evaluation.asset_key.to_user_string()}: {evaluation.check_name}")
    return sorted(failed)


def alert_sensors(default_status: DefaultSensorStatus):
    @run_failure_sensor(name="alert_on_run_failure", default_status=default_status,
                        description="Posts failed runs to the group robot in $PROFILES_ALERT_WEBHOOK.")
    def alert_on_run_failure(context: RunFailureSensorContext):
        steps = [f"{e.step_key}: {root_message(e.event_specific_data.error)[:300]}"
                 for e in context.get_step_failure_events()]
        text = failure_text(context.dagster_run.run_id, context.dagster_run.job_name, steps)
        context.log.info(text)
        post_alert(text)

    @run_status_sensor(run_status=DagsterRunStatus.SUCCESS, name="alert_on_check_failure",
                       default_status=default_status,
                       description="Posts runs that succeeded with failed (warning) checks.")
    def alert_on_check_failure(context: RunStatusSensorContext):
        failed = failed_checks(context.instance, context.dagster_run.run_id)
        if failed:
            text = (f"检查未通过 / checks failed in {context.dagster_run.job_name} "
                    f"({context.dagster_run.run_id[:8]}):\n" + "\n".join(failed[:10]))
            context.log.info(text)
            post_alert(text)

    return [alert_on_run_failure, alert_on_check_failure]
