"""ground_truth.csv: which person each generated customer record belongs to.

One row per customer record (CRM customer row, ERP customer, WeChat openid), with the identity
evidence the record carries in a clean, matchable form. A scorer labels a true pair by the
evidence both records carry (e.g. phone|name), or by nothing at all: pairs no matcher can find.
"""

from __future__ import annotations

HEADER = ["source", "source_key", "person_id", "evidence"]
EVIDENCE = ("phone", "email", "unionid", "crm_ref", "name", "birth_date", "city", "address")


class TruthRenderer:
    """Collects one chunk's ground-truth lines."""

    def __init__(self):
        self.lines: list[str] = []

    def add(self, source: str, key: str, person_id: str, evidence: list[str]) -> None:
        """evidence: names from EVIDENCE, in that order (no commas, so no quoting needed)."""
        self.lines.append(f"{source},{key},{person_id},{'|'.join(evidence)}\n")
