"""Tag rules: validated before a run with errors naming file and tag; evaluated in one pass."""

from pathlib import Path

import pytest

from transforms.features import FEATURES
from transforms.tags import TagRuleError, evaluate_tags, load_rules, validate_rules

REPO_RULES = Path(__file__).resolve().parent.parent / "tag_rules"


def rules_dir(tmp_path: Path, text: str) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "test.yaml").write_text(text, encoding="utf-8")
    return tmp_path


GOOD = """
category: 客户价值
groups:
  - name: 价值分层
    exclusive: true
    tags:
      - {id: vip, name: VIP客户, when: "spend_365d >= pct(spend_365d, 0.5) AND spend_365d > 0"}
      - {id: buyer, name: 普通客户, when: "orders_365d >= 1"}
  - name: 频次
    tags:
      - {id: frequent, name: 高频, when: "orders_365d >= 3"}
"""


def test_repo_rules_are_valid():
    validate_rules(load_rules(REPO_RULES))


@pytest.mark.parametrize("when, problem", [
    ("spend_356d > 0", "spend_356d"),  # unknown column, named
    ("orders_365d >= AND 1", "syntax error"),
])
def test_invalid_rule_names_file_tag_and_problem(tmp_path, when, problem):
    rules = load_rules(rules_dir(tmp_path, GOOD.replace("orders_365d >= 3", when)))
    with pytest.raises(TagRuleError) as err:
        validate_rules(rules)
    assert "test.yaml: tag frequent (高频)" in str(err.value)
    assert problem in str(err.value)


def test_duplicate_id_and_empty_group(tmp_path):
    with pytest.raises(TagRuleError, match="tag vip: duplicate id"):
        load_rules(rules_dir(tmp_path / "a", GOOD.replace("id: frequent", "id: vip")))
    empty = GOOD.split("  - name: 频次")[0] + "  - name: 频次\n    tags: []\n"
    with pytest.raises(TagRuleError, match="groups → 1 → tags: Value error, group has no tags"):
        load_rules(rules_dir(tmp_path / "b", empty))


def test_exclusive_group_first_match_wins_and_percentile_helper(con, tmp_path):
    cols = ", ".join(f"NULL AS {c}" for c in FEATURES if c not in ("spend_365d", "orders_365d"))
    con.execute("CREATE SCHEMA features")
    con.execute(f"""CREATE TABLE features.customer_features AS
        SELECT * FROM (VALUES ('A', 1000.0, 5), ('B', 10.0, 1), ('C', 0.0, 0), ('D', 500.0, 3))
        t(customer_id, spend_365d, orders_365d), (SELECT {cols})""")
    evaluate_tags(con, load_rules(rules_dir(tmp_path, GOOD)))
    tags = con.execute("SELECT customer_id, tag_id FROM profile.customer_tags ORDER BY 1, 2").fetchall()
    # median spend is 255: A and D are VIP (not also 普通客户: exclusive), B is a buyer, C nothing.
    assert tags == [("A", "frequent"), ("A", "vip"), ("B", "buyer"), ("D", "frequent"), ("D", "vip")]
    # The profile's lists: (level 1, level 2) order, names beside ids; C carries nothing.
    lists = con.execute("SELECT * FROM profile.customer_tag_lists ORDER BY 1").fetchall()
    assert lists == [("A", ["VIP客户", "高频"], ["vip", "frequent"]), ("B", ["普通客户"], ["buyer"]),
                     ("D", ["VIP客户", "高频"], ["vip", "frequent"])]
    coverage = dict(con.execute("SELECT tag_id, coverage FROM profile.tag_catalog").fetchall())
    assert {k: float(v) for k, v in coverage.items()} == {"vip": 0.5, "buyer": 0.25, "frequent": 0.5}

    # Next night: C spends 20, D stops. The median spend falls to 15, so C is VIP at once.
    con.execute("UPDATE features.customer_features SET spend_365d = 20.0, orders_365d = 1 "
                "WHERE customer_id = 'C'")
    con.execute("UPDATE features.customer_features SET spend_365d = 0.0, orders_365d = 0 "
                "WHERE customer_id = 'D'")
    evaluate_tags(con, load_rules(rules_dir(tmp_path / "night2", GOOD)), "2026-11-21", "r2")
    changes = con.execute("SELECT customer_id, tag_id, change FROM profile.tag_changes "
                          "WHERE run_id = 'r2' ORDER BY ALL").fetchall()
    assert changes == [("C", "vip", "gained"), ("D", "frequent", "lost"), ("D", "vip", "lost")]
    # Applied in place (only C's and D's rows change), the result equals a full evaluation.
    lists = "SELECT * FROM profile.customer_tag_lists ORDER BY 1"
    tags = "SELECT * FROM profile.customer_tags ORDER BY ALL"
    in_place = con.execute(lists).fetchall(), con.execute(tags).fetchall()
    assert in_place[0] == [("A", ["VIP客户", "高频"], ["vip", "frequent"]),
                           ("B", ["普通客户"], ["buyer"]), ("C", ["VIP客户"], ["vip"])]
    evaluate_tags(con, load_rules(rules_dir(tmp_path / "night2", GOOD)), "2026-11-21", "r2f",
                  full=True)
    assert in_place == (con.execute(lists).fetchall(), con.execute(tags).fetchall())
    # A rule file that drops 高频 and adds 大额: the catalog change is recorded too.
    new_rules = GOOD.replace("id: frequent, name: 高频, when: \"orders_365d >= 3\"",
                             "id: big, name: 大额, when: \"spend_365d >= 1000\"")
    evaluate_tags(con, load_rules(rules_dir(tmp_path / "night3", new_rules)), "2026-11-22", "r3")
    assert con.execute("SELECT tag_id, change FROM profile.tag_changes WHERE run_id = 'r3' "
                       "AND customer_id IS NULL ORDER BY ALL").fetchall() == [
        ("big", "tag defined"), ("frequent", "tag retired")]
