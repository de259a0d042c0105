"""The right to be forgotten: remove a person from every layer and keep a tombstone.

``forget`` finds the customers a phone, email or customer id belongs to (following merged ids),
collects every identifier of their source records (phones, emails, CRM / ERP codes, openids,
unionids), stores a salted hash of each in ``privacy.tombstones``, then deletes:
raw rows carrying any of them (counted per file as ``rows_forgotten``, so row accounting still
balances), the staging rows and quarantine entries of those rows, every row of every table keyed
by the customers' ids or source keys, and finally any row of any table still holding one of the
identifiers as a value (a sweep, reported by table). The raw loader drops tombstoned rows of any
export loaded later, so re-ingesting an old export does not bring the person back.

Publishing the result (serving file, Parquet partitions) is the caller's job (``profiles
forget`` does it), since it needs the configuration.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field

from transforms.privacy import (
    IDENTIFIER_FIELDS,
    identifier_hash_sql,
    normalised_sql,
    tombstone_hash_sql,
)
from transforms.sql import describe, fetch_scalar, quote_ident, quote_literal, table_exists

_BASE_TABLES = """(table_catalog, table_schema, table_name) IN (
    SELECT (table_catalog, table_schema, table_name) FROM information_schema.tables
    WHERE table_catalog = current_database() AND table_type = 'BASE TABLE')"""
_SOURCE_KIND = {"crm": "crm_code", "erp": "erp_code", "wechat": "openid"}


@dataclass
class ForgetReport:
    request_id: str
    customer_ids: list[str]
    identifiers: int
    rows_removed: dict[str, int] = field(default_factory=dict)
    swept: dict[str, int] = field(default_factory=dict)  # table.column → rows found by value


def ensure_privacy_schema(con) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS privacy")
    con.execute("""CREATE TABLE IF NOT EXISTS privacy.tombstones (
        kind VARCHAR, key_hash VARCHAR, forgotten_at TIMESTAMP, request_id VARCHAR)""")
    con.execute("""CREATE TABLE IF NOT EXISTS privacy.forget_log (
        request_id VARCHAR, requested_at TIMESTAMP, customers INTEGER, identifiers INTEGER,
        rows_removed BIGINT)""")


def tombstone_filter_sql(entity: str, column_of: dict[str, str], salt: str) -> str | None:
    """A condition true for rows of ``entity`` carrying a tombstoned identifier; ``column_of``
    maps canonical fields to the column names of the table being filtered."""
    parts = [
        f"{identifier_hash_sql(kind, quote_ident(column_of[f]), salt)} IN "
        f"(SELECT key_hash FROM privacy.tombstones WHERE kind = '{kind}')"
        for f, kind in IDENTIFIER_FIELDS.get(entity, []) if f in column_of
    ]
    return " OR ".join(parts) or None


def has_tombstones(con) -> bool:
    return table_exists(con, "privacy", "tombstones") and bool(
        fetch_scalar(con, "SELECT count(*) FROM privacy.tombstones"))


def forget(con, salt: str, phone: str | None = None, email: str | None = None,
           customer_id: str | None = None) -> ForgetReport:
    """All or nothing: one transaction, so a failure leaves the warehouse as it was."""
    ensure_privacy_schema(con)
    con.execute("BEGIN TRANSACTION")
    try:
        report = _forget(con, salt, phone, email, customer_id)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("CHECKPOINT")
    return report


def _forget(con, salt: str, phone: str | None, email: str | None,
            customer_id: str | None) -> ForgetReport:
    request = uuid.uuid4().hex[:12]
    con.execute("CREATE OR REPLACE TEMP TABLE _forget_ids (kind VARCHAR, value VARCHAR)")
    if phone:
        con.execute(f"INSERT INTO _forget_ids SELECT 'phone', {normalised_sql('phone', '?')}",
                    [phone, phone])
    if email:
        con.execute(f"INSERT INTO _forget_ids SELECT 'email', {normalised_sql('email', '?')}",
                    [email])
    customers = _customers(con, customer_id)
    _collect_identifiers(con, customers)
    identifiers = fetch_scalar(con, "SELECT count(*) FROM _forget_ids WHERE value IS NOT NULL")
    con.execute(
        f"""INSERT INTO privacy.tombstones
        SELECT DISTINCT kind, key_hash, ?, ? FROM (
            SELECT kind, {tombstone_hash_sql('kind', 'value', salt)} AS key_hash
            FROM _forget_ids WHERE value IS NOT NULL)
        WHERE key_hash NOT IN (SELECT key_hash FROM privacy.tombstones)""",
        [dt.datetime.now(), request])
    report = ForgetReport(request, customers, identifiers)
    needles = _needles(con)
    _forget_name_readings(con, customers, report)
    _delete_raw_and_staging(con, salt, needles, report)
    _delete_by_customer(con, customers, report)
    _sweep(con, needles, report)
    con.execute("INSERT INTO privacy.forget_log VALUES (?, ?, ?, ?, ?)",
                [request, dt.datetime.now(), len(customers), identifiers,
                 sum(report.rows_removed.values()) + sum(report.swept.values())])
    return report


def _customers(con, customer_id: str | None) -> list[str]:
    """Current ids of the customers holding the identifiers (and the given id), plus every
    older id that now points to them."""
    con.execute("CREATE OR REPLACE TEMP TABLE _forget_customers (customer_id VARCHAR)")
    if table_exists(con, "identity", "customer_map"):
        con.execute("""INSERT INTO _forget_customers
            SELECT DISTINCT m.customer_id FROM identity.source_records r
            JOIN identity.customer_map m USING (source, source_key)
            JOIN _forget_ids f ON (f.kind = 'phone' AND r.phone = f.value)
                               OR (f.kind = 'email' AND r.email = f.value)""")
    if customer_id:
        con.execute("INSERT INTO _forget_customers VALUES (?)", [customer_id])
    if table_exists(con, "identity", "id_lookup"):
        con.execute("""INSERT INTO _forget_customers
            SELECT current_id FROM identity.id_lookup WHERE old_id IN (SELECT * FROM _forget_customers)
            UNION SELECT old_id FROM identity.id_lookup
            WHERE current_id IN (SELECT * FROM _forget_customers)""")
    return [r[0] for r in con.execute(
        "SELECT DISTINCT customer_id FROM _forget_customers ORDER BY 1").fetchall()]


def _collect_identifiers(con, customers: list[str]) -> None:
    if not customers or not table_exists(con, "identity", "source_records"):
        return
    kinds = " ".join(f"WHEN '{s}' THEN '{k}'" for s, k in _SOURCE_KIND.items())
    con.execute(
        f"""INSERT INTO _forget_ids
        WITH recs AS (SELECT r.* FROM identity.source_records r
                      JOIN identity.customer_map m USING (source, source_key)
                      WHERE m.customer_id IN (SELECT * FROM _forget_customers))
        SELECT CASE source {kinds} END, source_key FROM recs
        UNION SELECT 'phone', phone FROM recs UNION SELECT 'email', email FROM recs
        UNION SELECT 'unionid', unionid FROM recs UNION SELECT 'crm_code', crm_code FROM recs""")


def _forget_name_readings(con, customers: list[str], report: ForgetReport) -> None:
    """identity.pinyin_names caches the reading of every name seen: drop the person's names
    (another person's record with the same name simply has it read again)."""
    if not customers or not table_exists(con, "identity", "pinyin_names"):
        return
    report.rows_removed["identity.pinyin_names"] = _count_deleted(
        con, "identity.pinyin_names", """name IN (
            SELECT coalesce(r.name, r.nickname) FROM identity.source_records r
            JOIN identity.customer_map m USING (source, source_key)
            WHERE m.customer_id IN (SELECT * FROM _forget_customers))""")


def _delete_raw_and_staging(con, salt: str, needles: list[str], report: ForgetReport) -> None:
    con.execute("""CREATE OR REPLACE TEMP TABLE _forgotten_rows (
        entity VARCHAR, file_sha256 VARCHAR, row_number BIGINT)""")
    for entity in IDENTIFIER_FIELDS:
        if not table_exists(con, "raw", entity):
            continue
        cols = {f: f for f, _ in IDENTIFIER_FIELDS[entity]}
        # The identifiers in their fields (any spelling: hashed after normalising), or a phone
        # or email written into another field (a remark, an address).
        text = [c for c, t in describe(con, f"raw.{entity}").items()
                if t == "VARCHAR" and not c.startswith("_")]
        condition = " OR ".join([tombstone_filter_sql(entity, cols, salt)] + [
            f"contains({quote_ident(c)}, {quote_literal(n)})" for c in text for n in needles])
        con.execute(f"""INSERT INTO _forgotten_rows SELECT '{entity}', _file_sha256, _row_number
                        FROM raw.{entity} WHERE {condition}""")
        con.execute(f"DELETE FROM raw.{entity} WHERE {condition}")
    con.execute("""UPDATE raw.file_registry r SET rows_forgotten = r.rows_forgotten + f.n,
                          rows_loaded = r.rows_loaded - f.n
        FROM (SELECT entity, file_sha256, count(*) AS n FROM _forgotten_rows GROUP BY ALL) f
        WHERE r.entity = f.entity AND r.file_sha256 = f.file_sha256""")
    report.rows_removed["raw"] = fetch_scalar(con, "SELECT count(*) FROM _forgotten_rows")
    keyed = [("staging.quarantine", "file_sha256", "row_number"),
             ("raw.rejects", "file_sha256", "row_number")]
    keyed += [(f"staging.{e}", "_file_sha256", "_row_number") for e in IDENTIFIER_FIELDS]
    for table, sha, row in keyed:
        schema, name = table.split(".")
        if table_exists(con, schema, name):
            report.rows_removed[table] = _count_deleted(con, table, f"""({sha}, {row}) IN
                (SELECT (file_sha256, row_number) FROM _forgotten_rows)""")


def _delete_by_customer(con, customers: list[str], report: ForgetReport) -> None:
    """Every table with a customer_id, old_id / current_id or source key column (source_key;
    left_key / right_key of identity.match_links)."""
    keyed = con.execute(
        f"""SELECT table_schema || '.' || table_name, list(column_name)
        FROM information_schema.columns WHERE {_BASE_TABLES} AND table_schema NOT IN ('privacy', 'raw')
          AND column_name IN ('customer_id', 'old_id', 'current_id', 'source_key', 'left_key',
                              'right_key')
        GROUP BY ALL ORDER BY 1""").fetchall()
    con.execute("""CREATE OR REPLACE TEMP TABLE _forget_keys AS
        SELECT DISTINCT value FROM _forget_ids WHERE kind IN ('crm_code', 'erp_code', 'openid')
          AND value IS NOT NULL""")
    for table, columns in keyed:
        conditions = [f"{c} IN (SELECT * FROM _forget_keys)" if c.endswith("_key")
                      else f"{c} IN (SELECT * FROM _forget_customers)" for c in columns]
        n = _count_deleted(con, table, " OR ".join(conditions))
        if n:
            report.rows_removed[table] = report.rows_removed.get(table, 0) + n


def _sweep(con, needles: list[str], report: ForgetReport) -> None:
    """Any text column of any table still holding an identifier (exact value, or a phone's
    11 digits / an email inside a longer text such as a quarantined row or a check sample)."""
    values = [r[0] for r in con.execute(
        "SELECT DISTINCT value FROM _forget_ids WHERE value IS NOT NULL").fetchall()]
    if not values:
        return
    exact = ", ".join(quote_literal(v) for v in values)
    columns = con.execute(
        f"""SELECT table_schema || '.' || table_name, column_name FROM information_schema.columns
        WHERE {_BASE_TABLES} AND table_schema <> 'privacy' AND data_type = 'VARCHAR'
        ORDER BY 1, 2""").fetchall()
    for table, column in columns:
        col = quote_ident(column)
        condition = " OR ".join([f"{col} IN ({exact})"]
                                + [f"contains({col}, {quote_literal(n)})" for n in needles])
        n = _count_deleted(con, table, condition)
        if n:
            report.swept[f"{table}.{column}"] = n


def _needles(con) -> list[str]:
    """Substrings that identify the person inside free text: a phone's national number (the
    last 11 digits of a mainland mobile) and email addresses."""
    values = [r[0] for r in con.execute("SELECT DISTINCT value FROM _forget_ids "
                                        "WHERE kind IN ('phone', 'email') AND value IS NOT NULL"
                                        ).fetchall()]
    return sorted({v[-11:] if v.startswith("+86") else v.lstrip("+") for v in values})


def _count_deleted(con, table: str, condition: str) -> int:
    return con.execute(f"DELETE FROM {table} WHERE {condition}").fetchall()[0][0]
