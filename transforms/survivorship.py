"""Survivorship: which source record's value becomes a customer's golden value, per field.

Rules (set per field in ``profiles.yaml`` → ``survivorship``):

- ``source_priority``: the most trusted source that has a value (the field's own order, else the
  default order); within one source the most recent record wins.
- ``most_recent``: the value of the most recent record, whatever its source. A record's recency
  is the export it was last loaded from, then the record's own created/subscribed time.
- ``most_complete``: the longest value (a full street address over a bare district), then
  source priority, then recency.

Every rule ends on the source key, so a tie never depends on row order. Within-source
duplicates (the same person entered twice in CRM) are settled by the same rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

RuleName = Literal["source_priority", "most_recent", "most_complete"]
SourceName = Literal["crm", "erp", "wechat"]
DEFAULT_SOURCE_ORDER = ("crm", "erp", "wechat")

GOLDEN_FIELDS = (
    "name", "gender", "birth_date", "phone", "email", "province", "city", "address", "industry",
    "lead_source", "crm_stage", "owner", "wechat_nickname", "unionid",
)

# People change phones and mailboxes: the newest one is the one that reaches them.
DEFAULT_FIELD_RULES: dict[str, RuleName] = {
    "phone": "most_recent", "email": "most_recent", "address": "most_complete",
}


@dataclass(frozen=True)
class FieldRule:
    rule: RuleName = "source_priority"
    source_order: tuple[str, ...] = DEFAULT_SOURCE_ORDER


def default_rules() -> dict[str, FieldRule]:
    return {f: FieldRule(DEFAULT_FIELD_RULES.get(f, "source_priority")) for f in GOLDEN_FIELDS}


def order_key_sql(field: str, rule: FieldRule) -> str:
    """A STRUCT expression whose maximum over a customer's records picks the surviving value.

    Expects columns ``source``, ``source_key``, ``_loaded_at`` and ``first_seen_at``."""
    ranks = " ".join(f"WHEN '{s}' THEN {len(rule.source_order) - i}"
                     for i, s in enumerate(rule.source_order))
    trust = f"CASE source {ranks} ELSE 0 END"
    loaded = "coalesce(_loaded_at, TIMESTAMP '1900-01-01')"
    created = "coalesce(first_seen_at, TIMESTAMP '1900-01-01')"
    parts = {
        "source_priority": [("trust", trust), ("loaded", loaded), ("created", created)],
        "most_recent": [("loaded", loaded), ("created", created), ("trust", trust)],
        "most_complete": [("length", f"length(CAST({field} AS VARCHAR))"), ("trust", trust),
                          ("loaded", loaded), ("created", created)],
    }[rule.rule]
    parts.append(("key", "source_key"))
    return "{" + ", ".join(f"'{name}': {expr}" for name, expr in parts) + "}"
