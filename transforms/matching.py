"""Probabilistic record linkage with Splink (Fellegi-Sunter on DuckDB) for records that no
strong key joins.

Why Splink: it is made for this (m/u weights per comparison level, term-frequency adjustment so
a shared 张伟 counts for less than a shared 上官婉儿, blocking so the cross product is never
formed) and the same model runs on Spark when one machine is no longer enough.

The model is trained without labels from people: u from random pairs, m from the pairs the
strong keys (phone, email, unionid, CRM reference) already joined (starting from prior values
that stand where too few labelled pairs exist, e.g. a small first export) — real matches, so they show
how names, cities and addresses of one person differ across systems. The prior match probability comes from the same pairs. Phone and
email take fixed m and u values (the labelled pairs agree on them by construction). Splink runs on its own in-memory
DuckDB connection; records go in and scored pairs come out as Arrow tables.

Incremental nights: the trained model is kept in identity.match_model and the inputs each record
was matched with in identity.match_inputs. When few records are new or changed (at most
``max_changed_share``) and the model is younger than ``retrain_days``, only pairs with a new or
changed record are scored (Splink's predict_between / predict_within against term frequencies
of all records); links between two unchanged records are carried forward from
identity.match_links. Otherwise the model is retrained and every pair scored.

WeChat nicknames are compared with names in their own comparison, not as names: most followers
call themselves 快乐每一天, so a nickname that differs from a name says little, while two CRM
names that differ say a lot.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass

import duckdb
import pyarrow as pa
from splink import DuckDBAPI, Linker, SettingsCreator, block_on

from transforms.sql import describe, fetch_scalar, table_exists

_COLUMNS = ["record_id", "source", "name_key", "nickname", "gender", "any_name_key", "py_a",
            "py_b",
            "py_sorted", "birth_date", "city", "address_key", "phone", "phone_tail", "email",
            "email_user", "unionid"]
_PINYIN_EQUAL = "(py_a_l = py_a_r OR py_a_l = py_b_r OR py_b_l = py_a_r)"
# Both followers: only their unionid joins two openids, and nickname twins are everywhere.
_NOT_TWO_FOLLOWERS = "(l.nickname IS NULL OR r.nickname IS NULL)"


@dataclass
class MatchResult:
    links: int  # pairs at or above the threshold
    labelled_pairs: int  # strong-key pairs m was learned from (0 when the model was reused)
    records_rematched: int = 0  # records whose pairs were scored this run
    retrained: bool = True


def _level(sql: str, label: str, **extra) -> dict:
    return {"sql_condition": sql, "label_for_charts": label, **extra}


def _null(sql: str) -> dict:
    return {"sql_condition": sql, "label_for_charts": "null", "is_null_level": True}


def _fixed(m: float, u: float) -> dict:
    return {"m_probability": m, "fix_m_probability": True,
            "u_probability": u, "fix_u_probability": True}


def _else(m: float | None = None) -> dict:
    level = {"sql_condition": "ELSE", "label_for_charts": "different"}
    return level if m is None else {**level, "m_probability": m}


def comparisons() -> list[dict]:
    name = {"output_column_name": "name", "comparison_levels": [
        _null("name_key_l IS NULL OR name_key_r IS NULL"),
        _level("name_key_l = name_key_r", "exact", m_probability=0.75,
               tf_adjustment_column="name_key", tf_adjustment_weight=1.0),
        _level(_PINYIN_EQUAL, "same pinyin", m_probability=0.12),
        _level("jaro_winkler_similarity(py_a_l, py_a_r) >= 0.92", "similar pinyin",
               m_probability=0.03),
        _else(0.10)]}
    nickname = {"output_column_name": "nickname", "comparison_levels": [
        _null("(nickname_l IS NULL AND nickname_r IS NULL) OR any_name_key_l IS NULL "
              "OR any_name_key_r IS NULL"),
        _level("any_name_key_l = any_name_key_r", "nickname is the name", m_probability=0.15,
               tf_adjustment_column="any_name_key", tf_adjustment_weight=1.0),
        _level(_PINYIN_EQUAL, "nickname is the name in pinyin", m_probability=0.08),
        _else(0.77)]}
    birth = {"output_column_name": "birth_date", "comparison_levels": [
        _null("birth_date_l IS NULL OR birth_date_r IS NULL"),
        _level("birth_date_l = birth_date_r", "exact", m_probability=0.9),
        _level("year(birth_date_l) = year(birth_date_r)", "same year", m_probability=0.03),
        _else(0.07)]}
    city = {"output_column_name": "city", "comparison_levels": [
        _null("city_l IS NULL OR city_r IS NULL"),
        _level("city_l = city_r", "exact", m_probability=0.85, tf_adjustment_column="city",
               tf_adjustment_weight=1.0),
        _else(0.15)]}
    address = {"output_column_name": "address", "comparison_levels": [
        _null("address_key_l IS NULL OR address_key_r IS NULL"),
        _level("address_key_l = address_key_r", "exact", m_probability=0.6),
        # a typo, not another door on the same street: the house numbers must agree
        _level("jaro_winkler_similarity(address_key_l, address_key_r) >= 0.9 AND "
               "regexp_extract_all(address_key_l, '[0-9]+') = "
               "regexp_extract_all(address_key_r, '[0-9]+')", "similar", m_probability=0.2),
        _else(0.2)]}
    # Fixed m: the labelled pairs are joined by phone / email, so they cannot teach these.
    phone = {"output_column_name": "phone", "comparison_levels": [
        _null("phone_l IS NULL OR phone_r IS NULL"),
        _level("phone_l = phone_r", "exact", **_fixed(0.6, 1e-6)),
        _level("phone_tail_l = phone_tail_r", "same last 8 digits", **_fixed(0.05, 1e-5)),
        {**_else(), **_fixed(0.10, 1.0)}]}
    email = {"output_column_name": "email", "comparison_levels": [
        _null("email_l IS NULL OR email_r IS NULL"),
        _level("email_l = email_r", "exact", **_fixed(0.85, 1e-6)),
        _level("email_user_l = email_user_r", "same user name", **_fixed(0.05, 1e-5)),
        {**_else(), **_fixed(0.10, 1.0)}]}
    # Gender says little when it agrees and much when it does not (WeChat sex 0 is NULL).
    gender = {"output_column_name": "gender", "comparison_levels": [
        _null("gender_l IS NULL OR gender_r IS NULL"),
        _level("gender_l = gender_r", "same", m_probability=0.97),
        _else(0.03)]}
    return [name, nickname, gender, birth, city, address, phone, email]


# Candidate pairs: never the cross product. Each rule is an equi-join on these columns.
BLOCKING_KEYS = [("any_name_key", "city"), ("py_sorted", "city"), ("any_name_key", "birth_date"),
                 ("address_key",), ("py_sorted", "email_user"), ("py_sorted", "phone_tail")]
# Columns whose comparisons adjust for term frequency (see comparisons()).
TF_COLUMNS = ("name_key", "any_name_key", "city")


def blocking_rules() -> list:
    return [block_on(*columns) for columns in BLOCKING_KEYS]


def _guarded(rule) -> dict:
    """A blocking rule as SQL, with the two-followers guard added."""
    sql = rule.get_blocking_rule("duckdb").blocking_rule_sql
    return {"blocking_rule": f"({sql}) AND {_NOT_TWO_FOLLOWERS}", "sql_dialect": "duckdb"}


def probabilistic_links(con, match_probability: float, seed: int = 0, *,
                        max_changed_share: float = 0.0, retrain_days: int = 0,
                        retrain: bool = False, now: dt.datetime | None = None) -> MatchResult:
    """identity.probabilistic_links(left_record, right_record, score, evidence) for pairs above
    ``match_probability``. Hub keys are blanked first, so they add no evidence either.
    With ``retrain_days`` 0 (the default) or ``retrain`` every run retrains and rescores."""
    _ensure_match_state(con)
    now = now or dt.datetime.now()
    blank = {"phone": "hub_phone", "phone_tail": "hub_phone", "email": "hub_email",
             "email_user": "hub_email"}
    select = ", ".join(f"CASE WHEN {blank[c]} IS NULL THEN r.{c} END AS {c}" if c in blank
                       else f"r.{c}" for c in _COLUMNS)
    # What a record is matched on; a record whose inputs differ from last run's is "changed".
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _match_records AS
        SELECT *, hash({', '.join(_COLUMNS[1:])}) AS match_hash
        FROM (SELECT r.source_key, {select}
              FROM identity.source_records r
              LEFT JOIN (SELECT key_value AS hub_phone FROM identity.hub_keys
                         WHERE key_type = 'phone') ON hub_phone = r.phone
              LEFT JOIN (SELECT key_value AS hub_email FROM identity.hub_keys
                         WHERE key_type = 'email') ON hub_email = r.email)"""
    )
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _match_changed AS
        SELECT record_id FROM _match_records m
        ANTI JOIN identity.match_inputs i USING (source, source_key, match_hash)"""
    )
    n = fetch_scalar(con, "SELECT count(*) FROM _match_records")
    changed = fetch_scalar(con, "SELECT count(*) FROM _match_changed")
    model = con.execute("SELECT settings, trained_at FROM identity.match_model").fetchall()
    reuse = (not retrain and bool(model) and n > 0 and changed <= max_changed_share * n
             and now - model[0][1] < dt.timedelta(days=retrain_days))
    splink_con = duckdb.connect()
    try:
        if reuse:
            result = _rescore_changed(con, splink_con, json.loads(model[0][0]),
                                      match_probability, changed)
        else:
            records = con.sql(f"SELECT {', '.join(_COLUMNS)} FROM _match_records "
                              "ORDER BY record_id").arrow().read_all()
            labels = con.sql(
                """SELECT DISTINCT 'records' AS source_dataset_l, left_record AS record_id_l,
                          'records' AS source_dataset_r, right_record AS record_id_r
                FROM identity.record_links WHERE rule <> 'probabilistic'"""
            ).arrow().read_all()
            result = _run_splink(con, splink_con, records, labels,
                                 match_probability, seed, now)
    finally:
        splink_con.close()
    _remember_inputs(con)
    return result


def _ensure_match_state(con) -> None:
    con.execute("CREATE TABLE IF NOT EXISTS identity.match_model "
                "(settings VARCHAR, trained_at TIMESTAMP, records BIGINT)")
    if (table_exists(con, "identity", "match_inputs")
            and describe(con, "identity.match_inputs")["match_hash"] != "UBIGINT"):
        con.execute("DROP TABLE identity.match_inputs")  # md5 text before: rematch all once
    con.execute("CREATE TABLE IF NOT EXISTS identity.match_inputs "
                "(source VARCHAR, source_key VARCHAR, match_hash UBIGINT)")
    con.execute(
        """CREATE TABLE IF NOT EXISTS identity.match_links (
            left_source VARCHAR, left_key VARCHAR, right_source VARCHAR, right_key VARCHAR,
            score DOUBLE, evidence VARCHAR)""")


def _remember_inputs(con) -> None:
    """Keep this run's match inputs and links by source key (record ids change every run)."""
    con.execute("CREATE OR REPLACE TABLE identity.match_inputs AS "
                "SELECT source, source_key, match_hash FROM _match_records")
    con.execute(
        """CREATE OR REPLACE TABLE identity.match_links AS
        SELECT a.source AS left_source, a.source_key AS left_key, b.source AS right_source,
               b.source_key AS right_key, p.score, p.evidence
        FROM identity.probabilistic_links p
        JOIN _match_records a ON a.record_id = p.left_record
        JOIN _match_records b ON b.record_id = p.right_record""")
    con.execute("DROP TABLE _match_records; DROP TABLE _match_changed")


def _rescore_changed(con, splink_con, settings: dict, match_probability: float,
                     changed: int) -> MatchResult:
    """Score only pairs with a changed record; carry the other links forward. Splink gets the
    changed records and only the unchanged ones a blocking rule pairs with them (not everyone),
    with term frequencies counted over every record as a full run counts them."""
    _empty_links(con)
    con.execute(
        """INSERT INTO identity.probabilistic_links
        SELECT least(a.record_id, b.record_id), greatest(a.record_id, b.record_id), l.score,
               l.evidence
        FROM identity.match_links l
        JOIN _match_records a ON a.source = l.left_source AND a.source_key = l.left_key
        JOIN _match_records b ON b.source = l.right_source AND b.source_key = l.right_key
        WHERE a.record_id NOT IN (SELECT record_id FROM _match_changed)
          AND b.record_id NOT IN (SELECT record_id FROM _match_changed)"""
    )
    if changed:
        splink_con.register("_records_arrow", _blocking_candidates(con))
        for table, where in (("_all_records", "true"), ("_unchanged_records", "NOT changed"),
                             ("_changed_records", "changed")):
            splink_con.execute(f"CREATE TABLE {table} AS "
                               f"SELECT * EXCLUDE (changed) FROM _records_arrow WHERE {where}")
        splink_con.unregister("_records_arrow")
        api = DuckDBAPI(connection=splink_con)
        everyone = api.register("_all_records", dataset_display_name="records")
        old = api.register("_unchanged_records", dataset_display_name="unchanged")
        new = api.register("_changed_records", dataset_display_name="changed")
        linker = Linker(everyone, settings, log_level=logging.WARNING)
        for column in TF_COLUMNS:  # Splink's own formula, over every record
            frequencies = con.sql(
                f"""SELECT {column}, CAST(count(*) AS DOUBLE)
                           / (SELECT count({column}) FROM _match_records) AS tf_{column}
                FROM _match_records WHERE {column} IS NOT NULL GROUP BY {column}""").arrow()
            linker.table_management.register_term_frequency_lookup(
                api.register(frequencies.read_all(), dataset_display_name=f"tf_{column}"), column)
        rules = [_guarded(r) for r in blocking_rules()]
        for scored in (
            linker.inference.predict_between(old, new, blocking_rules_to_generate_predictions=rules,
                                             threshold_match_probability=match_probability),
            linker.inference.predict_within(new, blocking_rules_to_generate_predictions=rules,
                                            threshold_match_probability=match_probability),
        ):
            _insert_scored(con, splink_con, scored)
    links = fetch_scalar(con, "SELECT count(*) FROM identity.probabilistic_links")
    return MatchResult(links, 0, changed, retrained=False)


def _blocking_candidates(con) -> pa.Table:
    """The changed records and the unchanged records sharing every column of some blocking
    rule with one of them (NULL matches nothing, as in Splink's equi-joins), with ``changed``."""
    pairs_with = " UNION ".join(
        f"""SELECT m.record_id FROM _match_records m SEMI JOIN _changed_inputs c
            ON {' AND '.join(f'm.{col} = c.{col}' for col in columns)}"""
        for columns in BLOCKING_KEYS) + " UNION SELECT record_id FROM _match_changed"
    con.execute("""CREATE OR REPLACE TEMP TABLE _changed_inputs AS
        SELECT * FROM _match_records SEMI JOIN _match_changed USING (record_id)""")
    table = con.sql(
        f"""SELECT {', '.join(_COLUMNS)},
                   record_id IN (SELECT record_id FROM _match_changed) AS changed
        FROM _match_records SEMI JOIN ({pairs_with}) USING (record_id)
        ORDER BY record_id""").arrow().read_all()
    con.execute("DROP TABLE _changed_inputs")
    return table


def _prior(records: int, strong_pairs: int, strong_recall: float = 0.7) -> float:
    """P(two random records match): the pairs strong keys found, scaled up by the share of
    matches they are thought to find, over all pairs (at least one expected match)."""
    pairs = records * (records - 1) / 2
    return min(0.5, max(strong_pairs / strong_recall, 1.0) / pairs)


def _run_splink(con, splink_con, records: pa.Table, labels: pa.Table, match_probability: float,
                seed: int, now: dt.datetime) -> MatchResult:
    _empty_links(con)
    if records.num_rows < 2:
        return MatchResult(0, 0)
    api = DuckDBAPI(connection=splink_con)
    settings = SettingsCreator(
        link_type="dedupe_only", unique_id_column_name="record_id",
        comparisons=comparisons(),
        blocking_rules_to_generate_predictions=[_guarded(r) for r in blocking_rules()],
        retain_intermediate_calculation_columns=True, retain_matching_columns=False,
        probability_two_random_records_match=_prior(records.num_rows, labels.num_rows),
    )
    linker = Linker(api.register(records, dataset_display_name="records"), settings,
                    log_level=logging.WARNING)
    linker.training.estimate_u_using_random_sampling(max_pairs=2e6, seed=seed)
    if labels.num_rows:
        splink_con.register("_labels_arrow", labels)
        splink_con.execute("CREATE TABLE labels AS SELECT * FROM _labels_arrow")
        linker.training.estimate_m_from_pairwise_labels("labels")
    scored = linker.inference.predict(threshold_match_probability=match_probability)
    pairs = _insert_scored(con, splink_con, scored)
    con.execute("DELETE FROM identity.match_model")
    con.execute("INSERT INTO identity.match_model VALUES (?, ?, ?)",
                [json.dumps(linker.misc.save_model_to_json()), now, records.num_rows])
    return MatchResult(pairs, labels.num_rows, records.num_rows)


def _insert_scored(con, splink_con, scored) -> int:
    """Append Splink's scored pairs to identity.probabilistic_links; evidence names the
    comparisons that spoke for the match (positive weight), e.g. name+city."""
    agreed = " || ".join(f"CASE WHEN mw_{n} > 0 THEN '{n}+' ELSE '' END"
                         for n in (c["output_column_name"] for c in comparisons()))
    pairs = splink_con.sql(
        f"""SELECT least(record_id_l, record_id_r) AS left_record,
                   greatest(record_id_l, record_id_r) AS right_record,
                   match_probability AS score, rtrim({agreed}, '+') AS evidence
        FROM {scored.physical_name}"""
    ).arrow().read_all()
    con.register("_probabilistic_arrow", pairs)
    con.execute("INSERT INTO identity.probabilistic_links SELECT * FROM _probabilistic_arrow")
    con.unregister("_probabilistic_arrow")
    return pairs.num_rows


def _empty_links(con) -> None:
    con.execute(
        """CREATE OR REPLACE TABLE identity.probabilistic_links (
            left_record BIGINT, right_record BIGINT, score DOUBLE, evidence VARCHAR)"""
    )
