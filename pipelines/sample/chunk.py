"""Render one chunk of persons into the text of every export: a pure function of
(seed, persons, end_date, years, chunk number), so chunks can be rendered in any process.

Chunk-level randomness (who referred whom, where the single malformed rows go) comes from an
RNG seeded by (seed, chunk number); the one-per-export noise is placed in chunk 0.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

from pipelines.sample import ids
from pipelines.sample.behaviour import Facts, Order, person_facts
from pipelines.sample.clock import DAY, Window
from pipelines.sample.context import RunContext
from pipelines.sample.crm import CrmRenderer
from pipelines.sample.erp import ErpRenderer
from pipelines.sample.persons import Person, sample_person
from pipelines.sample.reference import PRODUCTS
from pipelines.sample.truth import TruthRenderer
from pipelines.sample.wechat import WechatRenderer

CHUNK_SIZE = 1000
MIN_SWITCHBOARD_SHARERS = 3   # the first switchboard is shared by at least this many customers
ORPHAN_ORDER_CHANCE = 0.05    # per chunk (chunk 0 always has one)


@dataclass(frozen=True)
class ChunkJob:
    seed: int
    persons: int
    end_date: date
    years: int
    chunk_no: int


@dataclass
class ChunkOutput:
    texts: dict[str, tuple[str, int]]   # CSV / JSONL file → (text, data rows)
    erp_customers: list[str]            # rendered cells of each row
    erp_order_lines: list[str]
    truth: list[str]


@lru_cache(maxsize=4)
def run_context(seed: int, persons: int, end_date: date, years: int) -> RunContext:
    return RunContext.create(seed, persons, Window(end_date, years))


def render_chunk(job: ChunkJob) -> ChunkOutput:
    ctx = run_context(job.seed, job.persons, job.end_date, job.years)
    window, seed = ctx.window, job.seed
    rng = random.Random(f"chunk:{seed}:{job.chunk_no}")
    first = job.chunk_no * CHUNK_SIZE
    chunk = [sample_person(seed, i, window, len(ctx.reps), len(ctx.switchboards))
             for i in range(first, min(job.persons, first + CHUNK_SIZE))]
    pair_referrals(chunk, rng, seed)
    if job.chunk_no == 0:
        force_record_noise(chunk, rng, window)
    facts = [person_facts(p, window) for p in chunk]

    truth = TruthRenderer()
    crm = CrmRenderer(ctx, job.chunk_no, truth)
    erp = ErpRenderer(ctx, job.chunk_no, truth)
    wechat = WechatRenderer(ctx, job.chunk_no, truth)
    if job.chunk_no == 0:
        place_row_noise(chunk, facts, rng, crm, erp, wechat)
    for p, f in zip(chunk, facts, strict=True):
        crm.write(p, f)
        erp.write(p, f)
        wechat.write(p, f)
    if job.chunk_no == 0 or rng.random() < ORPHAN_ORDER_CHANCE:
        erp.write_orphan(orphan_order(rng, window))
    return ChunkOutput({**crm.output(), **wechat.output()}, erp.customers, erp.order_lines,
                       truth.lines)


def pair_referrals(chunk: list[Person], rng: random.Random, seed: int) -> None:
    """KOLs invite followers: the invitee follows within hours of the referral event."""
    kols = [p for p in chunk if p.is_kol]
    if not kols:
        return
    for p in chunk:
        if not p.referral_candidate:
            continue
        eligible = [k for k in kols if k.subscribe_t < p.subscribe_t - DAY
                    and (k.unsubscribe_t is None or k.unsubscribe_t > p.subscribe_t)]
        if not eligible:
            continue
        kol = eligible[int(rng.random() * len(eligible))]
        kol.referrals.append((p.subscribe_t - rng.randrange(120, 6 * 3600),
                              ids.openid(seed, p.index)))
        p.referred = True


def force_record_noise(chunk: list[Person], rng: random.Random, window: Window) -> None:
    """Make sure even a small sample has a duplicated CRM person and a shared switchboard."""
    in_crm = [p for p in chunk if p.in_crm]
    if not in_crm:
        return
    if not any(p.crm_duplicate for p in in_crm):
        p = in_crm[int(rng.random() * len(in_crm))]
        p.crm_duplicate = True
        day = min(window.days - 1, p.crm_created // DAY + rng.randrange(20, 400))
        p.crm_dup_created = max(p.crm_created + 3600,
                                day * DAY + 9 * 3600 + rng.randrange(9 * 3600))
    sharing = sum(1 for p in in_crm if p.crm_switchboard == 0)
    candidates = [p for p in in_crm if p.crm_switchboard is None]
    missing = max(0, min(len(candidates), MIN_SWITCHBOARD_SHARERS - sharing))
    for p in rng.sample(candidates, missing):
        p.crm_switchboard = 0


def place_row_noise(chunk: list[Person], facts: list[Facts], rng: random.Random,
                    crm: CrmRenderer, erp: ErpRenderer, wechat: WechatRenderer) -> None:
    """Pick the one malformed row of each kind (positions within the chunk)."""
    crm_rows = sum(1 + p.crm_duplicate for p in chunk if p.in_crm)
    if crm_rows:
        crm.malformed_row = rng.randrange(crm_rows)
    erp_lines = sum(len(o.lines) for p, f in zip(chunk, facts, strict=True) if p.in_erp
                    for o in f.orders if o.channel == "erp")
    if erp_lines >= 2:
        erp.bad_date_line, erp.bad_amount_line = rng.sample(range(erp_lines), 2)
    event_lines = sum(len(f.wechat) + sum(len(o.lines) for o in f.orders if o.channel == "mall")
                      for p, f in zip(chunk, facts, strict=True) if p.in_wechat)
    if event_lines:
        wechat.bad_event_line = rng.randrange(event_lines)


def orphan_order(rng: random.Random, window: Window) -> Order:
    category = rng.randrange(len(PRODUCTS))
    product = PRODUCTS[category][rng.randrange(len(PRODUCTS[category]))]
    t = rng.randrange(window.days) * DAY + rng.randrange(9 * 3600, 21 * 3600)
    return Order(t, "erp", [(product, 1 + (rng.random() < 0.2), product.price)], False)
