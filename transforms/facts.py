"""Core facts: orders (ERP lines + WeChat mall orders), WeChat events, follow-ups and
opportunity stages, each row attached to a customer_id. Facts whose source key matches no
customer are kept in core.unmatched_facts with the reason, never dropped.

Incremental: core.fact_state keeps, per staging entity, the load time up to which its rows are
in core, and core.fact_key_map the customer each source key was attached to. A night then
inserts only staging rows loaded since (replacing the versions they supersede: the same natural
key, or for keyless events the same values), and re-attaches only rows whose source key now
belongs to another customer (or to none). Everything is rebuilt from staging when asked
(``full``), on the first run, or when staging was reparsed (its fingerprints changed).
"""

from __future__ import annotations

from transforms.identity import moved_keys_sql, remember_customer_map
from transforms.schema import ENTITIES
from transforms.sql import fetch_scalar, quote_ident, table_exists
from transforms.staging import current_rows_sql

FACT_ENTITIES = ("erp_orders", "wechat_events", "crm_followups", "crm_opportunities")
# fact table → (source of its customer key, key column)
FACT_KEYS = {
    "order_lines": None,  # per channel: erp → erp, wechat_mall → wechat, on source_key
    "wechat_events": ("wechat", "openid"),
    "followups": ("crm", "customer_code"),
    "opportunity_stages": ("crm", "customer_code"),
}
_MAP = "(SELECT source_key, customer_id FROM identity.customer_map WHERE source = '{}')"


def _order_lines_erp(rows: str) -> str:
    return f"""SELECT m.customer_id, 'erp' AS channel, order_no AS order_id, line_no, ordered_at,
               category, product_name, quantity, amount, quantity < 0 OR amount < 0 AS is_refund,
               customer_code AS source_key, _source_file, _row_number
        FROM ({rows}) erp LEFT JOIN {_MAP.format('erp')} m ON m.source_key = erp.customer_code"""


def _order_lines_mall(rows: str) -> str:
    return f"""SELECT m.customer_id, 'wechat_mall' AS channel, order_id, 1 AS line_no,
               event_at AS ordered_at, category, NULL AS product_name,
               coalesce(quantity, 1) AS quantity, amount, amount < 0 AS is_refund,
               openid AS source_key, _source_file, _row_number
        FROM (SELECT * FROM ({rows}) WHERE event_type = 'mall_order') wx
        LEFT JOIN {_MAP.format('wechat')} m ON m.source_key = wx.openid"""


def _attached(rows: str, source: str, key: str) -> str:
    return f"""SELECT m.customer_id, f.* EXCLUDE (_file_sha256, _loaded_at)
        FROM ({rows}) f LEFT JOIN {_MAP.format(source)} m ON m.source_key = f.{key}"""


def ensure_fact_state(con) -> None:
    con.execute("CREATE TABLE IF NOT EXISTS core.fact_state "
                "(entity VARCHAR PRIMARY KEY, loaded_upto TIMESTAMP, staging_fingerprint VARCHAR)")


def build_facts(con, full: bool = False) -> dict[str, int]:
    """core.order_lines, core.wechat_events, core.followups, core.opportunity_stages and
    core.unmatched_facts; returns row counts plus ``fact_rows_inserted`` this run."""
    ensure_fact_state(con)
    fingerprints = dict(con.execute(
        "SELECT entity, fingerprint FROM staging.build_state").fetchall())
    state = {e: (upto, fp) for e, upto, fp in con.execute(
        "SELECT entity, loaded_upto, staging_fingerprint FROM core.fact_state").fetchall()}
    incremental = not full and all(
        e in state and state[e][1] == fingerprints.get(e) for e in FACT_ENTITIES) and all(
        table_exists(con, "core", t) for t in (*FACT_KEYS, "fact_key_map"))
    inserted = _append_new(con, state) if incremental else _rebuild(con)
    _remember(con, fingerprints)
    _unmatched(con)
    counts = {t: fetch_scalar(con, f"SELECT count(*) FROM core.{t}")
              for t in (*FACT_KEYS, "unmatched_facts")}
    counts["fact_rows_inserted"] = inserted
    counts["full_rebuild"] = int(not incremental)
    return counts


def _rebuild(con) -> int:
    events = current_rows_sql("wechat_events")
    con.execute(f"""CREATE OR REPLACE TABLE core.order_lines AS
        {_order_lines_erp(current_rows_sql('erp_orders'))}
        UNION ALL {_order_lines_mall(events)}""")
    con.execute(f"CREATE OR REPLACE TABLE core.wechat_events AS "
                f"{_attached(events, 'wechat', 'openid')}")
    con.execute(f"CREATE OR REPLACE TABLE core.followups AS "
                f"{_attached(current_rows_sql('crm_followups'), 'crm', 'customer_code')}")
    con.execute(f"CREATE OR REPLACE TABLE core.opportunity_stages AS "
                f"{_attached(current_rows_sql('crm_opportunities'), 'crm', 'customer_code')}")
    return sum(fetch_scalar(con, f"SELECT count(*) FROM core.{t}") for t in FACT_KEYS)


def _same(columns: list[str], a: str, b: str) -> str:
    """NULL-safe equality of columns (a NULL follow-up content is still the same follow-up)."""
    return " AND ".join(f"{a}.{quote_ident(c)} IS NOT DISTINCT FROM {b}.{quote_ident(c)}"
                        for c in columns)


def _append_new(con, state: dict) -> int:
    """Insert staging rows loaded since the last run; re-attach rows whose key moved."""
    inserted = 0
    for entity_name in FACT_ENTITIES:
        entity = ENTITIES[entity_name]
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE _new_rows AS
            SELECT * FROM staging.{entity_name} WHERE _loaded_at > ? """,
            [state[entity_name][0]])
        if not fetch_scalar(con, "SELECT count(*) FROM _new_rows"):
            continue
        fields = list(entity.key or entity.field_names)
        # The newest version of each key among the new rows, as a full rebuild would pick.
        con.execute(f"""CREATE OR REPLACE TEMP TABLE _new_current AS
            SELECT * FROM _new_rows QUALIFY row_number() OVER (
                PARTITION BY {', '.join(quote_ident(c) for c in fields)}
                ORDER BY _loaded_at DESC, _row_number DESC) = 1""")
        if entity_name == "erp_orders":
            con.execute("""DELETE FROM core.order_lines o USING _new_current n
                WHERE o.channel = 'erp' AND o.order_id = n.order_no AND o.line_no = n.line_no""")
            inserted += _insert(con, "order_lines", _order_lines_erp("SELECT * FROM _new_current"))
        elif entity_name == "wechat_events":
            # Keyless: an event already in core (the same values) is a re-sent row.
            con.execute(f"""DELETE FROM _new_current n WHERE EXISTS (
                SELECT 1 FROM core.wechat_events e WHERE {_same(fields, 'e', 'n')})""")
            inserted += _insert(con, "wechat_events",
                                _attached("SELECT * FROM _new_current", "wechat", "openid"))
            inserted += _insert(con, "order_lines", _order_lines_mall("SELECT * FROM _new_current"))
        else:
            table = "followups" if entity_name == "crm_followups" else "opportunity_stages"
            con.execute(f"""DELETE FROM core.{table} t USING _new_current n
                            WHERE {_same(fields, 't', 'n')}""")
            inserted += _insert(con, table,
                                _attached("SELECT * FROM _new_current", "crm", "customer_code"))
    _reattach(con)
    con.execute("DROP TABLE IF EXISTS _new_rows; DROP TABLE IF EXISTS _new_current")
    return inserted


def _insert(con, table: str, select: str) -> int:
    return con.execute(f"INSERT INTO core.{table} BY NAME {select}").fetchall()[0][0]


def _reattach(con) -> None:
    """Rows whose source key now belongs to another customer (a merge, a split, a customer
    record that arrived after its orders) or to none (a forgotten record)."""
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _moved AS
        SELECT source, source_key, new_id AS customer_id
        FROM ({moved_keys_sql('core.fact_key_map')})""")
    targets = [("order_lines", "erp", "source_key", "channel = 'erp'"),
               ("order_lines", "wechat", "source_key", "channel = 'wechat_mall'")]
    targets += [(table, *spec, "true") for table, spec in FACT_KEYS.items() if spec]
    for table, source, key, only in targets:
        con.execute(f"""UPDATE core.{table} t SET customer_id = m.customer_id
            FROM (SELECT * FROM _moved WHERE source = '{source}') m
            WHERE t.{key} = m.source_key AND {only}""")
    con.execute("DROP TABLE _moved")


def _remember(con, fingerprints: dict[str, str]) -> None:
    remember_customer_map(con, "core.fact_key_map")
    for entity_name in FACT_ENTITIES:
        con.execute(
            f"""INSERT OR REPLACE INTO core.fact_state
            SELECT ?, coalesce(max(_loaded_at), TIMESTAMP '1900-01-01'), ?
            FROM staging.{entity_name}""",
            [entity_name, fingerprints.get(entity_name)])


def _unmatched(con) -> None:
    con.execute(
        """CREATE OR REPLACE TABLE core.unmatched_facts AS
        SELECT 'order_lines' AS fact, source_key, _source_file, _row_number,
               'no customer record with this key' AS reason FROM core.order_lines
        WHERE customer_id IS NULL
        UNION ALL SELECT 'wechat_events', openid, _source_file, _row_number,
               'event of an openid that is not a known follower' FROM core.wechat_events
        WHERE customer_id IS NULL
        UNION ALL SELECT 'followups', customer_code, _source_file, _row_number,
               'no CRM customer with this code' FROM core.followups WHERE customer_id IS NULL
        UNION ALL SELECT 'opportunity_stages', customer_code, _source_file, _row_number,
               'no CRM customer with this code' FROM core.opportunity_stages
        WHERE customer_id IS NULL"""
    )
