"""Han names → pinyin keys, so 张伟 meets Zhang Wei, "Wei Zhang" and zhangwei.

pypinyin reads surnames as common words (曾 → ceng, 单 → dan, 解 → jie), so the surname is
split off first (compound surnames included) and read from an override table. It runs on the
*distinct* Han names only (a Python library, ~30 µs a name) and the result is joined back in
DuckDB. Both sides of a comparison get the same folding (ü as v), so a consistent quirk cannot
stop a match.
"""

from __future__ import annotations

import pyarrow as pa
from pypinyin import Style, lazy_pinyin

COMPOUND_SURNAMES = {
    "欧阳": "ouyang", "上官": "shangguan", "司马": "sima", "诸葛": "zhuge", "司徒": "situ",
    "东方": "dongfang", "皇甫": "huangfu", "尉迟": "yuchi", "公孙": "gongsun", "慕容": "murong",
    "令狐": "linghu", "夏侯": "xiahou", "长孙": "zhangsun", "宇文": "yuwen", "端木": "duanmu",
    "独孤": "dugu", "南宫": "nangong", "呼延": "huyan", "轩辕": "xuanyuan", "万俟": "moqi",
    "澹台": "tantai", "西门": "ximen",
}
# Single-character surnames whose surname reading differs from pypinyin's default reading.
SURNAME_READINGS = {
    "曾": "zeng", "单": "shan", "解": "xie", "仇": "qiu", "朴": "piao", "查": "zha", "区": "ou",
    "盖": "ge", "覃": "qin", "乐": "yue", "缪": "miao", "翟": "zhai", "秘": "bi", "召": "shao",
    "种": "chong", "员": "yun", "繁": "po", "重": "chong", "柏": "bai", "朝": "chao", "句": "gou",
    "尉": "yu", "宓": "mi", "能": "nai", "冼": "xian", "阚": "kan", "隗": "wei", "折": "she",
    "吕": "lv", "闾": "lv", "女": "nv",
}


def fold(text: str) -> str:
    """Letters only, lower case, ü written v (lyu / lü / lu: → lv)."""
    text = text.lower().replace("ü", "v").replace("u:", "v")
    letters = "".join(c for c in text if "a" <= c <= "z")
    return letters.replace("lyu", "lv").replace("nyu", "nv")


def split_surname(name: str) -> tuple[str, str]:
    if len(name) >= 3 and name[:2] in COMPOUND_SURNAMES:
        return name[:2], name[2:]
    return name[:1], name[1:]


def han_name_pinyin(name: str) -> tuple[str, str]:
    """(surname pinyin, given-name pinyin), folded: 曾小明 → ("zeng", "xiaoming")."""
    surname, given = split_surname(name)
    surname_py = COMPOUND_SURNAMES.get(surname) or SURNAME_READINGS.get(surname) or "".join(
        lazy_pinyin(surname, style=Style.NORMAL))
    return fold(surname_py), fold("".join(lazy_pinyin(given, style=Style.NORMAL)))


def pinyin_table(names: list[str]) -> pa.Table:
    """name → surname_py, given_py for distinct Han names."""
    pairs = [han_name_pinyin(n) for n in names]
    return pa.table({
        "name": pa.array(names, pa.string()),
        "surname_py": pa.array([s for s, _ in pairs], pa.string()),
        "given_py": pa.array([g for _, g in pairs], pa.string()),
    })
