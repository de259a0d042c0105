"""Run-wide settings every writer needs: seed, window, sales reps, company switchboards."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from pipelines.sample.clock import Window
from pipelines.sample.persons import rep_names
from pipelines.sample.reference import CITIES


@dataclass(frozen=True)
class RunContext:
    seed: int
    persons: int
    window: Window
    reps: list[str]
    switchboards: list[str]

    @classmethod
    def create(cls, seed: int, persons: int, window: Window) -> RunContext:
        # ~30 reps for 2,000 customers; a bigger base has more reps, but not proportionally.
        n_reps = max(5, round(30 * math.sqrt(persons / 2000)))
        return cls(seed, persons, window, rep_names(seed, n_reps),
                   switchboards(seed, max(2, persons // 800)))


def switchboards(seed: int, count: int) -> list[str]:
    """Company switchboard / hotline numbers that several unrelated customers give as theirs."""
    rng = random.Random(f"switchboards:{seed}")
    numbers: list[str] = []
    while len(numbers) < count:
        r = rng.random()
        if r < 0.3:
            number = f"400-{rng.randrange(600, 900)}-{rng.choice(['8888', '6666', '0000', '1234'])}"
        else:
            area = CITIES[int(rng.random() * len(CITIES))].area_code
            digits = 8 if len(area) == 3 else 7 + (rng.random() < 0.5)
            head = f"{rng.randrange(5, 9)}{rng.randrange(10 ** (digits - 5)):0{digits - 5}d}"
            number = f"{area}-{head}{rng.choice(['8888', '6666', '0000'])}"
        if number not in numbers:
            numbers.append(number)
    return numbers
