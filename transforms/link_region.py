"""The records a night's changes can reach, so that identity relinks only those.

Let G be the graph that joins two records when they share any key (hub keys too) or when
Splink scored them as a match. Everything identity decides depends on one component of G
alone: whether a key is a hub, the strong groups and their conflicts, the ambiguity of a weak
link, the size cap of a cluster, and which cluster keeps an old id. identity.record_components
keeps each record's component of G (labelled by its smallest record_id) from run to run.

A night's region (_region) is built from the records whose links may differ (_relinked: the
changed, new and removed records and every holder of a key they had or have, which includes
every record Splink scores anew). It holds those records and their last-run components, and
then every record one Splink link away from them, with their last-run components, and the
last-run components of any other record holding an old id of a region record.
Outside the region, no record's links changed, so its components are the same last run and
now: a path made or broken between two such records would run through a relinked record. The
region is therefore a union of whole components, before and now. Relinking inside it and
keeping everything outside gives the same tables as relinking every record.
"""

from __future__ import annotations

import pyarrow as pa

from transforms.clusters import (
    components,
    in_region,
    record_id_bound,
    region_records,
    replace_rows,
    smallest_member,
)

_COMPONENTS = "identity.record_components"


def find_region(con) -> int:
    """_region(record_id) from _relinked (see the module docstring); returns its size."""
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _near AS
        SELECT record_id FROM _relinked UNION {_whole_components('_relinked')}""")
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _region AS
        WITH reach AS (
            -- a key holder is in _near already: if it shared the key last run, it was in the
            -- same component; if either holder took the key since, _relinked holds both
            SELECT record_id FROM _near
            UNION SELECT right_record FROM identity.probabilistic_links
                WHERE left_record IN (SELECT record_id FROM _near)
            UNION SELECT left_record FROM identity.probabilistic_links
                WHERE right_record IN (SELECT record_id FROM _near))
        SELECT record_id FROM reach UNION {_whole_components('reach')};
        DROP TABLE _near"""
    )
    # A record back in the exports after a night away still has its old id in the registry;
    # the cluster holding that id now is brought in, so the two compete for it as they would
    # in a relink of every record.
    con.execute(
        f"""INSERT INTO _region
        WITH old_ids AS (
            SELECT g.customer_id FROM identity.id_registry g
            JOIN identity.source_records r USING (source, source_key)
            SEMI JOIN _region USING (record_id)),
        holders AS (SELECT record_id FROM identity.customer_map SEMI JOIN old_ids USING (customer_id))
        {_whole_components('holders')}
        EXCEPT SELECT record_id FROM _region"""
    )
    return con.execute("SELECT count(*) FROM _region").fetchall()[0][0]


def _whole_components(records: str) -> str:
    """SQL: every record of the last-run components of ``records`` (a relation of record_ids)."""
    return f"""SELECT record_id FROM {_COMPONENTS} WHERE component IN (
        SELECT component FROM {_COMPONENTS} SEMI JOIN {records} USING (record_id))"""


def write_components(con, region: bool) -> None:
    """identity.record_components of the current records (in _region only, with a region).
    Strong links stand for shared keys that are not hubs; each hub key joins its holders."""
    inside = in_region("left_record", region)
    edges = con.sql(
        f"""SELECT left_record, right_record FROM identity.record_links
            WHERE rule <> 'probabilistic' AND {inside}
        UNION ALL SELECT left_record, right_record FROM identity.probabilistic_links
            WHERE {inside}
        UNION ALL SELECT min(record_id) OVER (PARTITION BY key_type, key_value), record_id
            FROM identity.record_keys SEMI JOIN identity.hub_keys USING (key_type, key_value)
            WHERE {in_region('record_id', region)}"""
    ).arrow().read_all()
    labels = components(record_id_bound(con), edges.column(0).to_numpy(),
                        edges.column(1).to_numpy())
    ids = region_records(con, region)
    con.register("_components_arrow", pa.table(
        {"record_id": ids, "component": smallest_member(labels[ids], ids)}))
    replace_rows(con, _COMPONENTS, "SELECT * FROM _components_arrow", "record_id", region)
    con.unregister("_components_arrow")
