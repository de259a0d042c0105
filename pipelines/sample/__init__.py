"""Deterministic, streaming generator of realistic CRM / ERP / WeChat exports.

    from pipelines.sample import generate
    generate(Path("data/sample"), persons=2000, seed=42)

or `python -m pipelines.sample --persons 2000 --seed 42 --out data/sample`. Same seed and
person count give byte-identical files; ground_truth.csv maps every customer record to its
person for scoring identity resolution.
"""

from pipelines.sample.generator import generate

__all__ = ["generate"]
