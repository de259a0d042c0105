"""Formatting noise: the many ways one value is typed into, or exported from, real systems.

Every function takes the caller's RNG so that a person's noise is as reproducible as the
person. Probabilities are rough shares seen in real CRM / ERP exports.
"""

from __future__ import annotations

import random
from datetime import date

from pipelines.sample.draws import between

NULLISH = ["无", "-", "N/A", "null", "NULL"]
_FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


def nullish(rng: random.Random) -> str:
    return NULLISH[int(rng.random() * len(NULLISH))]


def mobile_text(number: str, rng: random.Random) -> str:
    """13800138000 in one of the forms people and systems write it."""
    r = rng.random()
    if r < 0.52:
        return number
    a, b, c = number[:3], number[3:7], number[7:]
    if r < 0.62:
        return f"+86 {a} {b} {c}"
    if r < 0.68:
        return f"0086 {number}"
    if r < 0.80:
        return f"{a}-{b}-{c}"
    if r < 0.86:
        return f"+86-{a}-{b}-{c}"
    if r < 0.92:
        return f"{a} {b} {c}"
    if r < 0.96:
        return number.translate(_FULLWIDTH)
    return f"+86{number}"


def other_mobile_text(number: str, current: str, rng: random.Random) -> str:
    """The same number in a form different from `current` (a second rep types it differently)."""
    for _ in range(8):
        text = mobile_text(number, rng)
        if text != current:
            return text
    return f"{number[:3]}-{number[3:7]}-{number[7:]}"


def landline_text(area_code: str, rng: random.Random) -> str:
    local = f"{between(rng, 2, 9)}{between(rng, 0, 10**7):07d}"
    r = rng.random()
    if r < 0.6:
        return f"{area_code}-{local}"
    if r < 0.8:
        return f"({area_code}){local}"
    return f"{area_code} {local[:4]} {local[4:]}"


def email_text(email: str, rng: random.Random) -> str:
    r = rng.random()
    if r < 0.80:
        return email
    if r < 0.88:
        return email.upper()
    if r < 0.91:
        return email[0].upper() + email[1:]
    if r < 0.95:
        return f" {email}"
    return f"{email} "


def han_name_text(surname: str, given: str, rng: random.Random) -> str:
    """Han names are typed with stray spaces: 张 伟, 张　伟 (full-width), 张伟 ."""
    r = rng.random()
    if r < 0.90:
        return surname + given
    if r < 0.95:
        return f"{surname} {given}"
    if r < 0.98:
        return f"{surname}\u3000{given}"
    return f"{surname}{given} "


def pinyin_name_text(surname_py: str, given_py: str, rng: random.Random) -> str:
    """Zhang Wei / ZHANG Wei / Wei Zhang / zhangwei / ZHANG WEI."""
    s, g = surname_py.capitalize(), given_py.capitalize()
    r = rng.random()
    if r < 0.40:
        return f"{s} {g}"
    if r < 0.60:
        return f"{surname_py.upper()} {g}"
    if r < 0.78:
        return f"{g} {s}"
    if r < 0.92:
        return surname_py + given_py
    return f"{surname_py.upper()} {given_py.upper()}"


def birth_date_text(born: date, rng: random.Random) -> str:
    r = rng.random()
    if r < 0.40:
        return born.isoformat()
    if r < 0.62:
        return f"{born.year}/{born.month}/{born.day}"
    if r < 0.80:
        return f"{born.year}年{born.month}月{born.day}日"
    return f"{born.year}{born.month:02d}{born.day:02d}"


def amount_text(yuan: float, rng: random.Random) -> str:
    """CRM opportunity amounts: ¥12,000.00 / 12000 / 12,000元 / 12000.00."""
    r = rng.random()
    if r < 0.40:
        return f"¥{yuan:,.2f}"
    if r < 0.65:
        return f"{yuan:.0f}"
    if r < 0.85:
        return f"{yuan:,.0f}元"
    return f"{yuan:.2f}"


def money_text(yuan: float) -> str:
    """ERP money cells: ¥1,234.50 and -¥199.00."""
    if yuan < 0:
        return f"-¥{-yuan:,.2f}"
    return f"¥{yuan:,.2f}"


def region_text(canonical: str, short: str, rng: random.Random) -> str:
    return canonical if rng.random() < 0.55 else short
