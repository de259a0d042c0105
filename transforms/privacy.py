"""Personal data (PIPL / GDPR): the secret salt, masked views of tables, and tombstones.

PII columns are masked or pseudonymised wherever data leaves the working warehouse:
- Parquet exports: phone 138****8000, email and customer id hashed with a secret salt (so BI can
  still count distinct people and join exports on ``customer_key``), name 张*, birth date → year,
  address dropped (province and city stay);
- analyst views in the serving file: the same, without the salt (a view's SQL is stored in the
  file, the salt must not be), so email becomes z***@qq.com and customer_id stays.

A tombstone is sha256(salt ‖ kind ‖ value) of an identifier of a forgotten person: it lets the
raw loader recognise a re-ingested old export without keeping the PII itself. The salt must
therefore stay the same for the life of the warehouse: set PROFILES_PII_SALT, or the first run
writes a random one to ``pii_salt`` beside the warehouse file (keep it with the backups).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from transforms.sql import quote_ident, quote_literal

SALT_ENV = "PROFILES_PII_SALT"

# column → kind of personal data; the masking below depends on the kind.
PII_COLUMNS = {
    "name": "name", "wechat_nickname": "name", "phone": "phone", "email": "email",
    "birth_date": "birth_date", "address": "address",
}

# Identifier fields of each raw entity that a tombstone can match, with their kind and the
# macro that normalises a raw value the same way ``identifier_hash_sql`` is fed at forget time.
IDENTIFIER_FIELDS: dict[str, list[tuple[str, str]]] = {
    "crm_customers": [("customer_code", "crm_code"), ("phone", "phone"), ("email", "email")],
    "crm_followups": [("customer_code", "crm_code")],
    "crm_opportunities": [("customer_code", "crm_code")],
    "erp_customers": [("customer_code", "erp_code"), ("crm_ref", "crm_code"), ("phone", "phone"),
                      ("email", "email")],
    "erp_orders": [("customer_code", "erp_code")],
    "wechat_followers": [("openid", "openid"), ("unionid", "unionid"), ("phone", "phone")],
    "wechat_events": [("openid", "openid"), ("invited_openid", "openid")],
}
_NORMALISE = {
    "phone": "coalesce(mobile_e164({}), nullif(phone_digits({}), ''))",
    "email": "clean_email({})",
    "crm_code": "clean_code({})",
    "erp_code": "clean_code({})",
    "openid": "clean({})",
    "unionid": "clean({})",
}


def pii_salt(warehouse_path: Path) -> str:
    """The secret salt: $PROFILES_PII_SALT, else a random one kept beside the warehouse."""
    if os.environ.get(SALT_ENV):
        return os.environ[SALT_ENV]
    path = warehouse_path.parent / "pii_salt"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    return path.read_text().strip()


def normalised_sql(kind: str, column_sql: str) -> str:
    return _NORMALISE[kind].format(column_sql, column_sql)


def tombstone_hash_sql(kind_sql: str, value_sql: str, salt: str) -> str:
    """SQL for the tombstone hash of a normalised identifier (NULL when the value is NULL)."""
    return f"sha256({quote_literal(salt)} || {kind_sql} || ':' || {value_sql})"


def identifier_hash_sql(kind: str, column_sql: str, salt: str) -> str:
    """SQL for the tombstone hash of a raw value of this kind."""
    return tombstone_hash_sql(quote_literal(kind), normalised_sql(kind, column_sql), salt)


def customer_key_sql(column_sql: str, salt: str) -> str:
    return f"'k' || left(sha256({quote_literal(salt + 'customer:')} || {column_sql}), 16)"


def _masked(column: str, kind: str, salt: str | None) -> str:
    c = quote_ident(column)
    if kind == "name":
        return f"CASE WHEN {c} IS NOT NULL THEN left({c}, 1) || repeat('*', greatest(length({c}) - 1, 1)) END AS {c}"
    if kind == "phone":
        national = f"regexp_replace({c}, '^\\+86', '')"
        return (f"CASE WHEN length({national}) >= 7 THEN left({national}, 3) || '****' || "
                f"right({national}, 4) WHEN {c} IS NOT NULL THEN '****' END AS {c}")
    if kind == "email":
        if salt is not None:
            return f"sha256({quote_literal(salt + 'email:')} || {c}) AS {c}"
        return f"left({c}, 1) || '***@' || split_part({c}, '@', 2) AS {c}"
    if kind == "birth_date":
        return f"year({c}) AS birth_year"
    return ""  # address: dropped; province and city are separate columns


def masked_select(columns: list[str], table: str, salt: str | None,
                  rows_per_customer: bool = False) -> str:
    """SELECT over ``table`` with PII masked. With a salt (exports) ``customer_id`` becomes the
    pseudonymous ``customer_key``; without one (views stored in a file) it is kept.
    ``rows_per_customer``: the table has many rows per customer (tags), so each customer's key
    is hashed once and joined (4.8M hashes were 1.3 s of a 1M-customer tags export)."""
    parts, source = [], table
    for col in columns:
        if col in PII_COLUMNS:
            expr = _masked(col, PII_COLUMNS[col], salt)
            if expr:
                parts.append(expr)
        elif col == "customer_id" and salt is not None:
            if rows_per_customer:
                parts.append("_keys._customer_key AS customer_key")
                source = (f"{table} LEFT JOIN (SELECT customer_id AS _key_of, "
                          f"{customer_key_sql('customer_id', salt)} AS _customer_key FROM "
                          f"(SELECT DISTINCT customer_id FROM {table})) _keys "
                          f"ON {table}.customer_id = _keys._key_of")
            else:
                parts.append(f"{customer_key_sql(quote_ident(col), salt)} AS customer_key")
        else:
            parts.append(quote_ident(col))
    return f"SELECT {', '.join(parts)} FROM {source}"
