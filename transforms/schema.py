"""Canonical entities: the fields the pipeline understands, their types and which are required.

A source config maps each canonical field to a column of the user's export; staging parses every
field with the parser of its type. A record whose required field is missing or unparseable is
quarantined; an optional field that fails to parse is nulled and logged in staging.value_issues.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

FieldType = Literal[
    "text",  # trimmed, full-width folded, null-ish → NULL
    "code",  # an identifier: like text, upper-cased, inner spaces removed
    "name",  # a person's name: like text, inner spaces collapsed
    "phone",  # → E.164
    "email",  # lower-cased, spaces removed, must look like an address
    "gender",  # → 'M' / 'F' / NULL
    "date",  # many forms → DATE
    "timestamp",  # many forms (ISO, 年月日, Excel serial, unix seconds) → TIMESTAMP
    "amount",  # ¥1,234.50 / -¥1.00 / 12,000元 → DECIMAL(18,2) yuan (unit: fen divides by 100)
    "integer",
    "boolean",  # 1/0, true/false, 是/否
    "province",  # → canonical full name (广东 → 广东省)
    "city",  # → canonical full name (广州 → 广州市)
    "list",  # a JSON array or a comma separated list → VARCHAR[]
]


@dataclass(frozen=True)
class Field:
    name: str
    type: FieldType
    required: bool = False
    description: str = ""


@dataclass(frozen=True)
class Entity:
    name: str
    source: str  # crm / erp / wechat: which system exports it
    key: tuple[str, ...]  # natural key within the source (latest loaded version wins in core)
    fields: tuple[Field, ...]
    description: str = ""

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"{self.name} has no field {name!r}")

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]


def _f(name: str, type_: FieldType, required: bool = False, description: str = "") -> Field:
    return Field(name, type_, required, description)


ENTITIES: dict[str, Entity] = {
    e.name: e
    for e in (
        Entity(
            "crm_customers",
            "crm",
            ("customer_code",),
            (
                _f("customer_code", "code", True, "CRM customer number"),
                _f("name", "name", description="customer name"),
                _f("phone", "phone", description="mobile phone"),
                _f("email", "email"),
                _f("gender", "gender"),
                _f("birth_date", "date"),
                _f("province", "province"),
                _f("city", "city"),
                _f("address", "text"),
                _f("industry", "text"),
                _f("lead_source", "text", description="where the lead came from"),
                _f("stage", "text", description="CRM customer stage"),
                _f("owner", "text", description="responsible sales rep"),
                _f("created_at", "timestamp"),
                _f("marketing_consent", "boolean", description="agreed to receive marketing"),
            ),
            "CRM customer master",
        ),
        Entity(
            "crm_followups",
            "crm",
            ("customer_code", "followup_at", "method", "content"),
            (
                _f("customer_code", "code", True),
                _f("followup_at", "timestamp", True),
                _f("method", "text"),
                _f("content", "text"),
                _f("owner", "text"),
            ),
            "CRM follow-up records",
        ),
        Entity(
            "crm_opportunities",
            "crm",
            ("opportunity_code", "stage"),
            (
                _f("opportunity_code", "code", True),
                _f("customer_code", "code", True),
                _f("stage", "text", True),
                _f("entered_at", "timestamp", True),
                _f("amount", "amount"),
            ),
            "CRM opportunity stage history: one row per stage entered",
        ),
        Entity(
            "erp_customers",
            "erp",
            ("customer_code",),
            (
                _f("customer_code", "code", True, "ERP customer code"),
                _f("name", "name"),
                _f("phone", "phone"),
                _f("email", "email"),
                _f("address", "text"),
                _f("crm_ref", "code", description="the CRM customer number, where recorded"),
                _f("created_at", "timestamp"),
            ),
            "ERP customer master",
        ),
        Entity(
            "erp_orders",
            "erp",
            ("order_no", "line_no"),
            (
                _f("order_no", "code", True),
                _f("line_no", "integer", True),
                _f("customer_code", "code", True),
                _f("ordered_at", "timestamp", True),
                _f("sku", "code"),
                _f("product_name", "text"),
                _f("category", "text"),
                _f("quantity", "integer", True, "negative for refunds"),
                _f("unit_price", "amount"),
                _f("amount", "amount", True, "line amount in yuan, negative for refunds"),
            ),
            "ERP sales order lines",
        ),
        Entity(
            "wechat_followers",
            "wechat",
            ("openid",),
            (
                _f("openid", "text", True),
                _f("unionid", "text"),
                _f("nickname", "name"),
                _f("gender", "gender"),
                _f("province", "province"),
                _f("city", "city"),
                _f("subscribed", "boolean"),
                _f("subscribed_at", "timestamp"),
                _f("tags", "list"),
                _f("subscribe_scene", "text"),
                _f("remark", "text"),
                _f("phone", "phone", description="phone the follower bound in the mall"),
            ),
            "WeChat official account followers (user-info API)",
        ),
        Entity(
            "wechat_events",
            "wechat",
            (),
            (
                _f("openid", "text", True),
                _f("event_type", "text", True),
                _f("event_at", "timestamp", True),
                _f("article_id", "text"),
                _f("category", "text"),
                _f("menu_key", "text"),
                _f("invited_openid", "text"),
                _f("order_id", "code"),
                _f("amount", "amount"),
                _f("quantity", "integer"),
            ),
            "WeChat events: reads, shares, menu clicks, referrals, mall orders",
        ),
    )
}

SOURCE_FORMATS = ("csv", "xlsx", "jsonl")
