"""Why a customer carries the tags they carry: each rule, the feature values it read, and the
tags of exclusive groups the customer narrowly missed (`profiles explain CUSTOMER_ID`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from transforms.features import FEATURES
from transforms.sql import quote_literal
from transforms.tags import PCT_HELPER, LoadedRules, expand_helpers


@dataclass
class RuleOutcome:
    tag_id: str
    path: str  # level1 / level2 / level3
    rule: str
    matched: bool  # the rule is true for this customer
    carried: bool  # the customer has the tag (an exclusive group keeps only its first match)
    values: dict[str, object] = field(default_factory=dict)  # features and thresholds it read


@dataclass
class Explanation:
    asked_id: str
    customer_id: str | None  # after following merges (identity.id_lookup)
    summary: dict[str, object] = field(default_factory=dict)
    carried: list[RuleOutcome] = field(default_factory=list)
    missed: list[RuleOutcome] = field(default_factory=list)  # other tags of exclusive groups


def _reads(rule: str) -> list[str]:
    """What a rule reads: its feature columns, then its pct(...) thresholds as written."""
    words = re.findall(r"[a-z_][a-z0-9_]*", PCT_HELPER.sub("", rule))
    columns = dict.fromkeys(w for w in words if w in FEATURES)
    return [*columns, *(m.group(0) for m in PCT_HELPER.finditer(rule))]


def _current_id(con, customer_id: str) -> str | None:
    rows = con.execute("SELECT current_id FROM identity.id_lookup WHERE old_id = ?",
                       [customer_id]).fetchall()
    return rows[0][0] if rows else None


def explain(con, customer_id: str, rules: LoadedRules) -> Explanation:
    result = Explanation(customer_id, _current_id(con, customer_id))
    if result.customer_id is None:
        return result
    key = quote_literal(result.customer_id)
    result.summary = dict(zip(
        ["name", "sources", "segment", "churn_probability", "predicted_clv_365d"],
        con.execute(f"""SELECT name, sources, segment_name, churn_probability, predicted_clv_365d
                        FROM profile.customer_profile WHERE customer_id = {key}""").fetchall()[0],
        strict=True))
    carried = {r[0] for r in con.execute(
        f"SELECT tag_id FROM profile.customer_tags WHERE customer_id = {key}").fetchall()}
    # One statement: every rule's truth, every column it reads, every pct() threshold.
    exprs, names = [], []
    for tag in rules.catalog:
        exprs.append(f"coalesce(({expand_helpers(tag['rule'])}), false)")
        names.append(("rule", tag["tag_id"]))
        for read in _reads(tag["rule"]):
            exprs.append(expand_helpers(read))  # a column stays itself; pct() → its value
            names.append(("value", read))
    row = con.execute(f"SELECT {', '.join(exprs)} FROM features.customer_features "
                      f"WHERE customer_id = {key}").fetchall()[0]
    values = {n: v for (kind, n), v in zip(names, row, strict=True) if kind == "value"}
    truth = {n: v for (kind, n), v in zip(names, row, strict=True) if kind == "rule"}
    for tag in rules.catalog:
        outcome = RuleOutcome(tag["tag_id"], f"{tag['level1']} / {tag['level2']} / {tag['level3']}",
                              tag["rule"], bool(truth[tag["tag_id"]]), tag["tag_id"] in carried,
                              {r: values[r] for r in _reads(tag["rule"])})
        if outcome.carried:
            result.carried.append(outcome)
        elif tag["exclusive"]:
            result.missed.append(outcome)
    return result


def render(e: Explanation) -> str:
    if e.customer_id is None:
        return f"{e.asked_id}: no such customer id (not in identity.id_lookup)"
    head = e.customer_id if e.customer_id == e.asked_id else \
        f"{e.asked_id} → {e.customer_id} (merged)"
    lines = [head] + [f"  {k}: {v}" for k, v in e.summary.items()]
    lines.append(f"\ntags carried ({len(e.carried)}):")
    for o in e.carried:
        lines += [f"  ✓ {o.path}  [{o.tag_id}]", f"      rule: {o.rule}",
                  f"      values: {_fmt(o.values)}"]
    lines.append("\nexclusive groups: the other tags")
    for o in e.missed:
        why = "true, but an earlier tag of the group won" if o.matched else "false"
        lines += [f"  ✗ {o.path}  [{o.tag_id}] — {why}", f"      rule: {o.rule}",
                  f"      values: {_fmt(o.values)}"]
    return "\n".join(lines)


def _fmt(values: dict[str, object]) -> str:
    return ", ".join(f"{k} = {v}" for k, v in values.items()) or "(none)"
