"""Score identity resolution against a ground truth (source, source_key, person_id, evidence).

Pairwise measures count record pairs: predicted pairs share a customer_id, true pairs share a
person_id. They are computed from group counts (n·(n-1)/2 per group), never by listing every
pair, except inside a person (a handful of records) where the evidence of each true pair is
needed.

A true pair is *findable* when its two records are connected through pairs that share evidence:
a strong key (phone, email, unionid, crm_ref) or a name together with a birth date, city or
address. A follower with no bound phone, no unionid and a nickname like 快乐每一天 shares no
evidence with anyone: no matcher can find it, so recall is reported overall and on findable
pairs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from transforms.sql import quote_literal

STRONG_EVIDENCE = ("phone", "email", "unionid", "crm_ref")
NAME_SUPPORT = ("birth_date", "city", "address")


@dataclass
class IdentityScore:
    records: int  # truth records found in the customer map
    unmapped_truth_records: int  # truth records with no customer (e.g. quarantined rows)
    persons: int
    customers: int
    predicted_pairs: int
    true_pairs: int
    correct_pairs: int
    precision: float
    recall: float
    f1: float
    findable_pairs: int
    findable_found: int
    recall_findable: float
    exact_clusters: float  # share of persons whose records form exactly one whole customer
    split_persons: int  # persons spread over more than one customer
    merged_customers: int  # customers holding records of more than one person

    def as_dict(self) -> dict:
        return asdict(self)


def _ratio(a: int, b: int) -> float:
    return round(a / b, 4) if b else 1.0


def load_truth(con, path: Path) -> None:
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _truth AS
        SELECT source, upper(replace(trim(source_key), ' ', '')) AS code, source_key, person_id,
               string_split(coalesce(evidence, ''), '|') AS evidence
        FROM read_csv({quote_literal(str(path))}, header = true, all_varchar = true)"""
    )


def score_identity(con, truth_path: Path, customer_map: str = "identity.customer_map"
                   ) -> IdentityScore:
    load_truth(con, truth_path)
    # CRM / ERP codes are normalised in staging (upper case, no spaces); openids are not.
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _scored AS
        SELECT t.source, t.source_key, t.person_id, t.evidence, m.customer_id
        FROM _truth t LEFT JOIN {customer_map} m ON m.source = t.source
         AND m.source_key = CASE WHEN t.source = 'wechat' THEN t.source_key ELSE t.code END"""
    )
    unmapped = con.execute("SELECT count(*) FROM _scored WHERE customer_id IS NULL").fetchall()[0][0]
    con.execute("DELETE FROM _scored WHERE customer_id IS NULL")
    pairs = con.execute(
        """WITH by_customer AS (SELECT count(*) AS n FROM _scored GROUP BY customer_id),
                by_person AS (SELECT count(*) AS n FROM _scored GROUP BY person_id),
                by_both AS (SELECT count(*) AS n FROM _scored GROUP BY customer_id, person_id),
                pc AS (SELECT DISTINCT person_id, customer_id FROM _scored),
                per_person AS (SELECT person_id, count(*) AS customers, any_value(customer_id) AS c
                               FROM pc GROUP BY person_id),
                per_customer AS (SELECT customer_id, count(*) AS persons FROM pc
                                 GROUP BY customer_id)
        SELECT (SELECT count(*) FROM _scored),
               (SELECT count(*) FROM by_person), (SELECT count(*) FROM by_customer),
               (SELECT coalesce(sum(n * (n - 1) // 2), 0) FROM by_customer),
               (SELECT coalesce(sum(n * (n - 1) // 2), 0) FROM by_person),
               (SELECT coalesce(sum(n * (n - 1) // 2), 0) FROM by_both),
               (SELECT count(*) FROM per_person WHERE customers > 1),
               (SELECT count(*) FROM per_customer WHERE persons > 1),
               (SELECT count(*) FROM per_person p JOIN per_customer c ON c.customer_id = p.c
                WHERE p.customers = 1 AND c.persons = 1)"""
    ).fetchall()[0]
    records, persons, customers, predicted, true, correct, split, merged, exact = pairs
    findable, found = _findable_pairs(con)
    precision, recall = _ratio(correct, predicted), _ratio(correct, true)
    return IdentityScore(
        records=records, unmapped_truth_records=unmapped, persons=persons, customers=customers,
        predicted_pairs=predicted, true_pairs=true, correct_pairs=correct,
        precision=precision, recall=recall,
        f1=round(2 * precision * recall / (precision + recall), 4) if precision + recall else 0.0,
        findable_pairs=findable, findable_found=found,
        recall_findable=_ratio(found, findable),
        exact_clusters=_ratio(exact, persons), split_persons=split, merged_customers=merged,
    )


def _findable_pairs(con) -> tuple[int, int]:
    """(true pairs connected through evidence-sharing pairs, how many of them share a customer)."""
    strong = "[" + ", ".join(quote_literal(e) for e in STRONG_EVIDENCE) + "]"
    support = "[" + ", ".join(quote_literal(e) for e in NAME_SUPPORT) + "]"
    # Any numbering will do (only the graph counts): sorting 1.8M records for it took 1.4 s.
    con.execute("CREATE OR REPLACE TEMP TABLE _numbered AS "
                "SELECT row_number() OVER () - 1 AS i, * FROM _scored")
    links = con.sql(
        f"""SELECT a.i AS a, b.i AS b FROM _numbered a JOIN _numbered b
              ON a.person_id = b.person_id AND a.i < b.i
        WHERE list_has_any(list_intersect(a.evidence, b.evidence), {strong})
           OR (list_contains(a.evidence, 'name') AND list_contains(b.evidence, 'name')
               AND list_has_any(list_intersect(a.evidence, b.evidence), {support}))"""
    ).arrow().read_all()
    n = con.execute("SELECT count(*) FROM _numbered").fetchall()[0][0]
    graph = coo_matrix((np.ones(links.num_rows, dtype=np.int8),
                        (links.column("a").to_numpy(), links.column("b").to_numpy())), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    con.register("_component", {"i": np.arange(n), "component": component})
    row = con.execute(
        """WITH c AS (SELECT n.*, k.component FROM _numbered n JOIN _component k USING (i)),
                g AS (SELECT count(*) AS n FROM c GROUP BY person_id, component),
                h AS (SELECT count(*) AS n FROM c GROUP BY person_id, component, customer_id)
        SELECT (SELECT coalesce(sum(n * (n - 1) // 2), 0) FROM g),
               (SELECT coalesce(sum(n * (n - 1) // 2), 0) FROM h)"""
    ).fetchall()[0]
    con.unregister("_component")
    return int(row[0]), int(row[1])
