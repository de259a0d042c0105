"""A sensor that requests a rebuild when a new or changed export file lands.

It looks only at the landing folders (never opens the warehouse, so it cannot contend for
DuckDB's write lock); the cursor remembers each file's size and modification time.
"""

from __future__ import annotations

import hashlib
import json

from dagster import RunRequest, SensorEvaluationContext, SkipReason, sensor

from pipelines.config import ProfilesConfig


def landing_fingerprints(cfg: ProfilesConfig) -> dict[str, str]:
    prints = {}
    for name in cfg.sources:
        for path in cfg.source_files(name):
            st = path.stat()
            prints[str(path)] = f"{st.st_size}:{st.st_mtime_ns}"
    return prints


def new_export_sensor(cfg: ProfilesConfig, job, default_status):
    @sensor(name="new_export_sensor", job=job, default_status=default_status,
            minimum_interval_seconds=cfg.schedule.sensor_interval_seconds,
            description="Requests a rebuild when a new or changed file lands in a landing folder.")
    def _sensor(context: SensorEvaluationContext):
        seen = json.loads(context.cursor) if context.cursor else {}
        current = landing_fingerprints(cfg)
        new = sorted(p for p, fp in current.items() if seen.get(p) != fp)
        context.update_cursor(json.dumps(current, sort_keys=True))
        if not new:
            return SkipReason("no new export files")
        run_key = hashlib.sha256("|".join(f"{p}={current[p]}" for p in new).encode()).hexdigest()
        return RunRequest(run_key=run_key, tags={"trigger": "new_export", "files": str(len(new))})

    return _sensor
