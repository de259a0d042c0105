"""CRM opportunities: stage by stage, with dwell times and drop-out depending on lead source.

A referral (转介绍) moves fast and rarely drops; telemarketing (电话营销) crawls and leaks. The
structure is there for the lead-source conversion mart to find.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from pipelines.sample.draws import gamma2
from pipelines.sample.reference import FUNNEL_STAGES, LEAD_SOURCES, LOST, WON

STALL = 0.12   # chance, per stage, that an undecided deal is left open


@dataclass(slots=True)
class Opportunity:
    stages: list[tuple[str, int]]   # (stage, day entered), in order
    estimate: float                 # yuan, before a quote exists
    quote: float                    # yuan, from 方案报价 on

    @property
    def outcome(self) -> str | None:
        last = self.stages[-1][0]
        return last if last in (WON, LOST) else None

    @property
    def reached(self) -> int:
        """How many of the open stages were entered (1 = 初步接洽 only)."""
        return sum(1 for stage, _ in self.stages if stage not in (WON, LOST))


def run_opportunity(rng: random.Random, start_day: int, lead_source: str, value: float,
                    last_day: int, must_win: bool, may_win: bool) -> Opportunity:
    """Walk the stages from start_day; stop at the window's end (still open), a loss or a win.

    must_win: the person is a buyer, so the path ends in 赢单 (if time allows).
    may_win: False for prospects, who can stall or lose but never buy.
    """
    _, dwell_factor, advance = LEAD_SOURCES[lead_source]
    estimate = round(value * rng.uniform(0.6, 1.6), -2) or 100.0
    opp = Opportunity([], estimate, round(estimate * rng.uniform(0.8, 1.2), -1))
    day = start_day
    for i, (stage, typical_days) in enumerate(FUNNEL_STAGES):
        opp.stages.append((stage, day))
        # Later stages drag for slow sources: the factor bites harder the deeper the deal.
        mean = typical_days * dwell_factor ** (1 + i / 3)
        day += 1 + int(gamma2(rng, mean))
        if day > last_day:
            return opp
        if not must_win:
            r = rng.random()
            if r > advance:
                opp.stages.append((LOST, day))
                return opp
            if r < STALL:   # nobody closes it: the deal sits open at this stage
                return opp
    if must_win or (may_win and rng.random() < advance):
        opp.stages.append((WON, day))
    elif rng.random() < 0.6:
        opp.stages.append((LOST, day))
    return opp
