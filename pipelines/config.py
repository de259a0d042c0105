"""The project configuration (``profiles.yaml``), validated by pydantic before anything runs.

Where the exports are, how their columns map to canonical fields (``transforms.schema``), and
the warehouse settings. Relative paths are relative to the config file. Environment overrides:
``PROFILES_CONFIG`` (the file), ``PROFILES_LANDING`` (landing root), ``PROFILES_WAREHOUSE`` (the
working DuckDB file), ``PROFILES_SERVING`` (the published file analysts open),
``PROFILES_EXPORTS`` (Parquet export root), ``PROFILES_TAG_RULES``, ``PROFILES_PII_SALT``.
"""

from __future__ import annotations

import datetime as dt
import glob
import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from transforms.normalize import DEFAULT_NULLISH
from transforms.readers import ExportFileError, ReadOptions, read_header
from transforms.schema import ENTITIES
from transforms.survivorship import (
    DEFAULT_SOURCE_ORDER,
    GOLDEN_FIELDS,
    FieldRule,
    RuleName,
    SourceName,
    default_rules,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO_ROOT / "profiles.yaml"


class ConfigError(ValueError):
    """The configuration is wrong; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FieldMapping(_Strict):
    column: str
    unit: Literal["yuan", "fen"] = "yuan"  # amounts exported in fen (分) are divided by 100
    # An optional column may be absent from a file (older exports, before the CRM had it):
    # the field is NULL for that file instead of stopping the run as schema drift.
    optional: bool = False


class SourceConfig(_Strict):
    landing: Path  # folder, relative to landing_root
    pattern: str = "*"  # glob inside the landing folder
    format: Literal["csv", "xlsx", "jsonl"]
    encoding: str = "auto"  # auto detects UTF-8 / UTF-8 with BOM / GB18030
    delimiter: str = ","
    header_row: int = Field(1, ge=1)  # 1-based: 2 when a title row sits above the header
    sheet: str | int | None = None
    columns: dict[str, str | FieldMapping]

    def mapping(self) -> dict[str, FieldMapping]:
        return {k: FieldMapping(column=v) if isinstance(v, str) else v for k, v in self.columns.items()}

    def read_options(self) -> ReadOptions:
        return ReadOptions(self.format, self.encoding, self.delimiter, self.header_row, self.sheet)


class WarehouseConfig(_Strict):
    path: Path = Path("data/warehouse/profiles.duckdb")
    exports_dir: Path = Path("data/exports")
    models_dir: Path = Path("data/models")
    memory_limit: str = "4GB"
    threads: int | None = None
    timezone: str = "Asia/Shanghai"
    keep_freed_memory: bool = True  # DuckDB keeps freed memory for its next step (see resources)


class PublishConfig(_Strict):
    serving_path: Path = Path("data/serving/profiles.duckdb")  # env PROFILES_SERVING overrides
    retention_days: int = Field(30, ge=1)  # Parquet partitions kept, counted from the snapshot
    mask_pii: bool = True  # mask / pseudonymise PII in the Parquet exports
    freshness_hours: float = Field(26, gt=0)  # the published profile is stale after this


class QualityConfig(_Strict):
    max_rejected_share: float = Field(0.05, ge=0, le=1)  # raw rows not splittable, per file
    max_quarantine_share: float = Field(0.05, ge=0, le=1)  # staging rows quarantined, per file
    max_row_drop: float = Field(0.2, ge=0, le=1)  # shrinking more since the previous run fails
    max_row_growth: float = Field(3.0, ge=1)  # growing more (×) since the previous run fails
    max_line_amount: float = Field(10_000_000, gt=0)  # yuan, either sign
    min_filled: dict[str, float] = Field(  # profile column → least share of non-null values
        default_factory=lambda: {"customer_id": 1.0, "sources": 1.0, "snapshot_date": 1.0,
                                 "name": 0.5})
    max_tag_coverage: float = Field(0.99, ge=0, le=1)  # a tag on (nearly) everyone is a bad rule
    min_tagged_share: float = Field(0.5, ge=0, le=1)  # customers with at least one tag


class HistoryConfig(_Strict):
    snapshot_days: int = Field(35, ge=1)  # daily snapshots kept in history.profile_snapshots
    value_tier_group: str = "价值分层"  # tag groups (level 2) followed as value tier / lifecycle
    lifecycle_group: str = "活跃度"


class PrivacyConfig(_Strict):
    # Marketing needs consent (PIPL art. 13): with true, consent that is not recorded blocks.
    consent_required: bool = True


class ValueRulesConfig(_Strict):
    """Values that parse but cannot be true, checked in staging (transforms.staging.ValueRules).
    A required field breaking a rule quarantines its row; an optional one follows the rule's
    action: ``null`` (the field is NULL and the value listed in staging.value_issues) or
    ``quarantine`` (the row goes to staging.quarantine). Changing a setting restages."""

    # Dates and times (every date / timestamp field) later than the snapshot date + this many
    # days are in the future. 1: an export written after midnight, or in another time zone,
    # may carry tomorrow's date. A night judges only its new files: a date it rejects stays
    # NULL on later nights, when it may no longer be in the future, until a --full restage.
    future_days: int = Field(1, ge=0)
    on_future: Literal["null", "quarantine"] = "null"
    # A birth date implying an age (whole years at the snapshot date) outside this range. At
    # most 0..120: features never publish an age outside it, and the profile check blocks it.
    age_min: int = Field(0, ge=0, le=120)
    age_max: int = Field(120, ge=0, le=120)
    on_age: Literal["null", "quarantine"] = "null"
    # |amount| in yuan (after fen → yuan) of every amount field: order line amount and unit
    # price, opportunity amount, WeChat mall order. The core check on order lines keeps its
    # own quality.max_line_amount (same default), which staging now enforces first.
    max_amount: float = Field(10_000_000, gt=0)
    on_amount: Literal["null", "quarantine"] = "null"
    # |quantity| of an order line or WeChat mall order.
    max_quantity: int = Field(1_000_000, ge=1)
    on_quantity: Literal["null", "quarantine"] = "null"

    @field_validator("on_future", "on_age", "on_amount", "on_quantity", mode="before")
    @classmethod
    def _yaml_null(cls, action: object) -> object:
        return "null" if action is None else action  # YAML reads a bare null as None

    @model_validator(mode="after")
    def _age_range(self) -> ValueRulesConfig:
        if self.age_min > self.age_max:
            raise ValueError(f"age_min ({self.age_min}) is above age_max ({self.age_max})")
        return self

    def rules(self, snapshot: dt.date):
        """The staging rules for a run with this snapshot date."""
        from transforms.staging import ValueRules

        return ValueRules(snapshot=snapshot, **self.model_dump())


class ScheduleConfig(_Strict):
    cron: str = "0 2 * * *"
    timezone: str = "Asia/Shanghai"
    sensor_interval_seconds: int = 60
    enabled: bool = False  # start the schedule and the new-file sensor when Dagster starts


class IdentityConfig(_Strict):
    # A phone / email shared by records with more distinct names than this is a hub
    # (switchboard, a sales rep's own number) and links nothing.
    hub_max_distinct_names: int = Field(2, ge=1)
    hub_max_records: int = Field(8, ge=1)
    # Splink links a pair when its match probability is at least this.
    match_probability: float = Field(0.6, gt=0.5, lt=1.0)
    # A cluster larger than this is split on its weakest links (and reported).
    max_cluster_records: int = Field(12, ge=2)
    # Incremental nights: when at most this share of records is new or changed, the stored
    # Splink model scores only their pairs and only the records those changes can reach are
    # linked again (transforms.link_region); more than that (or a model older than
    # model_retrain_days, or `profiles build --full`) retrains and relinks everything.
    incremental_max_changed_share: float = Field(0.2, ge=0.0, le=1.0)
    model_retrain_days: int = Field(7, ge=0)
    # Optional ground truth (source, source_key, person_id, evidence), relative to the landing
    # root: when present, every run scores identity resolution against it.
    ground_truth: Path | None = None


class FieldSurvivorship(_Strict):
    rule: RuleName = "source_priority"
    sources: list[SourceName] | None = None  # this field's trust order


class SurvivorshipConfig(_Strict):
    """Golden record rules (see transforms/survivorship.py). Fields not listed use
    source_priority, except phone/email (most_recent) and address (most_complete)."""

    source_priority: list[SourceName] = list(DEFAULT_SOURCE_ORDER)
    fields: dict[str, RuleName | FieldSurvivorship] = Field(default_factory=dict)

    @field_validator("fields")
    @classmethod
    def _known_fields(cls, fields: dict) -> dict:
        unknown = sorted(set(fields) - set(GOLDEN_FIELDS))
        if unknown:
            raise ValueError(f"unknown field(s) {unknown}; golden record fields are: "
                             f"{', '.join(GOLDEN_FIELDS)}")
        return fields

    @field_validator("source_priority")
    @classmethod
    def _distinct_sources(cls, order: list[str]) -> list[str]:
        if len(set(order)) != len(order):
            raise ValueError(f"a source is listed twice in {order}")
        return order

    def rules(self) -> dict[str, FieldRule]:
        rules = {}
        for name, default in default_rules().items():
            spec = self.fields.get(name, default.rule)
            if isinstance(spec, str):
                spec = FieldSurvivorship(rule=spec)
            rules[name] = FieldRule(spec.rule, tuple(spec.sources or self.source_priority))
        return rules


class SegmentConfig(_Strict):
    # k is chosen by silhouette within [k_min, k_max] on the first run, then kept (stable ids);
    # delete data/models/segments_latest.joblib to choose again.
    k_min: int = Field(4, ge=2)
    k_max: int = Field(8, ge=2)

    @model_validator(mode="after")
    def _range(self) -> SegmentConfig:
        if self.k_min > self.k_max:
            raise ValueError(f"k_min ({self.k_min}) is above k_max ({self.k_max})")
        return self
    sample_size: int = Field(50_000, ge=100)
    seed: int = 0


class FunnelConfig(_Strict):
    """CRM stage names, as your CRM spells them, for marts.signed_vs_potential."""

    signed_stages: list[str] = Field(default_factory=lambda: ["成交客户", "签约客户", "已签约"])
    potential_stages: list[str] = Field(
        default_factory=lambda: ["线索", "潜在客户", "意向客户", "商机"])


class ModelsConfig(_Strict):
    """Churn and CLV models (transforms/predict.py): trained on past cutoffs, newest = holdout."""

    cutoffs: int = Field(3, ge=2)  # past cutoffs per model
    cutoff_step_days: int = Field(90, ge=7)
    min_history_days: int = Field(180, ge=0)  # orders needed before a cutoff
    max_training_rows: int = Field(200_000, ge=1_000)
    seed: int = 0
    retrain_days: int = Field(7, ge=0)  # nights in between score with the saved model; 0 = always


class ProfilesConfig(_Strict):
    landing_root: Path = Path("data/sample")
    tag_rules: Path = Path("tag_rules")  # folder of tag rule YAML files
    snapshot_date: dt.date | Literal["today"] = "today"
    nullish_values: list[str] = Field(default_factory=lambda: list(DEFAULT_NULLISH))
    phone_region: str = "CN"
    warehouse: WarehouseConfig = WarehouseConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    identity: IdentityConfig = IdentityConfig()
    survivorship: SurvivorshipConfig = SurvivorshipConfig()
    segments: SegmentConfig = SegmentConfig()
    models: ModelsConfig = ModelsConfig()
    funnel: FunnelConfig = FunnelConfig()
    publish: PublishConfig = PublishConfig()
    quality: QualityConfig = QualityConfig()
    history: HistoryConfig = HistoryConfig()
    privacy: PrivacyConfig = PrivacyConfig()
    values: ValueRulesConfig = ValueRulesConfig()  # values that cannot be true (staging)
    sources: dict[str, SourceConfig]

    # Set by load_config: where the file is, to resolve relative paths.
    config_path: Path = Field(DEFAULT_CONFIG, exclude=True)

    @field_validator("sources")
    @classmethod
    def _known_sources(cls, sources: dict[str, SourceConfig]) -> dict[str, SourceConfig]:
        for name, src in sources.items():
            if name not in ENTITIES:
                raise ValueError(f"unknown source {name!r}; known: {', '.join(ENTITIES)}")
            entity = ENTITIES[name]
            unknown = sorted(set(src.columns) - set(entity.field_names))
            if unknown:
                raise ValueError(
                    f"source {name}: unknown field(s) {unknown} in columns; "
                    f"{name} fields are: {', '.join(entity.field_names)}"
                )
            missing = [f.name for f in entity.fields if f.required and f.name not in src.columns]
            if missing:
                raise ValueError(f"source {name}: required field(s) {missing} are not mapped")
        return sources

    @model_validator(mode="after")
    def _timezone_ok(self) -> ProfilesConfig:
        from zoneinfo import ZoneInfo

        for tz in (self.warehouse.timezone, self.schedule.timezone):
            ZoneInfo(tz)  # raises on an unknown zone
        return self

    # ---- resolved paths -------------------------------------------------------------
    def _resolve(self, path: Path, env: str | None = None) -> Path:
        if env and os.environ.get(env):
            return Path(os.environ[env]).resolve()
        return path if path.is_absolute() else (self.config_path.parent / path).resolve()

    @property
    def warehouse_path(self) -> Path:
        return self._resolve(self.warehouse.path, "PROFILES_WAREHOUSE")

    @property
    def exports_dir(self) -> Path:
        return self._resolve(self.warehouse.exports_dir, "PROFILES_EXPORTS")

    @property
    def serving_path(self) -> Path:
        env_root = os.environ.get("PROFILES_WAREHOUSE")
        if env_root and not os.environ.get("PROFILES_SERVING"):  # beside an overridden warehouse
            return Path(env_root).resolve().parent.parent / "serving" / self.publish.serving_path.name
        return self._resolve(self.publish.serving_path, "PROFILES_SERVING")

    @property
    def models_dir(self) -> Path:
        env_root = os.environ.get("PROFILES_WAREHOUSE")
        if env_root:  # keep models beside an overridden warehouse (tests, other environments)
            return Path(env_root).resolve().parent / "models"
        return self._resolve(self.warehouse.models_dir)

    @property
    def tag_rules_dir(self) -> Path:
        return self._resolve(self.tag_rules, "PROFILES_TAG_RULES")

    @property
    def landing_dir(self) -> Path:
        return self._resolve(self.landing_root, "PROFILES_LANDING")

    @property
    def ground_truth_path(self) -> Path | None:
        truth = self.identity.ground_truth
        if truth is None:
            return None
        path = truth if truth.is_absolute() else self.landing_dir / truth
        return path if path.exists() else None

    def source_files(self, name: str) -> list[Path]:
        src = self.sources[name]
        folder = src.landing if src.landing.is_absolute() else self.landing_dir / src.landing
        return sorted(Path(p) for p in glob.glob(str(folder / src.pattern)) if Path(p).is_file())

    def resolved_snapshot_date(self, today: dt.date | None = None) -> dt.date:
        if os.environ.get("PROFILES_SNAPSHOT_DATE"):  # a rerun or backfill of a given day
            return dt.date.fromisoformat(os.environ["PROFILES_SNAPSHOT_DATE"])
        if self.snapshot_date == "today":
            return today or dt.date.today()
        return self.snapshot_date


def _format_validation_error(path: Path, exc: ValidationError) -> str:
    lines = [f"{path}: invalid configuration"]
    for err in exc.errors():
        where = " → ".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"  {where}: {err['msg']}")
    return "\n".join(lines)


def load_config(path: Path | str | None = None) -> ProfilesConfig:
    path = Path(path or os.environ.get("PROFILES_CONFIG") or DEFAULT_CONFIG).resolve()
    if not path.exists():
        raise ConfigError(f"{path}: configuration file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return ProfilesConfig.model_validate({**raw, "config_path": path})
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(path, exc)) from exc


def check_source_headers(cfg: ProfilesConfig, only: str | None = None,
                         paths: list[Path] | None = None) -> list[str]:
    """Every mapped column must exist in every landing file: returns the problems found
    (for every source, or ``only`` that one; of every file, or only ``paths``).

    JSON Lines have no header: keys of required fields must appear in the first lines.
    """
    problems = []
    for name, src in cfg.sources.items():
        if only is not None and name != only:
            continue
        mapping = src.mapping()
        for path in cfg.source_files(name) if paths is None else paths:
            try:
                header = set(read_header(path, src.read_options()))
            except (ExportFileError, OSError, UnicodeError):
                continue  # an unreadable file is not a config problem: the loader records it
            missing = {f: fm.column for f, fm in mapping.items() if fm.column not in header
                       and not fm.optional
                       and (src.format != "jsonl" or ENTITIES[name].field(f).required)}
            if missing:
                unmapped = sorted(header - {fm.column for fm in mapping.values()})
                problems.append(
                    f"source {name}: {path} lacks mapped column(s) "
                    + ", ".join(f"{c!r} (field {f})" for f, c in missing.items())
                    + f"; columns in the file the mapping does not know: {unmapped or 'none'}"
                )
    return problems


def preflight(cfg: ProfilesConfig) -> None:
    """Raise ConfigError naming the config file, source and column before any asset runs."""
    problems = check_source_headers(cfg)
    if problems:
        raise ConfigError(f"{cfg.config_path}: configuration does not match the exports\n  "
                          + "\n  ".join(problems))
