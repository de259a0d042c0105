"""Static vocabularies the generator draws from: names, places, products, CRM picklists.

Frequencies are rough real-world shares (surnames from census tables, cities by urban
population) so that aggregates over the sample look like a real customer base.
"""

from __future__ import annotations

from itertools import accumulate
from typing import NamedTuple

# Surname, pinyin, weight (per mille of the population, rounded).
SURNAMES = [
    ("王", "wang", 71), ("李", "li", 70), ("张", "zhang", 67), ("刘", "liu", 54),
    ("陈", "chen", 46), ("杨", "yang", 31), ("黄", "huang", 22), ("赵", "zhao", 20),
    ("吴", "wu", 19), ("周", "zhou", 19), ("徐", "xu", 13), ("孙", "sun", 13),
    ("马", "ma", 12), ("朱", "zhu", 12), ("胡", "hu", 11), ("郭", "guo", 11),
    ("何", "he", 10), ("高", "gao", 10), ("林", "lin", 10), ("罗", "luo", 9),
    ("郑", "zheng", 8), ("梁", "liang", 8), ("谢", "xie", 7), ("宋", "song", 6),
    ("唐", "tang", 6), ("许", "xu", 6), ("韩", "han", 6), ("冯", "feng", 5),
    ("邓", "deng", 5), ("曹", "cao", 5), ("彭", "peng", 5), ("曾", "zeng", 5),
    ("肖", "xiao", 5), ("田", "tian", 4), ("董", "dong", 4), ("袁", "yuan", 4),
    ("潘", "pan", 4), ("于", "yu", 4), ("蒋", "jiang", 4), ("蔡", "cai", 4),
    ("余", "yu", 4), ("杜", "du", 4), ("叶", "ye", 4), ("程", "cheng", 4),
    ("苏", "su", 3), ("魏", "wei", 3), ("吕", "lyu", 3), ("丁", "ding", 3),
    ("任", "ren", 3), ("沈", "shen", 3), ("姚", "yao", 3), ("卢", "lu", 3),
    ("姜", "jiang", 3), ("崔", "cui", 3), ("钟", "zhong", 3), ("谭", "tan", 3),
    ("陆", "lu", 2), ("汪", "wang", 2), ("范", "fan", 2), ("金", "jin", 2),
    ("石", "shi", 2), ("廖", "liao", 2), ("贾", "jia", 2), ("夏", "xia", 2),
    ("韦", "wei", 2), ("付", "fu", 2), ("方", "fang", 2), ("白", "bai", 2),
    ("邹", "zou", 2), ("孟", "meng", 2), ("熊", "xiong", 2), ("秦", "qin", 2),
    ("邱", "qiu", 2), ("江", "jiang", 2), ("尹", "yin", 2), ("薛", "xue", 2),
    ("段", "duan", 2), ("雷", "lei", 2), ("侯", "hou", 2), ("龙", "long", 2),
    ("史", "shi", 2), ("陶", "tao", 1), ("黎", "li", 1), ("贺", "he", 1),
    ("顾", "gu", 1), ("毛", "mao", 1), ("郝", "hao", 1), ("龚", "gong", 1),
    ("邵", "shao", 1), ("万", "wan", 1), ("单", "shan", 1), ("欧阳", "ouyang", 1),
    ("上官", "shangguan", 0.2), ("司马", "sima", 0.2), ("诸葛", "zhuge", 0.2),
]
SURNAME_CUM = list(accumulate(w for *_, w in SURNAMES))

# Given-name characters with pinyin, by the gender they are mostly used for.
GIVEN_MALE = [
    ("伟", "wei"), ("强", "qiang"), ("磊", "lei"), ("军", "jun"), ("洋", "yang"), ("勇", "yong"),
    ("杰", "jie"), ("涛", "tao"), ("明", "ming"), ("超", "chao"), ("刚", "gang"), ("平", "ping"),
    ("辉", "hui"), ("鹏", "peng"), ("华", "hua"), ("飞", "fei"), ("鑫", "xin"), ("波", "bo"),
    ("斌", "bin"), ("宇", "yu"), ("浩", "hao"), ("凯", "kai"), ("健", "jian"), ("俊", "jun"),
    ("帆", "fan"), ("旭", "xu"), ("宁", "ning"), ("龙", "long"), ("博", "bo"), ("文", "wen"),
    ("志", "zhi"), ("国", "guo"), ("建", "jian"), ("晨", "chen"), ("轩", "xuan"), ("子", "zi"),
    ("皓", "hao"), ("然", "ran"), ("天", "tian"), ("成", "cheng"), ("东", "dong"), ("海", "hai"),
    ("峰", "feng"), ("亮", "liang"), ("振", "zhen"), ("睿", "rui"), ("泽", "ze"), ("一", "yi"),
]
GIVEN_FEMALE = [
    ("芳", "fang"), ("娜", "na"), ("敏", "min"), ("静", "jing"), ("丽", "li"), ("艳", "yan"),
    ("娟", "juan"), ("霞", "xia"), ("秀", "xiu"), ("燕", "yan"), ("玲", "ling"), ("桂", "gui"),
    ("丹", "dan"), ("萍", "ping"), ("红", "hong"), ("婷", "ting"), ("雪", "xue"), ("琳", "lin"),
    ("晶", "jing"), ("欣", "xin"), ("怡", "yi"), ("佳", "jia"), ("慧", "hui"), ("颖", "ying"),
    ("倩", "qian"), ("梅", "mei"), ("莉", "li"), ("蕾", "lei"), ("璐", "lu"), ("悦", "yue"),
    ("雨", "yu"), ("涵", "han"), ("萱", "xuan"), ("诗", "shi"), ("琪", "qi"), ("可", "ke"),
    ("馨", "xin"), ("思", "si"), ("梦", "meng"), ("瑶", "yao"), ("晓", "xiao"), ("月", "yue"),
    ("春", "chun"), ("兰", "lan"), ("彤", "tong"), ("妍", "yan"), ("欢", "huan"), ("洁", "jie"),
]


class City(NamedTuple):
    name: str            # canonical, as in transforms/reference/cities.csv
    short: str
    province: str        # canonical province
    province_short: str
    name_en: str         # how WeChat spells it in English
    province_en: str
    area_code: str
    districts: tuple[str, ...]


def _city(name, province, name_en, province_en, area_code, districts):
    short = name.removesuffix("市")
    province_short = province
    for suffix in ("壮族自治区", "回族自治区", "维吾尔自治区", "自治区", "省", "市"):
        if province.endswith(suffix):
            province_short = province.removesuffix(suffix)
            break
    return City(name, short, province, province_short, name_en, province_en, area_code,
                tuple(districts.split()))


# City | province | English city | English province | area code | weight (urban population in
# millions, rounded) | districts. Municipalities are their own province.
_CITY_TABLE = """
北京市|北京市|Beijing|Beijing|010|22|朝阳区 海淀区 东城区 西城区 丰台区
上海市|上海市|Shanghai|Shanghai|021|25|浦东新区 徐汇区 静安区 闵行区 杨浦区
天津市|天津市|Tianjin|Tianjin|022|11|和平区 南开区 河西区 滨海新区
重庆市|重庆市|Chongqing|Chongqing|023|15|渝中区 江北区 南岸区 沙坪坝区
广州市|广东省|Guangzhou|Guangdong|020|19|天河区 越秀区 海珠区 番禺区 白云区
深圳市|广东省|Shenzhen|Guangdong|0755|18|南山区 福田区 罗湖区 宝安区 龙岗区
东莞市|广东省|Dongguan|Guangdong|0769|9|南城街道 东城街道 虎门镇 长安镇
佛山市|广东省|Foshan|Guangdong|0757|8|禅城区 南海区 顺德区
珠海市|广东省|Zhuhai|Guangdong|0756|2|香洲区 金湾区
惠州市|广东省|Huizhou|Guangdong|0752|4|惠城区 惠阳区
中山市|广东省|Zhongshan|Guangdong|0760|3|石岐街道 东区街道
成都市|四川省|Chengdu|Sichuan|028|16|锦江区 武侯区 青羊区 成华区 金牛区
杭州市|浙江省|Hangzhou|Zhejiang|0571|11|西湖区 上城区 拱墅区 滨江区 余杭区
宁波市|浙江省|Ningbo|Zhejiang|0574|6|海曙区 鄞州区 江北区
温州市|浙江省|Wenzhou|Zhejiang|0577|5|鹿城区 瓯海区 龙湾区
绍兴市|浙江省|Shaoxing|Zhejiang|0575|3|越城区 柯桥区
嘉兴市|浙江省|Jiaxing|Zhejiang|0573|3|南湖区 秀洲区
金华市|浙江省|Jinhua|Zhejiang|0579|3|婺城区 金东区
武汉市|湖北省|Wuhan|Hubei|027|12|江汉区 武昌区 洪山区 江岸区
西安市|陕西省|Xi'an|Shaanxi|029|11|雁塔区 碑林区 未央区 莲湖区
南京市|江苏省|Nanjing|Jiangsu|025|9|鼓楼区 玄武区 秦淮区 建邺区
苏州市|江苏省|Suzhou|Jiangsu|0512|9|姑苏区 吴中区 相城区 虎丘区
无锡市|江苏省|Wuxi|Jiangsu|0510|5|梁溪区 滨湖区 新吴区
常州市|江苏省|Changzhou|Jiangsu|0519|4|天宁区 钟楼区 新北区
南通市|江苏省|Nantong|Jiangsu|0513|4|崇川区 通州区
徐州市|江苏省|Xuzhou|Jiangsu|0516|4|鼓楼区 云龙区 泉山区
郑州市|河南省|Zhengzhou|Henan|0371|10|金水区 中原区 二七区
洛阳市|河南省|Luoyang|Henan|0379|3|西工区 洛龙区
长沙市|湖南省|Changsha|Hunan|0731|8|岳麓区 芙蓉区 天心区 开福区
青岛市|山东省|Qingdao|Shandong|0532|7|市南区 市北区 崂山区 黄岛区
济南市|山东省|Jinan|Shandong|0531|7|历下区 市中区 槐荫区
烟台市|山东省|Yantai|Shandong|0535|3|芝罘区 莱山区
潍坊市|山东省|Weifang|Shandong|0536|3|奎文区 潍城区
沈阳市|辽宁省|Shenyang|Liaoning|024|7|和平区 沈河区 皇姑区 铁西区
大连市|辽宁省|Dalian|Liaoning|0411|5|中山区 沙河口区 甘井子区
昆明市|云南省|Kunming|Yunnan|0871|6|五华区 盘龙区 官渡区
合肥市|安徽省|Hefei|Anhui|0551|7|蜀山区 包河区 庐阳区
福州市|福建省|Fuzhou|Fujian|0591|5|鼓楼区 台江区 仓山区
厦门市|福建省|Xiamen|Fujian|0592|4|思明区 湖里区 集美区
泉州市|福建省|Quanzhou|Fujian|0595|3|丰泽区 鲤城区 洛江区
哈尔滨市|黑龙江省|Harbin|Heilongjiang|0451|6|南岗区 道里区 香坊区
长春市|吉林省|Changchun|Jilin|0431|5|朝阳区 南关区 绿园区
石家庄市|河北省|Shijiazhuang|Hebei|0311|6|长安区 桥西区 裕华区
南宁市|广西壮族自治区|Nanning|Guangxi|0771|5|青秀区 兴宁区 西乡塘区
贵阳市|贵州省|Guiyang|Guizhou|0851|4|云岩区 南明区 观山湖区
南昌市|江西省|Nanchang|Jiangxi|0791|4|东湖区 西湖区 红谷滩区
太原市|山西省|Taiyuan|Shanxi|0351|4|小店区 迎泽区 杏花岭区
兰州市|甘肃省|Lanzhou|Gansu|0931|3|城关区 七里河区
乌鲁木齐市|新疆维吾尔自治区|Urumqi|Xinjiang|0991|3|天山区 沙依巴克区
呼和浩特市|内蒙古自治区|Hohhot|Inner Mongolia|0471|2|新城区 赛罕区 回民区
包头市|内蒙古自治区|Baotou|Inner Mongolia|0472|2|昆都仑区 青山区
海口市|海南省|Haikou|Hainan|0898|2|龙华区 美兰区
银川市|宁夏回族自治区|Yinchuan|Ningxia|0951|2|兴庆区 金凤区
西宁市|青海省|Xining|Qinghai|0971|2|城中区 城西区
"""
CITIES_WEIGHTED = [
    (_city(name, province, name_en, province_en, area, districts), int(weight))
    for name, province, name_en, province_en, area, weight, districts
    in (line.split("|") for line in _CITY_TABLE.strip().splitlines())
]
CITIES = [c for c, _ in CITIES_WEIGHTED]
CITY_CUM = list(accumulate(w for _, w in CITIES_WEIGHTED))

ROADS = [
    "人民路", "解放路", "中山路", "建设路", "和平路", "新华路", "长江路", "黄河路", "文化路",
    "青年路", "胜利路", "朝阳路", "工业大道", "科技路", "学府路", "滨江路", "东风路", "光明路",
    "幸福路", "创业路", "金融街", "世纪大道", "南京路", "北京路", "湖滨路", "花园路", "五一路",
    "迎宾大道", "体育路", "健康路",
]
COMMUNITIES = [
    "阳光花园", "金色家园", "翠湖苑", "锦绣华庭", "万科城", "碧桂园", "保利花园", "绿地世纪城",
    "恒大名都", "龙湖天街", "中海国际社区", "华润城", "东方明珠苑", "书香门第", "学府雅苑",
    "滨江一号", "紫荆公寓", "和谐家园", "枫林小区", "新城国际",
]

INDUSTRIES = ["IT/互联网", "金融", "教育", "医疗", "制造业", "零售", "政府/事业单位", "自由职业"]
INDUSTRY_CUM = list(accumulate([18, 12, 10, 8, 17, 14, 9, 12]))

# Lead source: weight, dwell-time factor for the funnel, chance to advance one stage.
LEAD_SOURCES = {
    "官网": (16, 1.0, 0.70),
    "展会": (10, 1.5, 0.60),
    "转介绍": (14, 0.6, 0.85),
    "微信公众号": (18, 0.9, 0.65),
    "电话营销": (12, 1.3, 0.45),
    "百度推广": (14, 1.1, 0.55),
    "抖音": (16, 0.7, 0.50),
}
LEAD_SOURCE_NAMES = list(LEAD_SOURCES)
LEAD_SOURCE_CUM = list(accumulate(w for w, _, _ in LEAD_SOURCES.values()))

# Opportunity stages before the outcome, with the typical days spent in each.
FUNNEL_STAGES = [("初步接洽", 4.0), ("需求确认", 9.0), ("方案报价", 14.0), ("谈判审核", 7.0)]
WON, LOST = "赢单", "输单"

CATEGORIES = ["美妆", "服饰", "母婴", "数码", "食品", "家居", "运动", "图书"]
# Chance that a bought line of the category is returned later.
RETURN_RATE = [0.03, 0.08, 0.02, 0.04, 0.01, 0.03, 0.04, 0.01]


class Product(NamedTuple):
    sku: str
    name: str
    category: int        # index into CATEGORIES
    price: float         # list price in yuan


def _products(category: int, prefix: str, items: str) -> list[Product]:
    products = []
    for n, item in enumerate(items.split(";"), start=1):
        name, price = item.rsplit("=", 1)
        products.append(Product(f"{prefix}{n:04d}", name.strip(), category, float(price)))
    return products


PRODUCTS = [
    _products(0, "MZ", "保湿精华液 30ml=299;水润口红 #906=189;氨基酸洁面乳=89;"
                       "清透防晒霜 SPF50=159;玻尿酸面膜 10片装=129;紧致眼霜 15g=399;"
                       "持妆粉底液=269;卸妆水 400ml=99;淡香水 50ml=699;护手霜套装=69"),
    _products(1, "FS", "纯棉圆领T恤=99;修身牛仔裤=259;双面羊绒大衣=1299;碎花连衣裙=399;"
                       "轻薄羽绒服=899;针织开衫=299;商务休闲衬衫=199;连帽卫衣=229;真丝围巾=359;"
                       "经典帆布鞋=159"),
    _products(2, "MY", "婴儿纸尿裤 L码=139;婴幼儿奶粉 3段 800g=299;婴儿湿巾 80抽×6=59;"
                       "宝宝辅食米粉=69;儿童绘本套装=119;婴儿连体衣=89;电动吸奶器=599;"
                       "宽口径奶瓶=129;儿童安全座椅=1599;轻便婴儿推车=999"),
    _products(3, "SM", "无线蓝牙耳机=399;智能手表=1299;充电宝 20000mAh=149;机械键盘=499;"
                       "平板电脑=3299;5G智能手机=4999;轻薄笔记本电脑=6999;快充数据线=39;"
                       "蓝牙音箱=299;移动硬盘 1TB=459"),
    _products(4, "SP", "坚果礼盒=128;纯牛奶 24盒=89;挂耳咖啡 30包=79;五常大米 5kg=99;"
                       "有机绿茶 250g=168;零食大礼包=59;特级初榨橄榄油 1L=129;百花蜂蜜 500g=89;"
                       "风干牛肉干=49;即食燕麦片 1kg=39"),
    _products(5, "JJ", "乳胶枕=299;全棉四件套=399;折叠收纳箱=59;香薰蜡烛=89;空气炸锅=399;"
                       "扫地机器人=1999;保温杯=129;不粘炒锅=199;白鹅绒被=699;记忆棉坐垫=79"),
    _products(6, "YD", "加厚瑜伽垫=129;缓震跑步鞋=699;运动手环=199;可调节哑铃=259;"
                       "速干运动T恤=129;室外篮球=199;登山背包=459;骑行头盔=299;防雾泳镜=89;"
                       "健身服套装=359"),
    _products(7, "TS", "畅销长篇小说=49;经济学原理=89;儿童百科全书=198;Python编程入门=79;"
                       "中国通史=59;心理学与生活=69;考研英语词汇=45;漫画全集=299;"
                       "家常菜谱大全=58;摄影入门教程=88"),
]

# Category preferences by gender (relative weights), before age adjustments.
TASTE_PRIOR = {
    "F": [30, 24, 10, 8, 10, 10, 4, 4],
    "M": [4, 14, 6, 30, 12, 10, 16, 8],
}

CUTE_NICKNAMES = [
    "快乐每一天", "小太阳", "Lucky☆", "🌸花开半夏", "阳光男孩", "简单就好", "岁月静好", "追梦人",
    "小确幸", "一路向北", "Sunny", "🍀幸运草", "淡定", "做最好的自己", "微笑向暖", "✨星星",
    "平安是福", "吃货一枚", "猫咪🐱", "海阔天空", "随遇而安", "Coco", "A.小鱼", "💕",
    "静待花开", "清风徐来", "天天向上", "木子", "🌈彩虹", "知足常乐", "Mr.Lee", "宝妈日记",
]

FOLLOWUP_METHODS = ["电话", "微信", "拜访", "邮件"]
FOLLOWUP_METHOD_CUM = list(accumulate([45, 35, 10, 10]))

MENU_KEYS = ["MENU_MALL", "MENU_MEMBER", "MENU_COUPON", "MENU_SERVICE", "MENU_ARTICLES"]

SUBSCRIBE_SCENES = ["ADD_SCENE_QR_CODE", "ADD_SCENE_SEARCH", "ADD_SCENE_ARTICLE",
                    "ADD_SCENE_PROFILE_CARD", "ADD_SCENE_OTHERS"]
SUBSCRIBE_SCENE_CUM = list(accumulate([35, 25, 20, 10, 10]))

# WeChat tag ids an operator assigns: interests by category, then a few operational tags.
TAG_INTEREST_BASE = 100
TAG_VIP, TAG_EVENT, TAG_AMBASSADOR = 201, 202, 203
