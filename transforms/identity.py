"""Identity resolution: source records → clusters → stable customer_id.

Deterministic rules only (the identity issue adds probabilistic matching): records sharing a
normalised mobile/phone, email, WeChat unionid, or an ERP customer's CRM reference belong to one
person. Hub keys (a switchboard or a sales rep's number shared by many different names) link
nothing and are reported. Connected components run in scipy on integer ids (no Python loops).

Ids are carried forward in identity.id_registry: a cluster keeps the oldest id among its
records; merges and splits are written to identity.id_changes.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from transforms.sql import fetch_scalar
from transforms.staging import current_rows_sql

# Which source is trusted first when records disagree (golden record survivorship).
SOURCE_RANK = {"crm": 3, "erp": 2, "wechat": 1}


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


def build_source_records(con) -> int:
    """identity.source_records: one row per current customer record of every source."""
    con.execute(
        f"""CREATE OR REPLACE TABLE identity.source_records AS
        WITH crm AS ({current_rows_sql('crm_customers')}),
             erp AS ({current_rows_sql('erp_customers')}),
             wx AS ({current_rows_sql('wechat_followers')}),
             unioned AS (
            SELECT 'crm' AS source, customer_code AS source_key, name, phone, email,
                   NULL::VARCHAR AS unionid, customer_code AS crm_code, birth_date, city,
                   _loaded_at FROM crm
            UNION ALL
            SELECT 'erp', customer_code, name, phone, email, NULL, crm_ref, NULL, NULL, _loaded_at
            FROM erp
            UNION ALL
            SELECT 'wechat', openid, NULL, phone, NULL, unionid, NULL, NULL, city, _loaded_at
            FROM wx)
        SELECT row_number() OVER (ORDER BY source, source_key) - 1 AS record_id, *,
               lower(replace(name, ' ', '')) AS name_key
        FROM unioned"""
    )
    return fetch_scalar(con, "SELECT count(*) FROM identity.source_records")


def build_links(con, hub_max_distinct_names: int, hub_max_records: int) -> dict[str, int]:
    """identity.record_keys (record → key) and identity.hub_keys (keys that link nothing)."""
    con.execute(
        """CREATE OR REPLACE TABLE identity.record_keys AS
        SELECT record_id, source, key_type, key_value FROM (
            SELECT record_id, source, 'phone' AS key_type, phone AS key_value
            FROM identity.source_records
            UNION ALL SELECT record_id, source, 'email', email FROM identity.source_records
            UNION ALL SELECT record_id, source, 'unionid', unionid FROM identity.source_records
            UNION ALL SELECT record_id, source, 'crm_code', crm_code FROM identity.source_records)
        WHERE key_value IS NOT NULL"""
    )
    # A key is a hub when the records it would join carry too many different real names (CRM /
    # ERP names; WeChat nicknames are not names), when one source holds it under two different
    # names, or when it is on too many records. CRM codes are identifiers, never hubs.
    con.execute(
        """CREATE OR REPLACE TABLE identity.hub_keys AS
        WITH keyed AS (
            SELECT k.key_type, k.key_value, k.source, r.name, r.name_key
            FROM identity.record_keys k JOIN identity.source_records r USING (record_id)
            WHERE k.key_type IN ('phone', 'email')),
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
                    ELSE 'too many records' END AS reason
        FROM per_key JOIN per_source USING (key_type, key_value)
        WHERE distinct_names > $max_names OR max_names_in_one_source > 1
              OR records > $max_records""",
        {"max_names": hub_max_distinct_names, "max_records": hub_max_records},
    )
    con.execute(
        """CREATE OR REPLACE TABLE identity.record_links AS
        SELECT a.record_id AS left_record, b.record_id AS right_record, a.key_type AS rule,
               1.0 AS score
        FROM identity.record_keys a JOIN identity.record_keys b
          ON a.key_type = b.key_type AND a.key_value = b.key_value AND a.record_id < b.record_id
        ANTI JOIN identity.hub_keys h ON h.key_type = a.key_type AND h.key_value = a.key_value"""
    )
    return {
        "links": fetch_scalar(con, "SELECT count(*) FROM identity.record_links"),
        "hub_keys": fetch_scalar(con, "SELECT count(*) FROM identity.hub_keys"),
    }


def cluster_records(con) -> int:
    """identity.record_clusters(record_id, cluster): connected components over the links."""
    n = fetch_scalar(con, "SELECT count(*) FROM identity.source_records") or 0
    links = con.sql("SELECT left_record, right_record FROM identity.record_links").arrow().read_all()
    left = links.column("left_record").to_numpy()
    right = links.column("right_record").to_numpy()
    graph = coo_matrix((np.ones(len(left), dtype=np.int8), (left, right)), shape=(n, n))
    n_clusters, labels = connected_components(graph, directed=False)
    table = pa.table({"record_id": np.arange(n, dtype=np.int64), "cluster": labels.astype(np.int64)})
    con.register("_clusters_arrow", table)
    con.execute("CREATE OR REPLACE TABLE identity.record_clusters AS SELECT * FROM _clusters_arrow")
    con.unregister("_clusters_arrow")
    return int(n_clusters)


def assign_customer_ids(con, run_id: str, now) -> dict[str, int]:
    """Carry ids forward: each old id stays with the cluster holding most of its records; a
    cluster holding several old ids keeps the oldest (merge); clusters left without one get new
    ids. identity.customer_map is the result; identity.id_changes records merges and splits."""
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _current AS
        SELECT r.record_id, r.source, r.source_key, c.cluster, g.customer_id AS old_id,
               g.first_seen_at
        FROM identity.source_records r JOIN identity.record_clusters c USING (record_id)
        LEFT JOIN identity.id_registry g USING (source, source_key)"""
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
    con.execute(
        """CREATE OR REPLACE TABLE identity.customer_map AS
        SELECT c.record_id, c.source, c.source_key, i.customer_id
        FROM _current c JOIN _cluster_id i USING (cluster)"""
    )
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
        SELECT source, source_key, customer_id, ?, ? FROM identity.customer_map
        ON CONFLICT (source, source_key) DO UPDATE SET customer_id = excluded.customer_id""",
        [run_id, now],
    )
    return {
        "customers": fetch_scalar(con, "SELECT count(DISTINCT customer_id) FROM identity.customer_map"),
        "merges": merges[0][0] if merges else 0,
        "splits": splits[0][0] if splits else 0,
    }
