"""Deterministic identifiers derived from (seed, person index), never from write order.

Codes come from affine permutations (index × odd multiplier + offset, modulo the code space):
unique without a lookup table, stable however the run is chunked, and they do not look
sequential the way real system-assigned codes rarely do.
"""

from __future__ import annotations

import base64
import hashlib

_CRM_SPACE = 10**8           # KH + 8 digits
_ERP_SPACE = 10**7           # C + 7 digits
_MOBILE_SPACE = 10**8        # the 8 digits after the 3-digit prefix
_QQ_SPACE = 9 * 10**8        # 9-digit QQ numbers

# Multipliers coprime with their code space (odd, not a multiple of 5 or 3), so each map is a
# bijection on [0, space).
_CRM_MULT, _ERP_MULT, _MOBILE_MULT, _QQ_MULT = 37_124_517, 3_183_643, 76_543_219, 48_271_349

MOBILE_PREFIXES = ["138", "139", "137", "136", "135", "158", "159", "150", "151", "152", "157",
                   "188", "187", "182", "183", "130", "131", "132", "155", "156", "185", "186",
                   "166", "176", "133", "153", "180", "181", "189", "177", "199", "198", "191"]


def _offset(seed: int, salt: int, space: int) -> int:
    return (seed * 2_654_435_761 + salt * 40_503) % space


def person_id(index: int) -> str:
    return f"P{index + 1:08d}"


def crm_code(seed: int, index: int, duplicate: bool = False) -> str:
    """KH + 8 digits; a person's second CRM record (entered by another rep) has its own slot."""
    slot = 2 * index + duplicate
    return f"KH{(slot * _CRM_MULT + _offset(seed, 1, _CRM_SPACE)) % _CRM_SPACE:08d}"


def erp_code(seed: int, slot: int) -> str:
    """C + 7 digits. Slots >= the person count are never given out: unknown customer codes."""
    return f"C{(slot * _ERP_MULT + _offset(seed, 2, _ERP_SPACE)) % _ERP_SPACE:07d}"


def mobile(seed: int, index: int, prefix_pick: float) -> str:
    """Unique per person: the 8-digit tail is a bijection of the index."""
    prefix = MOBILE_PREFIXES[int(prefix_pick * len(MOBILE_PREFIXES))]
    tail = (index * _MOBILE_MULT + _offset(seed, 3, _MOBILE_SPACE)) % _MOBILE_SPACE
    return f"{prefix}{tail:08d}"


def qq_number(seed: int, index: int) -> str:
    return str(10**8 + (index * _QQ_MULT + _offset(seed, 4, _QQ_SPACE)) % _QQ_SPACE)


def _token(seed: int, index: int, kind: str) -> str:
    digest = hashlib.blake2b(f"{seed}:{index}:{kind}".encode(), digest_size=21).digest()
    return base64.urlsafe_b64encode(digest).decode()[:27]


def openid(seed: int, index: int, account: str = "mp") -> str:
    """o + 27 url-safe characters, like a WeChat openid (one per account or mini program)."""
    return "o" + _token(seed, index, account)


def unionid(seed: int, index: int) -> str:
    return "u" + _token(seed, index, "union")


SEQUENCE_BLOCK = 100_000   # numbers per chunk: far more orders than 1,000 persons ever place


def sequence(chunk_no: int, k: int) -> int:
    """Running numbers (orders, opportunities) without a global counter, so chunks can be
    rendered in parallel: each chunk numbers from its own block."""
    return chunk_no * SEQUENCE_BLOCK + k
