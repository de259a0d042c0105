"""What a person does over the window: orders (and returns), WeChat activity, CRM follow-ups.

Drawn from the person's own RNG after the skeleton (persons.py) and the chunk-level pairing
of referrals, so the structure is real: rhythm by tier, baskets by taste, time-of-day and
weekday habits, churners slowing down and reading less in the months before they leave.
"""

from __future__ import annotations

import random
from typing import NamedTuple

from pipelines.sample.clock import DAY, Window
from pipelines.sample.draws import between, gamma2, pick, poisson
from pipelines.sample.persons import Person, moment, time_of_day
from pipelines.sample.reference import (
    CATEGORIES,
    FOLLOWUP_METHOD_CUM,
    FOLLOWUP_METHODS,
    MENU_KEYS,
    PRODUCTS,
    RETURN_RATE,
    Product,
)


class Order(NamedTuple):
    t: int
    channel: str                              # "erp" (store / ERP) or "mall" (WeChat mall)
    lines: list[tuple[Product, int, float]]   # product, quantity (negative: returned), unit price
    is_return: bool


class Facts(NamedTuple):
    orders: list[Order]
    wechat: list[tuple]          # (t, kind, ...) sorted by t; mall orders are added by the writer
    followups: list[tuple[int, str, str, bool]]   # (t, method, content, by another rep)
    dup_followups: list[tuple[int, str, str, bool]]


def slowdown(p: Person, day: int, warning_days: int) -> float:
    """1 normally; rising towards 5 over the warning months before a churner leaves."""
    if p.churn_day is None or day < p.churn_day - warning_days:
        return 1.0
    return 1.0 + 4.0 * min(1.0, (day - p.churn_day + warning_days) / warning_days)


def _basket(rng: random.Random, p: Person, promo: bool) -> list[tuple[Product, int, float]]:
    r = rng.random()
    if p.tier == "vip":
        n = 1 if r < 0.40 else 2 if r < 0.70 else 3 if r < 0.88 else 4 + (r > 0.96)
    else:
        n = 1 if r < 0.52 else 2 if r < 0.80 else 3 if r < 0.93 else 4
    lines = []
    for _ in range(n):
        category = pick(p.taste_cum, rng.random())
        products = PRODUCTS[category]
        # People re-buy what they know: a personal favourite product per category.
        k = (p.index * 7 + category) % len(products) if rng.random() < 0.35 else \
            int(rng.random() * len(products))
        product = products[k]
        q = rng.random()
        if category == 4:    # 食品 is bought by the box
            qty = 1 if q < 0.5 else 2 if q < 0.8 else 3 if q < 0.93 else between(rng, 4, 7)
        else:
            qty = 1 if q < 0.78 else 2 if q < 0.94 else 3 if q < 0.98 else 4
        d = rng.random()
        discount = (0.8 if d < 0.6 else 0.7) if promo else \
            (1.0 if d < 0.7 else 0.9 if d < 0.85 else 0.8 if d < 0.95 else 0.5)
        lines.append((product, qty, round(product.price * discount, 2)))
    return lines


def orders(p: Person, window: Window) -> list[Order]:
    if p.first_purchase is None or not (p.in_erp or p.in_wechat):
        return []
    rng = p.rng
    stop = p.churn_day if p.churn_day is not None else window.days - 1
    warning = between(rng, 90, 181)
    days = []
    day = p.first_purchase
    while day <= stop:
        days.append(day)
        day += 1 + int(gamma2(rng, p.rhythm * slowdown(p, day, warning)))
    festival_chance = 0.5 if p.tier == "vip" else 0.25
    # Festivals pull extra orders, except from churners already drifting away.
    last_festival = stop - warning if p.churn_day is not None else stop
    promo = {d for d in window.promo_days
             if p.first_purchase <= d <= last_festival and rng.random() < festival_chance}
    days.extend(promo)
    days.sort()

    out: list[Order] = []
    returns: list[Order] = []
    for day in days:
        is_promo = day in promo   # on the festival day itself, whatever the weekday habit
        t = min(day * DAY + time_of_day(rng, p.habit), window.last_t) if is_promo else \
            moment(rng, p, day, window)
        r = rng.random()
        if not p.in_erp and r < 0.62:
            continue   # bought in a store without a member archive: recorded nowhere
        channel = "erp" if r < p.erp_share else "mall"
        if channel == "mall" and t < p.subscribe_t:        # not following the mall yet
            if not p.in_erp:
                continue
            channel = "erp"
        lines = _basket(rng, p, is_promo)
        out.append(Order(t, channel, lines, False))
        if channel != "erp":
            continue
        for product, qty, price in lines:
            if rng.random() < RETURN_RATE[product.category]:
                back = t + between(rng, 2, 21) * DAY + between(rng, -3 * 3600, 3 * 3600)
                if back <= window.last_t:
                    qty_back = qty if rng.random() < 0.7 else 1
                    returns.append(Order(back, "erp", [(product, -qty_back, price)], True))
    if returns:
        out.extend(returns)
        out.sort(key=lambda o: o.t)
    return out


def wechat_activity(p: Person, window: Window) -> list[tuple]:
    """Reads, shares, menu clicks and referrals, sorted by time.

    Rows: (t, "article_read" | "share", article_id, category) / (t, "menu_click", key) /
    (t, "referral", invited_openid).
    """
    if not p.in_wechat:
        return []
    rng = p.rng
    start = p.subscribe_t
    end = p.unsubscribe_t if p.unsubscribe_t is not None else window.last_t
    span_days = (end - start) / DAY
    if span_days <= 0:
        return []
    warning = 120
    events: list[tuple] = []
    for _ in range(poisson(rng, p.reads_per_month * span_days / 30.0)):
        day = start // DAY + int(rng.random() * span_days)
        # Churners read less as they drift away, and hardly at all once gone.
        if p.churn_day is not None:
            keep = 0.15 if day > p.churn_day else 1.0 / slowdown(p, day, warning)
            if rng.random() > keep:
                continue
        t = day * DAY + time_of_day(rng, p.habit)
        if not start <= t <= end:
            continue
        category = pick(p.taste_cum, rng.random()) if rng.random() < 0.75 else \
            int(rng.random() * len(CATEGORIES))
        published = max(0, day - int(rng.expovariate(0.7)))
        article_id = f"A{window.compact[published]}{category + 1:02d}"
        events.append((t, "article_read", article_id, CATEGORIES[category]))
        if rng.random() < p.share_rate:
            shared = t + between(rng, 5, 900)
            if shared <= end:
                events.append((shared, "share", article_id, CATEGORIES[category]))
    for _ in range(poisson(rng, 0.04 * span_days / 30.0)):
        t = start + int(rng.random() * (end - start))
        events.append((t, "menu_click", MENU_KEYS[int(rng.random() * len(MENU_KEYS))]))
    for t, invited in p.referrals:
        events.append((t, "referral", invited))
    events.sort(key=lambda e: e[0])
    return events


_EARLY = [
    "首次电话沟通，客户对{a}类产品感兴趣",
    "客户咨询{a}新品价格，计划下周下单",
    "发送{a}产品资料及报价，客户表示考虑中",
    "添加客户微信，推送{a}优惠活动",
    "客户比较了几家的{a}产品，希望再优惠一些",
    "客户暂无需求，约三个月后再联系",
]
_AFTER = [
    "回访{a}订单使用情况，客户满意",
    "客户反馈{a}商品质量不错，有复购意向",
    "邀请客户参加{a}会员日活动",
    "推荐{a}和{b}组合套餐，客户有兴趣",
    "客户咨询{a}售后问题，已协调解决",
]
_WARNING = [
    "客户反映{a}价格偏高，近期购买减少",
    "客户表示已在其他平台购买{a}",
    "多次联系未接通，客户活跃度下降",
]


def _workday_moment(rng: random.Random, window: Window, day: int) -> int:
    weekday = window.weekday(day)
    if weekday >= 5 and rng.random() < 0.8:
        day = day - (weekday - 4) if day - (weekday - 4) >= 0 else day + (7 - weekday)
    return min(window.last_t, day * DAY + 9 * 3600 + between(rng, 0, int(9.5 * 3600)))


def _followup(rng: random.Random, window: Window, day: int, templates: list[str],
              a: str, b: str) -> tuple[int, str, str, bool]:
    text = templates[int(rng.random() * len(templates))].format(a=a, b=b)
    method = FOLLOWUP_METHODS[pick(FOLLOWUP_METHOD_CUM, rng.random())]
    return _workday_moment(rng, window, day), method, text, rng.random() < 0.1


def followups(p: Person, window: Window) -> tuple[list, list]:
    """CRM follow-ups for the main record and (a few) for the duplicate record."""
    if not p.in_crm:
        return [], []
    rng = p.rng
    last = window.days - 1
    a = CATEGORIES[p.favourites[0]]
    b = CATEGORIES[p.favourites[-1]] if len(p.favourites) > 1 else CATEGORIES[
        (p.favourites[0] + 1) % len(CATEGORIES)]
    created = p.crm_created // DAY
    rows = []
    funnel_end = p.first_purchase if p.first_purchase is not None else last
    stage = p.crm_stage()
    n_early = {"线索": 1, "潜在客户": 2, "意向客户": 4}.get(stage, 2)
    for _ in range(between(rng, 0, n_early + 1) + (stage != "线索")):
        day = created + int(rng.random() * max(1, funnel_end - created))
        rows.append(_followup(rng, window, min(day, last), _EARLY, a, b))
    if p.first_purchase is not None:
        stop = p.churn_day if p.churn_day is not None else last
        n_after = between(rng, 1, 6 if p.tier == "vip" else 3)
        for _ in range(n_after):
            day = p.first_purchase + int(rng.random() * max(1, stop - p.first_purchase))
            rows.append(_followup(rng, window, min(day, last), _AFTER, a, b))
        if p.churn_day is not None:
            for _ in range(between(rng, 1, 3)):
                day = p.churn_day - between(rng, 0, 120)
                rows.append(_followup(rng, window, max(created, day), _WARNING, a, b))
    # Nobody is followed up before their record exists.
    floor = p.crm_created + 300
    rows = sorted((max(t, floor), *rest) for t, *rest in rows)
    dup_rows = []
    if p.crm_dup_created is not None and rng.random() < 0.6:
        day = p.crm_dup_created // DAY + between(rng, 0, 30)
        t, *rest = _followup(rng, window, min(day, last), _EARLY, a, b)
        dup_rows.append((max(t, p.crm_dup_created + 300), *rest))
    return rows, dup_rows


def person_facts(p: Person, window: Window) -> Facts:
    """All of a person's facts; the RNG draw order is fixed so output is reproducible."""
    person_orders = orders(p, window)
    activity = wechat_activity(p, window)
    main, dup = followups(p, window)
    return Facts(person_orders, activity, main, dup)
