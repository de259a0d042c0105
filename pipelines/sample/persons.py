"""The latent person: who they are, which systems know them, and the skeleton of their story.

Everything here comes from the person's own RNG, seeded from (seed, index), so person i is
the same whatever the chunking or the number of persons after it. Detailed facts (orders,
reads, follow-ups) are drawn later in behaviour.py from the same RNG.
"""

from __future__ import annotations

import math
import random
from datetime import timedelta
from itertools import accumulate

from pipelines.sample import ids
from pipelines.sample.clock import DAY, Window
from pipelines.sample.draws import between, pick
from pipelines.sample.funnel import run_opportunity
from pipelines.sample.reference import (
    CITIES,
    CITY_CUM,
    COMMUNITIES,
    CUTE_NICKNAMES,
    GIVEN_FEMALE,
    GIVEN_MALE,
    INDUSTRIES,
    INDUSTRY_CUM,
    LEAD_SOURCE_CUM,
    LEAD_SOURCE_NAMES,
    LEAD_SOURCES,
    ROADS,
    SURNAME_CUM,
    SURNAMES,
    TASTE_PRIOR,
    WON,
    City,
)

# Value tiers: share of persons, days between orders (range of the person's mean), typical
# opportunity value in yuan. Prospects never buy.
TIERS = {
    "vip": (0.10, (10, 20), 30_000),
    "regular": (0.35, (30, 60), 8_000),
    "occasional": (0.30, (90, 180), 3_000),
    "prospect": (0.25, None, 5_000),
}
_TIER_NAMES = list(TIERS)
_BUYER_TIER_CUM = list(accumulate(share for share, rhythm, _ in TIERS.values() if rhythm))

# Time-of-day habits: (start hour, end hour); late night runs past midnight.
HOUR_HABITS = {"morning": (7.0, 10.0), "lunch": (11.5, 13.5), "evening": (20.0, 22.0),
               "late_night": (22.5, 25.5)}
_HABIT_NAMES = list(HOUR_HABITS)
_HABIT_CUM = [18, 40, 82, 100]

P_CRM, P_WECHAT, P_WECHAT_SOCIAL_LEAD = 0.60, 0.50, 0.78
P_ERP_BUYER, P_ERP_PROSPECT = 0.58, 0.12
P_CRM_DUPLICATE, P_CRM_SWITCHBOARD = 0.03, 0.007
P_ERP_CRM_REF = 0.5
P_UNIONID, P_SECOND_OPENID = 0.70, 0.05 / 0.70
P_KOL, P_REFERRED = 0.012, 0.06
P_CHURN = 0.20


class Person:
    __slots__ = (
        "index", "pid", "rng", "gender", "birth", "surname", "given", "surname_py", "given_py",
        "mobile", "email", "city", "street", "industry", "lead_source", "tier", "rhythm",
        "value", "taste_cum", "favourites", "habit", "weekend_habit", "rep", "dup_rep",
        "in_crm", "in_erp", "in_wechat", "crm_duplicate", "crm_switchboard", "erp_crm_ref",
        "crm_created", "crm_dup_created", "opportunities", "first_purchase", "churn_day",
        "erp_share", "reads_per_month", "share_rate", "is_kol", "has_unionid",
        "second_openid", "binds_phone", "nickname_style", "subscribe_t", "unsubscribe_t",
        "referral_candidate", "referred", "referrals",
    )

    @property
    def name(self) -> str:
        return self.surname + self.given

    @property
    def is_buyer(self) -> bool:
        return self.first_purchase is not None

    def crm_stage(self) -> str:
        """客户阶段, consistent with the opportunities and purchases."""
        if self.first_purchase is not None:
            return "流失客户" if self.churn_day is not None else "成交客户"
        if any(o.outcome is None and o.reached >= 2 for o in self.opportunities):
            return "意向客户"
        return "潜在客户" if self.opportunities else "线索"


def _tastes(rng: random.Random, gender: str, age: int) -> tuple[list[float], list[int]]:
    """A Dirichlet-like preference over the 8 categories, concentrated on 1-2 favourites."""
    prior = list(TASTE_PRIOR[gender])
    prior[2] *= 3.0 if 25 <= age <= 40 else 0.3          # 母婴: young parents
    if age >= 50:
        for c in (4, 5, 7):                                # 食品 家居 图书
            prior[c] *= 1.6
    elif age < 35:
        prior[3] *= 1.3                                    # 数码
        prior[6] *= 1.3                                    # 运动
    prior_cum = list(accumulate(prior))
    favourites = [pick(prior_cum, rng.random())]
    if rng.random() < 0.4:
        second = pick(prior_cum, rng.random())
        if second != favourites[0]:
            favourites.append(second)
    # Favourites get most of the mass; the rest a spiky remainder (cheap stand-in for the
    # Gamma draws of a Dirichlet with small concentration).
    weights = [2.0 + 4.0 * rng.random() if c in favourites else rng.random() ** 4 + 1e-6
               for c in range(len(prior))]
    return list(accumulate(weights)), favourites


def _email(rng: random.Random, seed: int, index: int, surname_py: str, given_py: str,
           birth_year: int) -> str:
    r = rng.random()
    if r < 0.40:
        return f"{ids.qq_number(seed, index)}@qq.com"
    domain = ("163.com", "126.com", "sina.com", "gmail.com", "outlook.com", "foxmail.com",
              "139.com")[int(rng.random() * 7)]
    if r < 0.75:
        return f"{surname_py}{given_py}{birth_year % 100:02d}{between(rng, 0, 100)}@{domain}"
    if r < 0.90:
        return f"{given_py}.{surname_py}{between(rng, 10, 1000)}@{domain}"
    return f"{surname_py[0]}{given_py}_{between(rng, 1000, 10000)}@{domain}"


def _street(rng: random.Random, city: City) -> str:
    district = city.districts[int(rng.random() * len(city.districts))]
    road = ROADS[int(rng.random() * len(ROADS))]
    number = between(rng, 1, 999)
    if rng.random() < 0.6:
        community = COMMUNITIES[int(rng.random() * len(COMMUNITIES))]
        return (f"{district}{road}{number}号{community}{between(rng, 1, 30)}栋"
                f"{between(rng, 1, 6)}单元{between(rng, 1, 33)}{between(rng, 1, 5):02d}")
    return f"{district}{road}{number}号{between(rng, 1, 25)}{between(rng, 1, 9):02d}室"


def time_of_day(rng: random.Random, habit: str) -> int:
    """Seconds after midnight (beyond 86,400 for late-night habits: the next day)."""
    if rng.random() < 0.75:
        start, end = HOUR_HABITS[habit]
    else:
        start, end = 9.0, 22.0
    return int((start + rng.random() * (end - start)) * 3600)


def moment(rng: random.Random, person: Person, day: int, window: Window) -> int:
    """A timestamp on (about) `day` following the person's weekday and time-of-day habits."""
    weekday = window.weekday(day)
    if person.weekend_habit == "weekend" and weekday < 5 and rng.random() < 0.7:
        day += 5 - weekday + (rng.random() < 0.5)          # to Saturday or Sunday
    elif person.weekend_habit == "weekday" and weekday >= 5 and rng.random() < 0.8:
        day += 7 - weekday                                  # to Monday
    return min(day * DAY + time_of_day(rng, person.habit), window.last_t)


def sample_person(seed: int, index: int, window: Window, n_reps: int,
                  n_switchboards: int) -> Person:
    rng = random.Random(seed * 2**32 + index)
    p = Person()
    p.index, p.pid, p.rng = index, ids.person_id(index), rng
    p.gender = "F" if rng.random() < 0.55 else "M"
    age = int(rng.triangular(18, 71, 30))
    p.birth = window.end - timedelta(days=age * 365 + between(rng, 0, 365))
    p.surname, p.surname_py = SURNAMES[pick(SURNAME_CUM, rng.random())][:2]
    pool = GIVEN_FEMALE if (p.gender == "F") == (rng.random() < 0.9) else GIVEN_MALE
    first = pool[int(rng.random() * len(pool))]
    if rng.random() < 0.75:
        second = pool[int(rng.random() * len(pool))]
        p.given, p.given_py = first[0] + second[0], first[1] + second[1]
    else:
        p.given, p.given_py = first
    p.mobile = ids.mobile(seed, index, rng.random())
    p.email = (_email(rng, seed, index, p.surname_py, p.given_py, p.birth.year)
               if rng.random() < 0.6 else None)
    p.city = CITIES[pick(CITY_CUM, rng.random())]
    p.street = _street(rng, p.city)
    p.industry = INDUSTRIES[pick(INDUSTRY_CUM, rng.random())]
    p.lead_source = LEAD_SOURCE_NAMES[pick(LEAD_SOURCE_CUM, rng.random())]
    # Good sources bring buyers: a referral rarely stays a prospect, a cold call often does.
    prospect_share = TIERS["prospect"][0] + 0.8 * (0.62 - LEAD_SOURCES[p.lead_source][2])
    if rng.random() < prospect_share:
        p.tier = "prospect"
    else:
        p.tier = _TIER_NAMES[pick(_BUYER_TIER_CUM, rng.random())]
    rhythm = TIERS[p.tier][1]
    p.rhythm = rng.uniform(*rhythm) if rhythm else None
    p.value = TIERS[p.tier][2] * rng.lognormvariate(0.0, 0.5)
    p.taste_cum, p.favourites = _tastes(rng, p.gender, age)
    p.habit = _HABIT_NAMES[pick(_HABIT_CUM, rng.random())]
    r = rng.random()
    p.weekend_habit = "weekend" if r < 0.35 else "weekday" if r < 0.60 else "any"
    p.rep = int(rng.random() * n_reps)
    p.dup_rep = (p.rep + 1 + int(rng.random() * max(1, n_reps - 1))) % n_reps

    # Which systems know the person.
    would_buy = p.rhythm is not None
    p.in_crm = rng.random() < P_CRM
    social = p.lead_source in ("微信公众号", "抖音")
    p.in_wechat = rng.random() < (P_WECHAT_SOCIAL_LEAD if social else P_WECHAT)
    p.in_erp = rng.random() < (P_ERP_BUYER if would_buy else P_ERP_PROSPECT)
    if not (p.in_crm or p.in_erp or p.in_wechat):
        if social:
            p.in_wechat = True
        elif would_buy and rng.random() < 0.5:
            p.in_erp = True
        else:
            p.in_crm = True
    p.crm_duplicate = p.in_crm and rng.random() < P_CRM_DUPLICATE
    p.crm_switchboard = (int(rng.random() * n_switchboards)
                         if p.in_crm and rng.random() < P_CRM_SWITCHBOARD else None)
    # The ERP record names the CRM record it was created from (rarely the duplicate's).
    p.erp_crm_ref = None
    if p.in_erp and p.in_crm and rng.random() < P_ERP_CRM_REF:
        p.erp_crm_ref = ids.crm_code(seed, index, p.crm_duplicate and rng.random() < 0.2)

    _skeleton(p, rng, window, would_buy)
    _wechat_profile(p, rng, window)
    return p


def _skeleton(p: Person, rng: random.Random, window: Window, would_buy: bool) -> None:
    """CRM creation, opportunities, first purchase and churn, all inside the window."""
    last = window.days - 1
    p.opportunities = []
    p.first_purchase = p.churn_day = None
    p.crm_created = p.crm_dup_created = None
    if p.in_crm:
        # Buyers entered the CRM early enough to close; the business grows, so later is likelier.
        span = last - 150 if would_buy else last
        created = int(span * math.sqrt(rng.random()))
        p.crm_created = created * DAY + 9 * 3600 + between(rng, 0, 9 * 3600)
        n_opps = 1 if would_buy else (0 if rng.random() < 0.35 else 1 + (rng.random() < 0.2))
        day = min(last, created + between(rng, 0, 10))
        for k in range(n_opps):
            opp = run_opportunity(rng, day, p.lead_source, p.value, last,
                                  must_win=would_buy and k == 0, may_win=False)
            p.opportunities.append(opp)
            day = opp.stages[-1][1] + between(rng, 20, 120)
            if day > last:
                break
        won = next((d for o in p.opportunities for s, d in o.stages if s == WON), None)
        if won is not None:
            p.first_purchase = won + between(rng, 0, 10)
            if p.tier == "vip" and rng.random() < 0.5:          # a bigger follow-on deal
                start = p.first_purchase + between(rng, 60, 300)
                if start < last:
                    p.opportunities.append(run_opportunity(
                        rng, start, p.lead_source, p.value * 2, last, False, True))
        if p.crm_duplicate:
            dup_day = min(last, created + between(rng, 20, 400))
            p.crm_dup_created = dup_day * DAY + 9 * 3600 + between(rng, 0, 9 * 3600)
    elif would_buy:
        # Customers from before the window buy from its first weeks; new ones arrive over time.
        if rng.random() < 0.35:
            p.first_purchase = int(rng.random() * p.rhythm)
        else:
            p.first_purchase = int((last - 20) * math.sqrt(rng.random()))
    if p.first_purchase is not None and p.first_purchase > last:
        p.first_purchase = None
    if p.first_purchase is not None and rng.random() < P_CHURN:
        earliest, latest = p.first_purchase + 150, last - 30
        if earliest < latest:
            p.churn_day = between(rng, earliest, latest)


def _wechat_profile(p: Person, rng: random.Random, window: Window) -> None:
    p.is_kol = p.referral_candidate = p.referred = False
    p.has_unionid = p.second_openid = p.binds_phone = False
    p.reads_per_month = p.share_rate = 0.0
    p.nickname_style = None
    p.referrals = []
    p.subscribe_t = p.unsubscribe_t = None
    p.erp_share = 1.0 if p.in_erp else 0.0
    if not p.in_wechat:
        return
    if p.in_erp:
        p.erp_share = 0.75 + 0.23 * rng.random()   # the mall is the smaller channel
    p.is_kol = rng.random() < P_KOL
    if p.is_kol:
        p.reads_per_month = rng.uniform(5, 12)
        p.share_rate = rng.uniform(0.2, 0.4)
    else:
        p.reads_per_month = rng.lognormvariate(math.log(0.10), 1.1)
        p.share_rate = min(0.3, rng.lognormvariate(math.log(0.02), 0.8))
    p.has_unionid = rng.random() < P_UNIONID
    p.second_openid = p.has_unionid and rng.random() < P_SECOND_OPENID
    p.binds_phone = rng.random() < (0.45 if p.is_buyer and p.erp_share < 1 else 0.22)
    r = rng.random()
    p.nickname_style = ("han" if r < 0.18 else "pinyin" if r < 0.28 else
                        "cute" if r < 0.85 else "other")
    last = window.days - 1
    if p.is_buyer and rng.random() < 0.6:
        day = max(0, p.first_purchase - between(rng, 0, 60))
    else:
        day = int(last * math.sqrt(rng.random()))
    p.subscribe_t = min(window.last_t, day * DAY + time_of_day(rng, p.habit))
    p.referral_candidate = not p.is_kol and rng.random() < P_REFERRED
    if p.churn_day is not None and rng.random() < 0.45:
        p.unsubscribe_t = (p.churn_day + between(rng, 0, 90)) * DAY + between(rng, 0, DAY)
    elif rng.random() < 0.06:
        p.unsubscribe_t = p.subscribe_t + int(rng.random() * (window.last_t - p.subscribe_t))
    if p.unsubscribe_t is not None and not p.subscribe_t < p.unsubscribe_t <= window.last_t:
        p.unsubscribe_t = None


def nickname(p: Person, rng: random.Random) -> str:
    if p.nickname_style == "han":
        return p.name
    if p.nickname_style == "pinyin":
        return (p.given_py.capitalize() if rng.random() < 0.5
                else f"{p.surname_py.capitalize()} {p.given_py.capitalize()}")
    if p.nickname_style == "cute":
        return CUTE_NICKNAMES[int(rng.random() * len(CUTE_NICKNAMES))]
    others = ("🙂", "A" + p.given_py.capitalize(), f"{p.surname_py}{between(rng, 0, 100)}", "。")
    return others[int(rng.random() * len(others))]


def rep_names(seed: int, count: int) -> list[str]:
    """Sales reps: distinct Han names, from their own RNG so customers are unaffected."""
    rng = random.Random(f"reps:{seed}")
    names: list[str] = []
    seen = set()
    while len(names) < count:
        surname = SURNAMES[pick(SURNAME_CUM, rng.random())][0]
        pool = GIVEN_FEMALE if rng.random() < 0.5 else GIVEN_MALE
        given = "".join(pool[int(rng.random() * len(pool))][0]
                        for _ in range(1 + (rng.random() < 0.7)))
        if surname + given not in seen:
            seen.add(surname + given)
            names.append(surname + given)
    return names
