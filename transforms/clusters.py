"""Record links → clusters, with a size cap.

Connected components run in scipy on integer ids (no Python loops over records). A component
larger than the cap is almost always two people chained through one weak link, so it is rebuilt
from its links strongest first, skipping any link that would grow a part past the cap (a
maximum spanning forest under a size limit). The skipped links are reported in
identity.cluster_splits; only oversized components (rare) pass through the Python loop.

Also the helpers every identity step uses to work on all records or only on a night's region
(_region, transforms.link_region).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from transforms.sql import fetch_scalar


def record_id_bound(con) -> int:
    """One past the largest record_id: the size of arrays indexed by record_id (the ids of
    records gone from the sources are gaps, never reused)."""
    return fetch_scalar(con, "SELECT coalesce(max(record_id) + 1, 0) FROM identity.source_records")


def in_region(column: str, region: bool) -> str:
    """SQL: ``column`` (a record_id) is in _region; true for everything without a region."""
    return f"{column} IN (SELECT record_id FROM _region)" if region else "true"


def region_records(con, region: bool) -> np.ndarray:
    """The current record_ids in _region (every one without a region), ascending."""
    return con.sql(f"""SELECT record_id FROM identity.source_records
                   WHERE {in_region('record_id', region)} ORDER BY record_id"""
                   ).arrow().read_all().column("record_id").to_numpy()


def replace_rows(con, table: str, rows: str, column: str, region: bool) -> None:
    """``table`` becomes the result of ``rows``; with a region, only its rows whose ``column``
    (a record_id) is in _region are replaced."""
    if region:
        con.execute(f"DELETE FROM {table} WHERE {in_region(column, region)}")
        con.execute(f"INSERT INTO {table} {rows}")
    else:
        con.execute(f"CREATE OR REPLACE TABLE {table} AS {rows}")


def components(n: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    graph = coo_matrix((np.ones(len(left), dtype=np.int8), (left, right)), shape=(n, n))
    return connected_components(graph, directed=False)[1].astype(np.int64)


def _split(records: list[int], links: list[tuple[int, int, float]], cap: int
           ) -> tuple[dict[int, int], list[tuple[int, int, float]]]:
    """Union-find over links by descending score; a union past ``cap`` records is cut."""
    parent = {r: r for r in records}
    size = dict.fromkeys(records, 1)

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    cut = []
    for a, b, score in sorted(links, key=lambda link: (-link[2], link[0], link[1])):
        ra, rb = find(a), find(b)
        if ra == rb:
            continue
        if size[ra] + size[rb] > cap:
            cut.append((a, b, score))
            continue
        parent[rb] = ra
        size[ra] += size[rb]
    return {r: find(r) for r in records}, cut


def smallest_member(labels: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Each id's group named by the smallest id in it (``ids`` ascending): a label that does
    not depend on which records were grouped together in one call."""
    if not len(ids):
        return ids
    first = np.full(int(labels.max()) + 1, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, labels, ids)
    return first[labels]


def cluster_records(con, max_cluster_records: int, region: bool = False) -> dict[str, int]:
    """identity.record_clusters(record_id, cluster) and identity.cluster_splits; a cluster and
    a split component are named by their smallest record_id. ``region``: only the records in
    _region (transforms.link_region), whose links never reach outside it."""
    n = record_id_bound(con)
    records = region_records(con, region)
    links = con.sql("SELECT left_record, right_record, score FROM identity.record_links "
                    f"WHERE {in_region('left_record', region)}").arrow().read_all()
    left = links.column("left_record").to_numpy()
    right = links.column("right_record").to_numpy()
    labels = components(n, left, right)
    sizes = np.bincount(labels[records], minlength=1) if len(records) else np.array([], np.int64)
    oversized = np.flatnonzero(sizes > max_cluster_records)
    splits = []
    if len(oversized):
        scores = links.column("score").to_numpy()
        in_big = np.isin(labels[left], oversized)
        next_label = int(labels.max()) + 1
        for component in oversized:
            members = np.flatnonzero(labels == component).tolist()
            mask = in_big & (labels[left] == component)
            edges = list(zip(left[mask].tolist(), right[mask].tolist(), scores[mask].tolist(),
                             strict=True))
            roots, cut = _split(members, edges, max_cluster_records)
            relabel = {}
            for record, root in roots.items():
                if root not in relabel:
                    relabel[root] = next_label
                    next_label += 1
                labels[record] = relabel[root]
            splits += [(members[0], len(members), len(relabel), a, b, s) for a, b, s in cut]
    con.register("_clusters_arrow", pa.table(
        {"record_id": records, "cluster": smallest_member(labels[records], records)}))
    con.execute(
        """CREATE TABLE IF NOT EXISTS identity.cluster_splits (
            component BIGINT, records BIGINT, parts BIGINT, cut_left_record BIGINT,
            cut_right_record BIGINT, cut_score DOUBLE)"""
    )
    replace_rows(con, "identity.record_clusters", "SELECT * FROM _clusters_arrow", "record_id",
                 region)
    con.unregister("_clusters_arrow")
    con.execute("DELETE FROM identity.cluster_splits "
                f"WHERE {in_region('component', region)}")
    if splits:
        con.executemany("INSERT INTO identity.cluster_splits VALUES (?, ?, ?, ?, ?, ?)", splits)
    return {"clusters": fetch_scalar(con, "SELECT count(DISTINCT cluster) FROM identity.record_clusters"),
            "oversized": fetch_scalar(con, "SELECT count(DISTINCT component) FROM identity.cluster_splits")}
