"""Score identity resolution against a ground truth (source, source_key, person_id[, evidence]).

Pairwise measures count record pairs: predicted pairs share a customer_id, true pairs share a
person_id. They are computed from group counts (n·(n-1)/2 per group), never by listing every
pair, except inside a person (a handful of records) where the evidence of each true pair is
needed.

A true pair is *findable* when its two records are connected through pairs that share evidence:
a strong key (phone, email, unionid, crm_ref) or a name together with a birth date, city or
address. A follower with no bound phone, no unionid and a nickname like 快乐每一天 shares no
evidence with anyone: no matcher can find it, so recall is reported overall and on findable
pairs. The evidence column (``phone|name|city``) is optional: a plain truth file of
``source, source_key, person_id`` is scored too, and its findable-pair figures are None (absent
from ``as_dict``), not 0 or 1.0, for nothing says which pairs could be found.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from transforms.clusters import components
from transforms.readers import file_sha256
from transforms.sql import describe, fetch_scalar, quote_literal, table_exists

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
    findable_pairs: int | None  # None: the truth has no evidence column
    findable_found: int | None
    recall_findable: float | None
    exact_clusters: float  # share of persons whose records form exactly one whole customer
    split_persons: int  # persons spread over more than one customer
    merged_customers: int  # customers holding records of more than one person

    def as_dict(self) -> dict:
        """The figures measured: without an evidence column the findable ones are absent, so
        the run's metadata and identity.latest_score (read by the run summary) omit them."""
        return {k: v for k, v in asdict(self).items() if v is not None}


def _ratio(a: int, b: int) -> float:
    return round(a / b, 4) if b else 1.0


# Bump when the evidence rules (STRONG_EVIDENCE, NAME_SUPPORT) or the cached columns change.
_TRUTH_CACHE_VERSION = "2"
TRUTH_COLUMNS = ("source", "source_key", "person_id")  # required; "evidence" is optional


def load_truth(con, path: Path) -> bool:
    """_truth: the ground truth's records, numbered (i), each with the key the customer map
    holds (CRM / ERP codes are normalised in staging: upper case, no spaces; openids are not).
    Returns whether the file has an evidence column (without one, evidence is an empty list)."""
    source = f"read_csv({quote_literal(str(path))}, header = true, all_varchar = true)"
    columns = describe(con, f"SELECT * FROM {source}")
    missing = [c for c in TRUTH_COLUMNS if c not in columns]
    if missing:
        raise ValueError(f"{path}: ground truth lacks column(s) {', '.join(missing)} (has "
                         f"{', '.join(columns)}; needs source, source_key, person_id and "
                         "optionally evidence)")
    has_evidence = "evidence" in columns
    evidence = ("string_split(coalesce(evidence, ''), '|')" if has_evidence
                else "[]::VARCHAR[]")
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _truth AS
        SELECT row_number() OVER () - 1 AS i, source,
               CASE WHEN source = 'wechat' THEN source_key
                    ELSE upper(replace(trim(source_key), ' ', '')) END AS source_key,
               person_id, {evidence} AS evidence
        FROM {source}"""
    )
    return has_evidence


def truth_records(con, path: Path, cache: bool) -> tuple[str, bool]:
    """The table of the truth's records with their evidence component (records of one person
    connected through evidence-sharing pairs, see _register_components; NULL without an
    evidence column), and whether the truth has evidence. With ``cache`` it is
    identity.truth_records, computed once per content of the file (a night reuses it: the
    truth rarely changes, the customer map does); otherwise a temp table."""
    digest = f"{_TRUTH_CACHE_VERSION}:{file_sha256(path)}" if cache else None
    if cache and table_exists(con, "identity", "truth_state"):
        # SELECT *: a warehouse cached by version 1 has no has_evidence (nor a matching digest)
        cached = con.execute("SELECT * FROM identity.truth_state WHERE digest = ?",
                             [digest]).fetchall()
        if cached:
            return "identity.truth_records", cached[0][1]
    if cache:
        con.execute("CREATE SCHEMA IF NOT EXISTS identity")
        con.execute("DROP TABLE IF EXISTS identity.truth_state")  # stale until rebuilt below
    has_evidence = load_truth(con, path)
    table = "identity.truth_records" if cache else "_truth_records"
    if has_evidence:
        _register_components(con, "_truth")
        con.execute(f"""CREATE OR REPLACE {'TABLE' if cache else 'TEMP TABLE'} {table} AS
            SELECT t.*, k.component FROM _truth t JOIN _component k USING (i)""")
        con.unregister("_component")
    else:
        con.execute(f"""CREATE OR REPLACE {'TABLE' if cache else 'TEMP TABLE'} {table} AS
            SELECT t.*, NULL::BIGINT AS component FROM _truth t""")
    con.execute("DROP TABLE _truth")
    if cache:
        con.execute("CREATE OR REPLACE TABLE identity.truth_state AS "
                    "SELECT ?::VARCHAR AS digest, ?::BOOLEAN AS has_evidence",
                    [digest, has_evidence])
    return table, has_evidence


def score_identity(con, truth_path: Path, customer_map: str = "identity.customer_map",
                   cache: bool = False) -> IdentityScore:
    truth, has_evidence = truth_records(con, truth_path, cache)
    # Only what the counts need: the evidence lists stay in the truth table (joined back for
    # the few persons with an unmapped record); copying them made this step 1.5 times slower.
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _scored AS
        SELECT t.i, t.person_id, t.component, m.customer_id
        FROM {truth} t LEFT JOIN {customer_map} m USING (source, source_key)""")
    unmapped = fetch_scalar(con, "SELECT count(*) FROM _scored WHERE customer_id IS NULL")
    if unmapped and has_evidence:
        _without_unmapped(con, truth)
    elif unmapped:  # no components to recompute
        con.execute("DELETE FROM _scored WHERE customer_id IS NULL")
    pairs = con.execute(
        """WITH by_customer AS (SELECT count(*) AS n FROM _scored GROUP BY customer_id),
                by_person AS (SELECT count(*) AS n FROM _scored GROUP BY person_id),
                by_both AS (SELECT count(*) AS n FROM _scored GROUP BY customer_id, person_id),
                pc AS (SELECT DISTINCT person_id, customer_id FROM _scored),
                per_person AS (SELECT person_id, count(*) AS customers, any_value(customer_id) AS c
                               FROM pc GROUP BY person_id),
                per_customer AS (SELECT customer_id, count(*) AS persons FROM pc
                                 GROUP BY customer_id),
                -- true pairs connected through evidence, and those of them in one customer
                findable AS (SELECT count(*) AS n FROM _scored GROUP BY person_id, component),
                found AS (SELECT count(*) AS n FROM _scored
                          GROUP BY person_id, component, customer_id)
        SELECT (SELECT count(*) FROM _scored),
               (SELECT count(*) FROM by_person), (SELECT count(*) FROM by_customer),
               (SELECT coalesce(sum(n * (n - 1) // 2), 0) FROM by_customer),
               (SELECT coalesce(sum(n * (n - 1) // 2), 0) FROM by_person),
               (SELECT coalesce(sum(n * (n - 1) // 2), 0) FROM by_both),
               (SELECT count(*) FROM per_person WHERE customers > 1),
               (SELECT count(*) FROM per_customer WHERE persons > 1),
               (SELECT count(*) FROM per_person p JOIN per_customer c ON c.customer_id = p.c
                WHERE p.customers = 1 AND c.persons = 1),
               (SELECT coalesce(sum(n * (n - 1) // 2), 0) FROM findable),
               (SELECT coalesce(sum(n * (n - 1) // 2), 0) FROM found)"""
    ).fetchall()[0]
    con.execute("DROP TABLE _scored")
    records, persons, customers, predicted, true, correct, split, merged, exact, findable, found = (
        int(v) for v in pairs)
    precision, recall = _ratio(correct, predicted), _ratio(correct, true)
    return IdentityScore(
        records=records, unmapped_truth_records=unmapped, persons=persons, customers=customers,
        predicted_pairs=predicted, true_pairs=true, correct_pairs=correct,
        precision=precision, recall=recall,
        f1=round(2 * precision * recall / (precision + recall), 4) if precision + recall else 0.0,
        findable_pairs=findable if has_evidence else None,
        findable_found=found if has_evidence else None,
        recall_findable=_ratio(found, findable) if has_evidence else None,
        exact_clusters=_ratio(exact, persons), split_persons=split, merged_customers=merged,
    )


def _without_unmapped(con, truth: str) -> None:
    """Drop the truth records no customer holds (e.g. quarantined rows). They cannot connect
    the others either, so the evidence components of their persons are recomputed without them."""
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _affected AS
        SELECT row_number() OVER () - 1 AS i, s.person_id, s.customer_id, t.evidence
        FROM _scored s JOIN {truth} t USING (i)
        WHERE s.customer_id IS NOT NULL AND s.person_id IN (
            SELECT person_id FROM _scored WHERE customer_id IS NULL)""")
    con.execute("DELETE FROM _scored WHERE person_id IN (SELECT person_id FROM _affected) "
                "OR customer_id IS NULL")
    _register_components(con, "_affected")
    con.execute("""INSERT INTO _scored BY NAME
        SELECT a.person_id, a.customer_id, k.component, -1 AS i
        FROM _affected a JOIN _component k USING (i)""")
    con.unregister("_component")
    con.execute("DROP TABLE _affected")


def _register_components(con, records: str) -> None:
    """_component(i, component): the component of each record of ``records`` (numbered 0..n-1
    in column i) in the graph of true pairs that share evidence: a strong key, or a name
    together with a supporting field."""
    strong = "[" + ", ".join(quote_literal(e) for e in STRONG_EVIDENCE) + "]"
    support = "[" + ", ".join(quote_literal(e) for e in NAME_SUPPORT) + "]"
    links = con.sql(
        f"""SELECT a.i AS a, b.i AS b FROM {records} a JOIN {records} b
              ON a.person_id = b.person_id AND a.i < b.i
        WHERE list_has_any(list_intersect(a.evidence, b.evidence), {strong})
           OR (list_contains(a.evidence, 'name') AND list_contains(b.evidence, 'name')
               AND list_has_any(list_intersect(a.evidence, b.evidence), {support}))"""
    ).arrow().read_all()
    n = fetch_scalar(con, f"SELECT count(*) FROM {records}")
    con.register("_component", {"i": np.arange(n), "component": components(
        n, links.column("a").to_numpy(), links.column("b").to_numpy())})
