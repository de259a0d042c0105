"""Han names → pinyin keys, so 张伟 meets Zhang Wei, "Wei Zhang" and zhangwei.

pypinyin reads surnames as common words (曾 → ceng, 单 → dan, 解 → jie), so the surname is
split off first (compound surnames included) and read from an override table. It runs on the
*distinct* Han names only (a Python library, ~30 µs a name) and the result is joined back in
DuckDB. Both sides of a comparison get the same folding (ü as v), so a consistent quirk cannot
stop a match.
"""

from __future__ import annotations

import re

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
# The common single-character surnames (about 300; they cover nearly everyone): a word read out
# of a rep's remark is taken for a name only when it starts with a surname.
COMMON_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程"
    "苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付傅方白邹孟熊秦邱江尹薛闫阎段雷侯龙史陶黎贺顾"
    "毛郝龚邵万钱严覃武戴莫孔向汤常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰"
    "焦俞左柳甘祝包宁尚符舒阮柯纪梅童凌毕单季裴霍涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲"
    "房滕屈饶解牟艾尤阳时穆农司卓古吉缪简车项连芦麦褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂全佟"
    "应臧闵苟邬边卞姬师和仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩明佘池查麻苑迟邝官封谈匡鞠惠荆乐冀"
    "郁胥南班储原栗燕楚鄢劳谌奚皮粟冼蔺楼盘满闻位厉伊仝区郜海阚花权强帅屠豆朴盖练廉禹井祖漆巴"
    "丰支卿国狄平计索宣晋相初门云容敬来扈晁芮都普阙浦戈伏鹿薄邸雍辜羊阿乌母裘亓修邰赫杭况那宿"
    "鲜印逯隆茹诸战慕危玉银亢嵇公湛宾戎勾茅利於呼居揭干但尉冶斯元束檀衣信展阴昝智幸奉植衡富尧"
)


def remark_name_regex(city_names: list[str]) -> str:
    """A regex whose group 1 is the real name in a rep's remark on a follower: 张伟 李雷客户,
    张伟-老客户, 福州张伟 (city first), 张伟. The name must start with a known surname."""
    cities = "|".join(sorted(set(city_names), key=len, reverse=True))
    surname = "(?:" + "|".join(COMPOUND_SURNAMES) + f"|[{COMMON_SURNAMES}])"
    return rf"^(?:{cities})?({surname}\p{{Han}}{{1,3}})(?:[ \-—_,，/]|$)"


# Words that end a title or a role, not a name: 高端客户, 张先生, 王总, 李老师.
NOT_A_NAME = "(客户|会员|朋友|同事|同学|老师|老板|经理|总监|总|先生|女士|小姐|阿姨|叔叔|哥|姐)$"


def fold(text: str) -> str:
    """Letters only, lower case, ü written v (Lyu / Lü / lu: → lv). Lyu and Nyu spell lü / nü
    only at the start of a word: Lin Yue is lin-yue, not linve."""
    text = text.lower().replace("ü", "v").replace("u:", "v")
    text = re.sub(r"(^|[^a-z])([ln])yu", r"\1\2v", text)
    return "".join(c for c in text if "a" <= c <= "z")


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
