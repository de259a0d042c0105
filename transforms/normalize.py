"""Value normalisation, as DuckDB macros (run on every row inside the engine) plus the few
Python-only steps that run on *distinct* values only (phonenumbers for non-mobile numbers).

``register_normalizers(con, nullish)`` must be called on a connection before staging SQL runs.
Every ``parse_*`` macro returns NULL when its input cannot be read; staging compares with the
cleaned input to tell "empty" from "unparseable".

Every macro starts from ``clean``, which removes control characters (see CONTROL_CHARS) before
anything else; ``has_controls`` tells staging which raw values had some, so it can list them.
"""

from __future__ import annotations

import csv
from importlib import resources

import phonenumbers
import pyarrow as pa

from transforms.sql import quote_literal

# Full-width ASCII (U+FF01..U+FF5E) and the ideographic space fold to their half-width forms.
_FULL = "".join(chr(c) for c in range(0xFF01, 0xFF5F)) + "\u3000"
_HALF = "".join(chr(c) for c in range(0x21, 0x7F)) + " "

TIMESTAMP_FORMATS = [
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M:%S.%f",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M:%S.%f",
    "%Y-%m-%d",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%Y/%m/%d",
    "%Y.%m.%d %H:%M:%S",
    "%Y.%m.%d",
    "%Y%m%d %H:%M:%S",
    "%Y%m%d%H%M%S",
    "%Y%m%d",
]

_ADDRESS_PREFIX = r"^(\p{Han}{2,7}?(?:省|自治区))?(\p{Han}{2,6}?市)?"

# Characters no export value should carry, removed by clean() (RE2 classes): C0 controls other
# than tab, line feed and carriage return (those are whitespace: a CRLF line break in a remark
# is not an attack), DEL, C1 controls, zero-width characters U+200B-U+200F, bidi embeddings and
# overrides U+202A-U+202E and isolates U+2066-U+2069, and U+FEFF (a BOM inside a value).
CONTROL_CHARS = (r"[\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x{9F}\x{200B}-\x{200F}\x{202A}-\x{202E}"
                 r"\x{2066}-\x{2069}\x{FEFF}]")
# ANSI / VT100 escape sequences are removed whole (ESC[31m, not just the ESC): CSI (ESC [ or
# the C1 CSI U+009B, parameters, final byte) and OSC (ESC ] ... BEL or ESC backslash).
ANSI_SEQUENCES = (r"(?:\x1B\[|\x{9B})[0-?]*[ -/]*[@-~]|\x1B\][^\x07\x1B]*(?:\x07|\x1B\\)")

# Full-width forms or control characters: what tidy() has work to do for.
_RARE = CONTROL_CHARS[:-1] + r"\x{FF01}-\x{FF5E}\x{3000}]"

DEFAULT_NULLISH = ["无", "-", "--", "—", "n/a", "na", "null", "none", "nil", "空", "/", "未填写", "#n/a"]


def register_normalizers(con, nullish: list[str] | None = None, timezone: str = "Asia/Shanghai",
                         phone_region: str = "CN") -> None:
    nullish_sql = ", ".join(quote_literal(v.lower()) for v in (nullish or DEFAULT_NULLISH))
    formats_sql = "[" + ", ".join(quote_literal(f) for f in TIMESTAMP_FORMATS) + "]"
    tz = quote_literal(timezone)
    cc = str(phonenumbers.country_code_for_region(phone_region))
    # list_transform([x], lambda v: …)[1] names a value once (a "let"): the scalar subquery
    # form, (SELECT … FROM (SELECT x AS v)), is planned as a join per call and made staging
    # several times slower.
    macros = [
        # translate() costs ~5 µs a value: run it only on the few values with full-width forms.
        f"""halfwidth(s) AS CASE WHEN regexp_matches(s, '[\\x{{FF01}}-\\x{{FF5E}}\\x{{3000}}]')
            THEN translate(s, {quote_literal(_FULL)}, {quote_literal(_HALF)}) ELSE s END""",
        f"has_controls(s) AS regexp_matches(s, {quote_literal(CONTROL_CHARS)})",
        f"""strip_controls(s) AS regexp_replace(regexp_replace(s, {quote_literal(ANSI_SEQUENCES)},
            '', 'g'), {quote_literal(CONTROL_CHARS)}, '', 'g')""",
        # One test for both rare cases (full-width forms, control characters), so a plain value
        # costs one regexp_matches as before; the rare ones are stripped, then folded.
        f"""tidy(s) AS CASE WHEN regexp_matches(s, {quote_literal(_RARE)})
            THEN halfwidth(strip_controls(s)) ELSE s END""",
        # clean: what every field type starts from: control characters removed, folded,
        # trimmed, null-ish strings → NULL.
        f"""clean(s) AS list_transform(
            [trim(regexp_replace(tidy(s::VARCHAR), '\\s+', ' ', 'g'))],
            lambda _t: CASE WHEN _t = '' OR lower(_t) IN ({nullish_sql}) THEN NULL ELSE _t END)[1]""",
        "clean_code(s) AS upper(replace(clean(s), ' ', ''))",
        # Han names: spaces are typing noise (张 伟 = 张伟); Latin names keep one space between words.
        """clean_name(s) AS list_transform([clean(s)], lambda _c:
            CASE WHEN regexp_matches(_c, '\\p{Han}') THEN replace(_c, ' ', '') ELSE _c END)[1]""",
        """clean_email(s) AS list_transform([lower(replace(clean(s), ' ', ''))], lambda _e:
            CASE WHEN regexp_full_match(_e, '[^@\\s]+@[^@\\s]+\\.[a-z]{2,}') THEN _e END)[1]""",
        f"""parse_timestamp(s) AS list_transform([clean(s)], lambda _c: CASE
            WHEN _c IS NULL THEN NULL
            WHEN regexp_full_match(_c, '[1-9][0-9]{{4}}(\\.[0-9]+)?')  -- Excel serial day number
                THEN TIMESTAMP '1899-12-30' + to_seconds(round(_c::DOUBLE * 86400)::BIGINT)
            WHEN regexp_full_match(_c, '[1-9][0-9]{{8,9}}')  -- unix seconds (UTC)
                THEN timezone({tz}, to_timestamp(_c::BIGINT))::TIMESTAMP
            WHEN regexp_full_match(_c, '[1-9][0-9]{{12}}')  -- unix milliseconds
                THEN timezone({tz}, to_timestamp(_c::BIGINT / 1000.0))::TIMESTAMP
            ELSE try_strptime(regexp_replace(replace(replace(replace(replace(_c, '年', '-'), '月', '-'),
                                '日', ' '), '时', ':'), '\\s+', ' ', 'g').trim(), {formats_sql})
            END)[1]""",
        """parse_timestamp_checked(s) AS list_transform([parse_timestamp(s)], lambda _t:
            CASE WHEN year(_t) BETWEEN 1900 AND 2100 THEN _t END)[1]""",
        # Dates (birth dates) from 1800: an implausible age is a staging rule (ValueRules) with
        # its own reason, not "cannot parse"; placeholder years (0001-01-01) still fail.
        """parse_date(s) AS list_transform([parse_timestamp(s)], lambda _t:
            CASE WHEN year(_t) BETWEEN 1800 AND 2100 THEN _t::DATE END)[1]""",
        # ¥1,234.50 / -¥1.00 / 12,000元 / (12.00) → DECIMAL yuan
        r"""parse_amount(s) AS list_transform(
            [regexp_replace(clean(s), '[¥￥,，元\s]|RMB|CNY', '', 'gi')], lambda _a: CASE
            WHEN regexp_full_match(_a, '\(.*\)') THEN -TRY_CAST(trim(_a, '()') AS DECIMAL(18, 2))
            ELSE TRY_CAST(_a AS DECIMAL(18, 2)) END)[1]""",
        """parse_integer(s) AS list_transform([TRY_CAST(replace(clean(s), ',', '') AS DOUBLE)],
            lambda _d: CASE WHEN _d = round(_d) THEN _d::BIGINT END)[1]""",
        """parse_boolean(s) AS list_transform([clean(s)], lambda _c: CASE
            WHEN lower(_c) IN ('1', 'true', 't', 'yes', 'y', '是') THEN true
            WHEN lower(_c) IN ('0', 'false', 'f', 'no', 'n', '否') THEN false END)[1]""",
        # WeChat sex: 1 male, 2 female, 0 unknown; CRM: 男 / 女.
        """parse_gender(s) AS list_transform([clean(s)], lambda _c: CASE
            WHEN lower(_c) IN ('男', 'm', 'male', '1', '先生') THEN 'M'
            WHEN lower(_c) IN ('女', 'f', 'female', '2', '女士') THEN 'F' END)[1]""",
        """gender_known(s) AS lower(clean(s)) IN ('男', 'm', 'male', '1', '先生', '女', 'f', 'female',
            '2', '女士', '0', '未知', 'unknown', 'u', '保密')""",
        """parse_list(s) AS list_transform([clean(s)], lambda _c: CASE
            WHEN _c IS NULL THEN NULL
            WHEN json_valid(_c) AND json_type(_c::JSON) = 'ARRAY' THEN json_extract_string(_c, '$[*]')
            ELSE list_transform(string_split(_c, ','), lambda x: trim(x)) END)[1]""",
        # Mainland mobiles in any form (+86 138 0013 8000, 0086…, 138-0013-8000) without Python.
        """phone_digits(s) AS regexp_replace(clean(s), '[^0-9+]', '', 'g')""",
        f"""mobile_e164(s) AS list_transform([phone_digits(s)], lambda _d: CASE
            WHEN regexp_full_match(_d, '(\\+?{cc}|00{cc})?1[3-9][0-9]{{9}}')
                THEN '+{cc}' || right(_d, 11) END)[1]""",
        """province_key(s) AS lower(regexp_replace(clean(s), '[\\s\\-_]', '', 'g'))""",
        # Pinyin and Latin names for matching: letters only, ü as v (see transforms.pinyin.fold).
        # Lyu / Nyu spell lü / nü only at the start of a word: linyue is lin-yue, not linve.
        """fold_letters(s) AS regexp_replace(regexp_replace(
            replace(replace(lower(s), 'ü', 'v'), 'u:', 'v'), '(^|[^a-z])([ln])yu', '\\1\\2v', 'g'),
            '[^a-z]', '', 'g')""",
        # Addresses: the province / city prefix some systems add (广东省广州市天河区… vs 天河区…).
        f"""address_city(s) AS nullif(regexp_extract(clean(s), '{_ADDRESS_PREFIX}', 2), '')""",
        f"""address_street(s) AS nullif(regexp_replace(clean(s), '{_ADDRESS_PREFIX}', ''), '')""",
    ]
    for macro in macros:
        con.execute(f"CREATE OR REPLACE TEMP MACRO {macro}")
    _register_regions(con)
    register_region_macros(con)


def _read_reference(name: str) -> list[dict[str, str]]:
    with resources.files("transforms.reference").joinpath(name).open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _aliases(row: dict[str, str], canonical_col: str) -> list[str]:
    names = [row[canonical_col], row["short_name"], *row["pinyin"].split("|")]
    return [n.lower().replace(" ", "").replace("-", "") for n in names if n]


def _register_regions(con) -> None:
    """Alias → canonical name tables for provinces and cities (short, full and pinyin forms)."""
    provinces = _read_reference("provinces.csv")
    cities = _read_reference("cities.csv")
    p_alias = [(a, r["province"]) for r in provinces for a in _aliases(r, "province")]
    c_alias = [(a, r["city"], r["province"]) for r in cities for a in _aliases(r, "city")]
    con.register("_province_alias_arrow", pa.table({
        "alias": [a for a, _ in p_alias], "province": [p for _, p in p_alias]}))
    con.register("_city_alias_arrow", pa.table({
        "alias": [a for a, *_ in c_alias], "city": [c for _, c, _ in c_alias],
        "province": [p for *_, p in c_alias]}))
    con.execute("""CREATE OR REPLACE TEMP TABLE province_alias AS
        SELECT DISTINCT * FROM _province_alias_arrow""")
    con.execute("""CREATE OR REPLACE TEMP TABLE city_alias AS
        SELECT DISTINCT * FROM _city_alias_arrow""")
    con.unregister("_province_alias_arrow")
    con.unregister("_city_alias_arrow")


def normalise_phones(values: list[str], region: str = "CN") -> list[tuple[str, str | None]]:
    """E.164 for phone strings the SQL fast path could not read (landlines, foreign numbers).

    Runs on distinct values only. Returns (value, e164 or None when not a valid number).
    """
    out = []
    for value in values:
        try:
            number = phonenumbers.parse(value, region)
        except phonenumbers.NumberParseException:
            out.append((value, None))
            continue
        ok = phonenumbers.is_valid_number(number)
        out.append((value, phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
                    if ok else None))
    return out


def register_region_macros(con) -> None:
    """Province / city → canonical full names; unknown Han city names get 市 appended."""
    con.execute("""CREATE OR REPLACE TEMP MACRO canonical_province(s) AS coalesce(
        (SELECT min(province) FROM province_alias WHERE alias = province_key(s)), clean(s))""")
    con.execute("""CREATE OR REPLACE TEMP MACRO canonical_city(s) AS coalesce(
        (SELECT min(city) FROM city_alias WHERE alias = province_key(s)),
        CASE WHEN regexp_full_match(clean(s), '\\p{Han}+')
                  AND NOT regexp_matches(clean(s), '(市|州|盟|地区|县|区)$')
             THEN clean(s) || '市' ELSE clean(s) END)""")
