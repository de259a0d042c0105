"""Identity resolution: source records → clusters → stable customer_id.

Deterministic rules: records sharing a normalised phone, email, WeChat unionid, or an ERP
customer's CRM reference belong to one person. Hub keys (a switchboard or a sales rep's number
shared by many different names) link nothing and are reported. Records no strong key joins are
matched by Splink (transforms.matching); clusters are formed in transforms.clusters.

Ids are carried forward in identity.id_registry: a cluster keeps the oldest id among its
records; merges and splits are written to identity.id_changes.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import time
from pathlib import Path

from transforms.clusters import (
    cluster_records,
    components,
    in_region,
    record_id_bound,
    region_records,
    replace_rows,
)
from transforms.link_region import find_region, write_components
from transforms.matching import probabilistic_links
from transforms.pinyin import NOT_A_NAME, pinyin_table, remark_name_regex
from transforms.sql import describe, fetch_scalar, quote_literal, table_exists
from transforms.staging import current_rows_sql

# A mainland mobile in E.164 (what staging makes of 138 0013 8000).
MAINLAND_MOBILE = r"\+861[3-9][0-9]{9}"


def ensure_identity_schema(con) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS identity")
    con.execute(
        """CREATE TABLE IF NOT EXISTS identity.id_registry (
            source VARCHAR, source_key VARCHAR, customer_id VARCHAR, first_seen_run VARCHAR,
            first_seen_at TIMESTAMP, PRIMARY KEY (source, source_key))"""
    )
    con.execute(
        """CREATE TABLE IF NOT EXISTS identity.id_changes (
            change VARCHAR, from_id VARCHAR, to_id VARCHAR, records BIGINT, run_id VARCHAR,
            changed_at TIMESTAMP, reason VARCHAR)"""
    )


# The staging tables customer records come from: entity → (source, key column).
CUSTOMER_SOURCES = {"crm_customers": ("crm", "customer_code"),
                    "erp_customers": ("erp", "customer_code"),
                    "wechat_followers": ("wechat", "openid")}


# Part of every record's hash: bump it when the derived keys below change (_DERIVED_COLUMNS,
# _KEYED), so that every record is derived again on the next run.
KEYS_VERSION = "1"
# Above this share of new or changed records, one rewrite beats deleting and inserting.
_REWRITE_SHARE = 0.3


def build_source_records(con, full: bool = False) -> dict[str, int]:
    """identity.source_records: one row per current customer record of every source, with the
    comparison keys matching needs (see transforms.pinyin for the name keys).

    Incremental: a record keeps its row (and record_id) while its content hash is unchanged;
    only new and changed records are derived again. A new record takes the next record_id, so
    ids are stable from run to run and never reused (forgotten records leave gaps). Only keys
    with a staging row loaded since the last run are read (see _loaded_marks); every current
    row is read when that cannot be trusted. ``full`` derives every record again, still
    keeping the ids."""
    cities = [r[0] for r in con.execute(
        "SELECT alias FROM city_alias WHERE regexp_full_match(alias, '\\p{Han}+')").fetchall()]
    remark_name = remark_name_regex(cities)
    content = ", ".join(f"{c}::VARCHAR" for c in _RECORD_CONTENT)
    # A table from before record hashes (or none): every record is new, numbered afresh.
    first = not (table_exists(con, "identity", "source_records")
                 and "record_hash" in describe(con, "identity.source_records"))
    marks = None if first or full else _loaded_marks(con)
    rows = {e: current_rows_sql(e, None if marks is None else f"$after_{e}")
            for e in CUSTOMER_SOURCES}
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _records AS
        SELECT *, md5(list_value('{KEYS_VERSION}', {content})::VARCHAR) AS record_hash FROM (
        WITH crm AS ({rows['crm_customers']}),
             erp AS (SELECT *, address_city(address) AS address_city
                     FROM ({rows['erp_customers']})),
             -- a few dozen distinct cities: canonical_city per row took 2.8 s at 1M persons
             erp_city AS (SELECT address_city, canonical_city(address_city) AS city
                          FROM (SELECT DISTINCT address_city FROM erp)),
             wx AS ({rows['wechat_followers']})
        SELECT 'crm' AS source, customer_code AS source_key, name, NULL::VARCHAR AS nickname,
               gender, phone, email, NULL::VARCHAR AS unionid, customer_code AS crm_code,
               birth_date, city, address FROM crm
        UNION ALL
        SELECT 'erp', customer_code, name, NULL, NULL, phone, email, NULL, crm_ref, NULL,
               erp_city.city, address FROM erp LEFT JOIN erp_city USING (address_city)
        UNION ALL
        -- A rep's remark often carries the real name (张伟 李雷客户, 福州张伟): it beats the
        -- nickname as the follower's name.
        SELECT 'wechat', openid, NULL,
               coalesce(CASE WHEN NOT regexp_matches(remark_name, {quote_literal(NOT_A_NAME)})
                             THEN remark_name END, nickname),
               gender, phone, NULL, unionid, NULL, NULL, city, NULL
        FROM (SELECT *, nullif(regexp_extract(remark, {quote_literal(remark_name)}, 1), '')
                        AS remark_name FROM wx))""",
        {} if marks is None else {f"after_{e}": t for e, t in marks.items()},
    )
    previous = _NO_RECORDS if first else "identity.source_records"
    # New and changed records (every record when full), with the id they keep or take.
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _fresh AS
        SELECT coalesce(p.record_id, $next_id - 1 + row_number() OVER (
                   PARTITION BY p.record_id IS NULL ORDER BY r.source, r.source_key))
                   AS record_id, r.*
        FROM _records r LEFT JOIN {previous} p USING (source, source_key)
        WHERE {'true' if full else 'p.record_hash IS DISTINCT FROM r.record_hash'}""",
        {"next_id": 0 if first else record_id_bound(con)},
    )
    _read_new_pinyin(con)
    fresh = fetch_scalar(con, "SELECT count(*) FROM _fresh")
    read = fetch_scalar(con, "SELECT count(*) FROM _records")
    kept = 0 if first else fetch_scalar(con, "SELECT count(*) FROM identity.source_records")
    derived = f"SELECT {_DERIVED_COLUMNS} FROM {_KEYED}"
    # Rows to replace: changed records, and (when every current row was read) forgotten ones.
    stale = ("EXISTS (SELECT 1 FROM _fresh f WHERE f.source = k.source "
             "AND f.source_key = k.source_key)" if marks is not None else
             """NOT EXISTS (SELECT 1 FROM _records r WHERE r.source = k.source
                 AND r.source_key = k.source_key AND r.record_hash = k.record_hash)""")
    # The records whose keys or content may differ from last run's (transforms.link_region).
    gone = "" if first or full else f"UNION SELECT record_id FROM {previous} k WHERE {stale}"
    con.execute(f"CREATE OR REPLACE TEMP TABLE _touched AS SELECT record_id FROM _fresh {gone}")
    # Every record new or changed (the first run, full, a KEYS_VERSION bump): write them alone,
    # so a bump may change the derived columns too.
    if first or full or (marks is None and fresh == read):
        con.execute(f"CREATE OR REPLACE TABLE identity.source_records AS {derived} ORDER BY record_id")
    elif fresh > _REWRITE_SHARE * kept:
        con.execute(
            f"""CREATE OR REPLACE TABLE identity.source_records AS
            SELECT * FROM (SELECT * FROM identity.source_records k WHERE NOT {stale}
                           UNION ALL {derived})
            ORDER BY record_id"""
        )
    else:
        con.execute(f"DELETE FROM identity.source_records k WHERE {stale}")
        con.execute(f"INSERT INTO identity.source_records {derived}")
    con.execute("DROP TABLE _records; DROP TABLE _fresh")
    _remember_marks(con)
    return {"source_records": fetch_scalar(con, "SELECT count(*) FROM identity.source_records"),
            "source_records_read": read, "source_records_derived": fresh,
            # only rows loaded since the last run were read: nothing else can have changed
            "source_records_read_since_last_run": int(marks is not None)}


def _loaded_marks(con) -> dict[str, object] | None:
    """Per staging table, the load time up to which last run read it; None when reading only
    rows loaded since cannot be trusted: no state yet, a new KEYS_VERSION, staging re-parsed,
    or rows gone or added at or before the mark (forgotten records, a restaged table)."""
    if not table_exists(con, "identity", "records_state"):
        return None
    state = {e: (rows, upto) for e, rows, upto in con.execute(
        """SELECT s.entity, s.rows, s.loaded_upto FROM identity.records_state s
        JOIN staging.build_state b ON b.entity = s.entity AND b.fingerprint = s.parsed
        WHERE s.keys_version = ?""", [KEYS_VERSION]).fetchall()}
    if set(state) != set(CUSTOMER_SOURCES):
        return None
    for entity, (rows, upto) in state.items():
        if fetch_scalar(con, f"SELECT count(*) FROM staging.{entity} WHERE _loaded_at <= ?",
                        [upto]) != rows:
            return None
    return {e: upto for e, (_, upto) in state.items()}


def _remember_marks(con) -> None:
    con.execute("""CREATE OR REPLACE TABLE identity.records_state (entity VARCHAR, rows BIGINT,
        loaded_upto TIMESTAMP, parsed VARCHAR, keys_version VARCHAR)""")
    for entity in CUSTOMER_SOURCES:
        # An empty table's mark is the start of time, so its first rows count as new.
        con.execute(f"""INSERT INTO identity.records_state
            SELECT ?, count(*), coalesce(max(_loaded_at), TIMESTAMP '1970-01-01'),
                   (SELECT fingerprint FROM staging.build_state WHERE entity = ?), ?
            FROM staging.{entity}""", [entity, entity, KEYS_VERSION])


# What a record is: its hash covers these (not when it was loaded: a full export that loads
# the same content again changes nothing).
_RECORD_CONTENT = ["source", "source_key", "name", "nickname", "gender", "phone", "email",
                   "unionid", "crm_code", "birth_date", "city", "address"]
_NO_RECORDS = ("(SELECT NULL::VARCHAR AS source, NULL::VARCHAR AS source_key, "
               "NULL::BIGINT AS record_id, NULL::VARCHAR AS record_hash WHERE false)")
_KEYED = """(
    SELECT r.*,
           -- Latin names in the order written; Han names surname first
           coalesce(p.surname_py || p.given_py, fold_letters(r.any_name)) AS py_a,
           coalesce(p.given_py || p.surname_py, fold_letters(array_to_string(
               list_reverse(string_split(lower(r.any_name), ' ')), ''))) AS py_b
    FROM (SELECT *, coalesce(name, nickname) AS any_name FROM _fresh) r
    LEFT JOIN identity.pinyin_names p ON p.name = r.any_name)"""
_DERIVED_COLUMNS = """record_id, source, source_key, name, nickname, gender, phone, email,
    unionid, crm_code, birth_date, city, address,
    lower(replace(name, ' ', '')) AS name_key,
    lower(replace(any_name, ' ', '')) AS any_name_key,
    nullif(py_a, '') AS py_a, nullif(py_b, '') AS py_b,
    -- the letters sorted: equal for zhangwei / weizhang / "Wei Zhang" (blocking only)
    nullif(array_to_string(list_sort(string_split(py_a, '')), ''), '') AS py_sorted,
    -- one value for 张伟 / Zhang Wei / ZHANG WEI: distinct names behind a hub key
    CASE WHEN name IS NOT NULL THEN coalesce(py_sorted, name_key) END AS name_match_key,
    nullif(replace(address_street(address), ' ', ''), '') AS address_key,
    split_part(email, '@', 1) AS email_user,
    right(phone, 8) AS phone_tail,
    record_hash"""


def _read_new_pinyin(con) -> None:
    """pypinyin is Python: it reads each distinct name once, ever (identity.pinyin_names keeps
    the readings, so a night reads only names it has not seen)."""
    con.execute("CREATE TABLE IF NOT EXISTS identity.pinyin_names "
                "(name VARCHAR PRIMARY KEY, surname_py VARCHAR, given_py VARCHAR)")
    han = [r[0] for r in con.execute(
        """SELECT DISTINCT coalesce(name, nickname) AS n FROM _fresh
        WHERE regexp_full_match(n, '\\p{Han}{2,4}')
          AND n NOT IN (SELECT name FROM identity.pinyin_names)""").fetchall()]
    con.register("_new_pinyin", pinyin_table(han))
    con.execute("INSERT INTO identity.pinyin_names SELECT * FROM _new_pinyin")
    con.unregister("_new_pinyin")


def build_links(con, hub_max_distinct_names: int, hub_max_records: int,
                incremental: bool = False) -> dict[str, int]:
    """identity.record_keys (record → key), identity.hub_keys (keys that link nothing) and the
    strong-key links of identity.record_links. ``incremental``: only the keys of the records
    in _touched (build_source_records) and the links of every record holding one of those keys
    before or now (_relinked) are redone, which gives the same tables."""
    if incremental:
        con.execute("""CREATE OR REPLACE TEMP TABLE _old_keys AS SELECT key_type, key_value
            FROM identity.record_keys SEMI JOIN _touched USING (record_id)""")
        con.execute("DELETE FROM identity.record_keys "
                    "WHERE record_id IN (SELECT record_id FROM _touched)")
        con.execute("INSERT INTO identity.record_keys " + _key_rows(
            "(SELECT * FROM identity.source_records SEMI JOIN _touched USING (record_id))"))
        con.execute("""CREATE OR REPLACE TEMP TABLE _touched_keys AS
            SELECT key_type, key_value FROM _old_keys UNION
            SELECT key_type, key_value FROM identity.record_keys SEMI JOIN _touched USING (record_id);
            DROP TABLE _old_keys""")
        con.execute("""CREATE OR REPLACE TEMP TABLE _relinked AS
            SELECT record_id FROM _touched UNION
            SELECT record_id FROM identity.record_keys SEMI JOIN _touched_keys
                USING (key_type, key_value)""")
        con.execute("""DELETE FROM identity.hub_keys h USING _touched_keys t
            WHERE h.key_type = t.key_type AND h.key_value = t.key_value""")
        touched_rows = ("(SELECT * FROM identity.record_keys "
                        "SEMI JOIN _touched_keys USING (key_type, key_value))")
        con.execute("INSERT INTO identity.hub_keys " + _HUB_KEYS.format(keys=touched_rows),
                    _hub_limits(hub_max_distinct_names, hub_max_records))
        con.execute("""DELETE FROM identity.record_links WHERE left_record IN
            (SELECT record_id FROM _relinked) OR right_record IN (SELECT record_id FROM _relinked)""")
        # Every key a relinked record holds, with all its holders: the pairs to find again.
        con.execute("""CREATE OR REPLACE TEMP TABLE _relinked_keys AS
            SELECT * FROM identity.record_keys SEMI JOIN (
                SELECT key_type, key_value FROM identity.record_keys SEMI JOIN _relinked
                USING (record_id)) USING (key_type, key_value)""")
        con.execute(f"""INSERT INTO identity.record_links {_STRONG_LINKS.format(keys='_relinked_keys')}
            WHERE a.record_id IN (SELECT record_id FROM _relinked)
               OR b.record_id IN (SELECT record_id FROM _relinked)""")
        con.execute("DROP TABLE _relinked_keys")
    else:
        con.execute("CREATE OR REPLACE TABLE identity.record_keys AS "
                    + _key_rows("identity.source_records"))
        con.execute("CREATE OR REPLACE TABLE identity.hub_keys AS "
                    + _HUB_KEYS.format(keys="identity.record_keys"),
                    _hub_limits(hub_max_distinct_names, hub_max_records))
        con.execute("CREATE OR REPLACE TABLE identity.record_links AS "
                    + _STRONG_LINKS.format(keys="identity.record_keys"))
    return {
        "strong_key_links": fetch_scalar(
            con, "SELECT count(*) FROM identity.record_links WHERE rule <> 'probabilistic'"),
        "hub_keys": fetch_scalar(con, "SELECT count(*) FROM identity.hub_keys"),
    }


def _key_rows(records: str) -> str:
    return f"""SELECT record_id, source, key_type, key_value FROM (
        SELECT record_id, source, 'phone' AS key_type, phone AS key_value FROM {records}
        UNION ALL SELECT record_id, source, 'email', email FROM {records}
        UNION ALL SELECT record_id, source, 'unionid', unionid FROM {records}
        UNION ALL SELECT record_id, source, 'crm_code', crm_code FROM {records})
    WHERE key_value IS NOT NULL"""


def _hub_limits(max_names: int, max_records: int) -> dict:
    return {"max_names": max_names, "max_records": max_records, "mobile": MAINLAND_MOBILE}


# A key is a hub when the records it would join carry too many different real names (CRM /
# ERP names; WeChat nicknames are not names), when one source holds it under two different
# names, or when it is on too many records. CRM codes are identifiers, never hubs. Only the
# keys of {keys} (rows of identity.record_keys) are judged.
_HUB_KEYS = """
    WITH all_keyed AS (
        SELECT k.key_type, k.key_value, k.source, r.name, r.name_match_key AS name_key
        FROM {keys} k JOIN identity.source_records r USING (record_id)
        WHERE k.key_type IN ('phone', 'email')),
    -- Only a key under two different names or on too many records can be a hub: a cheap
    -- first pass leaves the distinct counts below a few hundred keys instead of millions.
    candidates AS (
        SELECT key_type, key_value FROM all_keyed GROUP BY ALL
        HAVING min(name_key) <> max(name_key) OR count(*) > $max_records),
    keyed AS (SELECT * FROM all_keyed SEMI JOIN candidates USING (key_type, key_value)),
    per_source AS (
        SELECT key_type, key_value, max(n) AS max_names_in_one_source
        FROM (SELECT key_type, key_value, source, count(DISTINCT name_key) AS n
              FROM keyed GROUP BY ALL)
        GROUP BY ALL),
    per_key AS (
        SELECT key_type, key_value, count(*) AS records,
               count(DISTINCT name_key) AS distinct_names,
               list(DISTINCT name ORDER BY name) FILTER (WHERE name IS NOT NULL) AS names
        FROM keyed GROUP BY ALL)
    SELECT key_type, key_value, records, distinct_names, names,
           CASE WHEN distinct_names > $max_names THEN 'too many distinct names'
                WHEN max_names_in_one_source > 1 THEN 'different names in one source'
                WHEN records > $max_records THEN 'too many records'
                ELSE 'a landline under different names' END AS reason
    FROM per_key JOIN per_source USING (key_type, key_value)
    WHERE distinct_names > $max_names OR max_names_in_one_source > 1
          OR records > $max_records
          -- an office or shop line: two names on it are two people (a shared mobile is
          -- more often one person's, entered twice with a name variant)
          OR (key_type = 'phone' AND distinct_names > 1
              AND NOT regexp_full_match(key_value, $mobile))"""
# Records sharing a key that is not a hub, one row per shared key type.
_STRONG_LINKS = """
    SELECT a.record_id AS left_record, b.record_id AS right_record, a.key_type AS rule,
           1.0::DOUBLE AS score, a.key_type AS evidence
    FROM {keys} a JOIN {keys} b
      ON a.key_type = b.key_type AND a.key_value = b.key_value AND a.record_id < b.record_id
    ANTI JOIN identity.hub_keys h ON h.key_type = a.key_type AND h.key_value = a.key_value"""


# Comparisons that corroborate a name; a link without any of them rests on name, gender and city.
_CORROBORATING = "address|birth_date|phone|email"


def add_probabilistic_links(con, region: bool = False) -> dict[str, int]:
    """Append Splink's links (identity.probabilistic_links) that no strong key already made,
    unless they would join two groups of records (as the strong keys grouped them) that
    contradict each other: two different mobile numbers, birth dates or genders; or when a
    link resting on name, gender and city alone starts at a record that fits, that way, two
    groups with no link between them. Rejected links are kept, with the reason, in
    identity.rejected_links. ``region``: only links inside _region (transforms.link_region)."""
    n = record_id_bound(con)
    inside = in_region("left_record", region)
    con.execute(f"DELETE FROM identity.record_links WHERE rule = 'probabilistic' AND {inside}")
    strong = con.sql(f"""SELECT left_record, right_record FROM identity.record_links
                     WHERE {inside}""").arrow().read_all()
    labels = components(n, strong.column("left_record").to_numpy(),
                        strong.column("right_record").to_numpy())
    ids = region_records(con, region)
    con.register("_strong_groups", {"record_id": ids, "grp": labels[ids]})
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _group_facts AS
        SELECT g.grp,
               list(DISTINCT r.phone) FILTER (WHERE regexp_full_match(r.phone, '{MAINLAND_MOBILE}')
                                                AND h.key_value IS NULL) AS mobiles,
               list(DISTINCT r.birth_date) FILTER (WHERE r.birth_date IS NOT NULL) AS births,
               list(DISTINCT r.gender) FILTER (WHERE r.gender IS NOT NULL) AS genders
        FROM identity.source_records r JOIN _strong_groups g USING (record_id)
        LEFT JOIN identity.hub_keys h ON h.key_type = 'phone' AND h.key_value = r.phone
        GROUP BY g.grp"""
    )
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _candidate_links AS
        WITH p AS (
            SELECT p.*, fa.mobiles AS ma, fb.mobiles AS mb, fa.births AS ba, fb.births AS bb,
                   fa.genders AS ga, fb.genders AS gb
            FROM identity.probabilistic_links p
            ANTI JOIN identity.record_links d USING (left_record, right_record)
            JOIN _strong_groups a ON a.record_id = p.left_record
            JOIN _strong_groups b ON b.record_id = p.right_record
            JOIN _group_facts fa ON fa.grp = a.grp JOIN _group_facts fb ON fb.grp = b.grp)
        SELECT left_record, right_record, score, evidence,
               concat_ws(', ',
                   CASE WHEN len(ma) > 0 AND len(mb) > 0 AND NOT list_has_any(ma, mb)
                        THEN 'different mobile numbers' END,
                   CASE WHEN len(ba) > 0 AND len(bb) > 0 AND NOT list_has_any(ba, bb)
                        THEN 'different birth dates' END,
                   CASE WHEN len(ga) > 0 AND len(gb) > 0 AND NOT list_has_any(ga, gb)
                        THEN 'different genders' END) AS conflict
        FROM p"""
    )
    # Ambiguity: a record that fits, on name, gender and city alone, two groups that nothing
    # joins to each other (two 徐蕾梦 in 上海 with different birth dates) cannot say which one
    # it belongs to, so it joins neither that way.
    weak = f"NOT regexp_matches(evidence, '{_CORROBORATING}')"
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _ambiguous AS
        WITH ends AS (SELECT left_record AS record_id, right_record AS other
                      FROM _candidate_links WHERE {weak}
                      UNION ALL
                      SELECT right_record, left_record FROM _candidate_links WHERE {weak}),
        partners AS (SELECT e.record_id, e.other, g.grp
                     FROM ends e JOIN _strong_groups g ON g.record_id = e.other)
        SELECT DISTINCT a.record_id
        FROM partners a JOIN partners b
          ON a.record_id = b.record_id AND a.other < b.other AND a.grp <> b.grp
        ANTI JOIN (SELECT left_record, right_record FROM _candidate_links WHERE conflict = '') c
          ON c.left_record = a.other AND c.right_record = b.other"""
    )
    con.execute(
        f"""UPDATE _candidate_links
        SET conflict = concat_ws(', ', nullif(conflict, ''), 'name and city fit several customers')
        WHERE {weak} AND (left_record IN (SELECT record_id FROM _ambiguous)
                          OR right_record IN (SELECT record_id FROM _ambiguous))"""
    )
    replace_rows(con, "identity.rejected_links",
                 "SELECT * FROM _candidate_links WHERE conflict <> ''", "left_record", region)
    con.execute(
        """INSERT INTO identity.record_links
        SELECT left_record, right_record, 'probabilistic', score, evidence
        FROM _candidate_links WHERE conflict = ''"""
    )
    con.unregister("_strong_groups")
    return {
        "probabilistic_links": fetch_scalar(
            con, "SELECT count(*) FROM identity.record_links WHERE rule = 'probabilistic'"),
        "links_rejected_for_conflict": fetch_scalar(
            con, "SELECT count(*) FROM identity.rejected_links"),
    }


def assign_customer_ids(con, run_id: str, now, region: bool = False) -> dict[str, int]:
    """Carry ids forward: each old id stays with the cluster holding most of its records; a
    cluster holding several old ids keeps the oldest (merge); clusters left without one get new
    ids, numbered in the order of their smallest record_id. identity.customer_map is the
    result; identity.id_changes records merges and splits. ``region``: only the records in
    _region (an old id's records all lie in one region or outside)."""
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _current AS
        SELECT r.record_id, r.source, r.source_key, c.cluster, g.customer_id AS old_id,
               g.first_seen_at
        FROM identity.source_records r JOIN identity.record_clusters c USING (record_id)
        LEFT JOIN identity.id_registry g USING (source, source_key)
        WHERE {in_region('r.record_id', region)}"""
    )
    # The cluster that keeps each old id: most of its records, then its earliest record.
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _keeper AS
        SELECT old_id, cluster FROM (
            SELECT old_id, cluster, row_number() OVER (
                PARTITION BY old_id ORDER BY count(*) DESC, min(first_seen_at), cluster) AS pick
            FROM _current WHERE old_id IS NOT NULL GROUP BY old_id, cluster)
        WHERE pick = 1"""
    )
    next_no = fetch_scalar(
        con, "SELECT coalesce(max(TRY_CAST(substr(customer_id, 2) AS BIGINT)), 0) "
             "FROM identity.id_registry") + 1
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _cluster_id AS
        WITH kept AS (SELECT cluster, min(old_id) AS customer_id FROM _keeper GROUP BY cluster),
             fresh AS (SELECT DISTINCT cluster FROM _current ANTI JOIN kept USING (cluster))
        SELECT cluster, customer_id FROM kept
        UNION ALL
        SELECT cluster, 'C' || lpad((? + row_number() OVER (ORDER BY cluster) - 1)::VARCHAR, 9, '0')
        FROM fresh""",
        [next_no],
    )
    con.execute("""CREATE OR REPLACE TEMP TABLE _mapped AS
        SELECT c.record_id, c.source, c.source_key, i.customer_id, c.old_id
        FROM _current c JOIN _cluster_id i USING (cluster)""")
    replace_rows(con, "identity.customer_map", "SELECT * EXCLUDE (old_id) FROM _mapped",
                 "record_id", region)
    merges = con.execute(
        """INSERT INTO identity.id_changes
        SELECT 'merge', k.old_id, i.customer_id, NULL, ?, ?, 'records now linked to an older id'
        FROM _keeper k JOIN _cluster_id i USING (cluster) WHERE k.old_id <> i.customer_id""",
        [run_id, now],
    ).fetchall()
    splits = con.execute(
        """INSERT INTO identity.id_changes
        SELECT 'split', c.old_id, i.customer_id, count(*), ?, ?,
               'records no longer linked to the rest of their customer'
        FROM _current c JOIN _cluster_id i USING (cluster)
        WHERE c.old_id IS NOT NULL AND c.old_id <> i.customer_id
          AND c.old_id NOT IN (SELECT old_id FROM _keeper k JOIN _cluster_id j USING (cluster)
                               WHERE k.old_id <> j.customer_id)
        GROUP BY c.old_id, i.customer_id""",
        [run_id, now],
    ).fetchall()
    con.execute(
        """INSERT INTO identity.id_registry
        SELECT source, source_key, customer_id, ?, ? FROM _mapped
        WHERE old_id IS DISTINCT FROM customer_id
        ON CONFLICT (source, source_key) DO UPDATE SET customer_id = excluded.customer_id""",
        [run_id, now],
    )
    _create_id_lookup(con)
    return {
        "customers": fetch_scalar(con, "SELECT count(DISTINCT customer_id) FROM identity.customer_map"),
        "merges": merges[0][0] if merges else 0,
        "splits": splits[0][0] if splits else 0,
    }


def moved_keys_sql(previous: str) -> str:
    """(source, source_key, old_id, new_id) of every source key whose customer differs between
    ``previous`` (a snapshot of identity.customer_map taken by an earlier run) and the map now;
    an id is NULL where the key is absent (a new record, a forgotten one)."""
    return f"""SELECT source, source_key, p.customer_id AS old_id, m.customer_id AS new_id
        FROM {previous} p FULL JOIN identity.customer_map m USING (source, source_key)
        WHERE p.customer_id IS DISTINCT FROM m.customer_id"""


def remember_customer_map(con, copy: str) -> None:
    """Bring ``copy`` (schema.table: a run's snapshot of identity.customer_map, read back by
    moved_keys_sql the next night) up to the map now. Only the keys that moved, arrived or were
    forgotten are written: a night rewrote all ~3M rows of each copy before (1.5 s at 1M)."""
    if not table_exists(con, *copy.split(".")):
        con.execute(f"CREATE TABLE {copy} AS "
                    "SELECT source, source_key, customer_id FROM identity.customer_map")
        return
    con.execute(f"CREATE OR REPLACE TEMP TABLE _moved_keys AS {moved_keys_sql(copy)}")
    con.execute(f"""DELETE FROM {copy} c USING _moved_keys m
        WHERE c.source = m.source AND c.source_key IS NOT DISTINCT FROM m.source_key""")
    con.execute(f"INSERT INTO {copy} SELECT source, source_key, new_id FROM _moved_keys "
                "WHERE new_id IS NOT NULL")
    con.execute("DROP TABLE _moved_keys")


def _create_id_lookup(con) -> None:
    """identity.id_lookup: every id ever issued → the id that stands for it now, following
    merges (A merged into B merged into C: A → C). A split keeps the id on its larger part."""
    con.execute(
        """CREATE OR REPLACE VIEW identity.id_lookup AS
        WITH RECURSIVE live AS (SELECT DISTINCT customer_id FROM identity.customer_map),
        issued AS (SELECT customer_id AS old_id FROM live
                   UNION SELECT from_id FROM identity.id_changes
                   UNION SELECT to_id FROM identity.id_changes),
        hop(old_id, current_id, merges) AS (
            SELECT old_id, old_id, 0 FROM issued
            UNION ALL
            SELECT h.old_id, c.to_id, h.merges + 1
            FROM hop h JOIN identity.id_changes c
              ON c.change = 'merge' AND c.from_id = h.current_id
            WHERE h.merges < 100)
        SELECT old_id, current_id, merges,
               CASE WHEN merges = 0 THEN 'current' ELSE 'merged' END AS status
        FROM hop SEMI JOIN live ON live.customer_id = hop.current_id"""
    )


def resolve_identities(con, cfg, run_id: str, now, full: bool = False,
                       timings: dict[str, float] | None = None) -> dict[str, int]:
    """The whole identity stage: records → strong-key links (hub guards) → Splink links →
    size-capped clusters → stable ids. ``cfg``: pipelines.config.IdentityConfig. ``full``:
    retrain Splink and score every pair even when few records changed. ``timings`` receives
    the seconds of each step. A night with no new or changed record keeps the links,
    clusters and ids (stats: ``links_reused``; identity.link_state)."""
    timings = {} if timings is None else timings
    clock = time.perf_counter()

    def lap(step: str) -> None:
        nonlocal clock
        timings[step] = round(time.perf_counter() - clock, 2)
        clock = time.perf_counter()

    ensure_identity_schema(con)
    fingerprint = _links_fingerprint(cfg)
    records_before = (fetch_scalar(con, "SELECT count(*) FROM identity.source_records")
                      if table_exists(con, "identity", "source_records") else None)
    # Taken before anything is written, so a run that stops half-way leaves no state behind
    # and the next run links again.
    previous = _take_link_state(con)
    stats = build_source_records(con, full)
    lap("source_records")
    # Last run's links, clusters and components stand for the records as they are now, less
    # the ones build_source_records touched (a forget between runs deletes records and so
    # makes last run's state untrustworthy).
    trusted = (not full and previous is not None and previous[0] == fingerprint
               and previous[1].get("source_records") == records_before
               and table_exists(con, "identity", "record_components"))
    if (trusted and stats["source_records_read_since_last_run"]
            and not stats["source_records_derived"]):
        # No record is new or changed and the settings are the same: the links, clusters
        # and ids would come out as they are. (An age-due Splink retrain waits for a night
        # with changes.)
        stats = {**previous[1], **stats, "records_relinked": 0, "links_reused": 1}
        _keep_link_state(con, fingerprint, stats)
        return stats
    touched = fetch_scalar(con, "SELECT count(*) FROM _touched")
    incremental = trusted and touched <= cfg.incremental_max_changed_share * stats["source_records"]
    stats.update(build_links(con, cfg.hub_max_distinct_names, cfg.hub_max_records, incremental))
    lap("strong_links")
    matched = probabilistic_links(
        con, cfg.match_probability, now=now, retrain=full, retrain_days=cfg.model_retrain_days,
        max_changed_share=cfg.incremental_max_changed_share)
    stats["splink_links"], stats["splink_labelled_pairs"] = matched.links, matched.labelled_pairs
    stats["splink_records_rescored"] = matched.records_rematched
    stats["splink_retrained"] = int(matched.retrained)
    lap("splink")
    # Splink scored every pair again: every link may differ.
    region = incremental and not matched.retrained
    stats["records_relinked"] = find_region(con) if region else stats["source_records"]
    write_components(con, region)
    lap("region")
    stats.update(add_probabilistic_links(con, region))
    lap("link_checks")
    clusters = cluster_records(con, cfg.max_cluster_records, region)
    stats["clusters"], stats["clusters_split_by_cap"] = clusters["clusters"], clusters["oversized"]
    lap("clusters")
    stats.update(assign_customer_ids(con, run_id, now, region))
    lap("ids")
    stats["links_reused"] = 0
    _keep_link_state(con, fingerprint, stats)
    return stats


def _links_fingerprint(cfg) -> str:
    """The identity settings and the linking code: a change to either links again."""
    modules = (__file__, inspect.getsourcefile(cluster_records),
               inspect.getsourcefile(probabilistic_links), inspect.getsourcefile(find_region))
    code = b"".join(Path(m).read_bytes() for m in modules)
    settings = cfg.model_dump_json(exclude={"ground_truth"}).encode()
    return hashlib.sha256(code + settings + KEYS_VERSION.encode()).hexdigest()


def _take_link_state(con) -> tuple[str, dict] | None:
    """Last run's (fingerprint, stats), removed from the warehouse."""
    con.execute("CREATE TABLE IF NOT EXISTS identity.link_state (fingerprint VARCHAR, stats JSON)")
    rows = con.execute("SELECT fingerprint, stats FROM identity.link_state").fetchall()
    con.execute("DELETE FROM identity.link_state")
    return (rows[0][0], json.loads(rows[0][1])) if len(rows) == 1 else None


def _keep_link_state(con, fingerprint: str, stats: dict) -> None:
    con.execute("INSERT INTO identity.link_state VALUES (?, ?)",
                [fingerprint, json.dumps({k: int(v) for k, v in stats.items()})])
