"""Probabilistic matching, its guards and the identity score, on hand-made records."""

import datetime as dt

from handmade import land

from pipelines.config import IdentityConfig
from transforms.clusters import _split
from transforms.identity import resolve_identities
from transforms.identity_score import score_identity
from transforms.pinyin import fold, han_name_pinyin
from transforms.staging import build_staging

NIGHT = "2026-11-20 02:00:00"
# Unrelated customers around the pairs under test, so the model has a population to weigh
# agreement against.
FILLER = [{"customer_code": f"KH9{i:02d}", "name": name, "phone": f"1390000{i:04d}",
           "city": city, "birth_date": f"19{70 + i}-0{1 + i % 9}-1{i % 9}",
           "address": f"{city[:2]}区人民路{i}号"}
          for i, (name, city) in enumerate([
              ("王芳", "北京"), ("李强", "上海"), ("刘洋", "深圳"), ("陈静", "成都"),
              ("杨磊", "杭州"), ("黄敏", "武汉"), ("赵军", "南京"), ("吴霞", "西安")])]

# Two customers with one name in one city, told apart by phone and birth date.
NAMESAKES = [
    {"customer_code": "KH8", "name": "徐蕾梦", "gender": "女", "city": "上海",
     "phone": "13811112222", "birth_date": "1990-01-02"},
    {"customer_code": "KH9", "name": "徐蕾梦", "gender": "女", "city": "上海",
     "phone": "13933334444", "birth_date": "1985-07-08"},
]


def resolve(con) -> dict[str, str]:
    for entity in ("crm_customers", "erp_customers", "wechat_followers"):
        build_staging(con, entity)
    resolve_identities(con, IdentityConfig(), "r1", dt.datetime(2026, 11, 21))
    return dict(con.execute("SELECT source || ':' || source_key, customer_id "
                            "FROM identity.customer_map").fetchall())


def test_pinyin_readings_of_surnames_and_folding():
    assert han_name_pinyin("曾小明") == ("zeng", "xiaoming")
    assert han_name_pinyin("单丽") == ("shan", "li")
    assert han_name_pinyin("欧阳娜娜") == ("ouyang", "nana")
    assert han_name_pinyin("吕芳") == ("lv", "fang")
    assert fold("LYU Fang") == fold("Lü Fang") == "lvfang"
    assert fold("Lin Yueyi") == fold("linyueyi") == "linyueyi"  # lin-yue, not lü


def test_han_name_meets_pinyin_name_without_any_shared_key(wh):
    land(wh, "crm_customers", [
        *FILLER,
        {"customer_code": "KH1", "name": "张 伟", "city": "广州", "gender": "男",
         "address": "天河区中山大道100号华景新城5栋2单元1203"},
    ], NIGHT)
    land(wh, "erp_customers", [
        {"customer_code": "C1", "name": "Wei Zhang",
         "address": "广东省广州市天河区中山大道100号华景新城5栋2单元1203"},
        {"customer_code": "C2", "name": "Zhang Wei", "address": "海淀区学院路1号"},
    ], NIGHT)
    ids = resolve(wh)
    assert ids["crm:KH1"] == ids["erp:C1"]
    assert ids["erp:C2"] != ids["crm:KH1"]  # same name, nothing else shared
    link = wh.execute("""SELECT rule, evidence FROM identity.record_links l
        JOIN identity.source_records a ON a.record_id = l.left_record
        JOIN identity.source_records b ON b.record_id = l.right_record
        WHERE list_sort([a.source_key, b.source_key]) = ['C1', 'KH1']""").fetchall()
    assert link == [("probabilistic", "name+city+address")]


def test_the_name_in_a_reps_remark_stands_for_the_follower(wh):
    land(wh, "wechat_followers", [
        {"openid": "o1", "nickname": "快乐每一天", "remark": "欧阳娜娜 李雷客户"},
        {"openid": "o2", "nickname": "快乐每一天", "remark": "张伟-老客户"},
        {"openid": "o3", "nickname": "Sunny", "remark": "广州的朋友"},
        {"openid": "o4", "nickname": "Coco", "remark": "福州曾芳洁"},  # city, then the name
        {"openid": "o5", "nickname": "淡定", "remark": "高端客户"},  # a role, not a name
        {"openid": "o6", "nickname": "阿杰", "remark": "王先生"},
    ], NIGHT)
    resolve(wh)
    names = wh.execute("""SELECT source_key, nickname, py_a FROM identity.source_records
                          ORDER BY source_key""").fetchall()
    assert names == [("o1", "欧阳娜娜", "ouyangnana"), ("o2", "张伟", "zhangwei"),
                     ("o3", "Sunny", "sunny"), ("o4", "曾芳洁", "zengfangjie"),
                     ("o5", "淡定", "danding"), ("o6", "阿杰", "ajie")]


def test_a_link_that_would_join_two_mobile_numbers_is_rejected(wh):
    # KH2 and the follower o2 are one person (email); the ERP record C3 shares KH2's name and
    # address but carries another mobile number than o2's bound phone: two people.
    land(wh, "crm_customers", [
        *FILLER,
        {"customer_code": "KH2", "name": "周杰", "email": "zj@qq.com", "city": "杭州",
         "address": "西湖区文三路8号"},
    ], NIGHT)
    land(wh, "erp_customers", [
        {"customer_code": "C3", "name": "周杰", "phone": "13600009999",
         "address": "浙江省杭州市西湖区文三路8号"},
        {"customer_code": "C4", "name": "周杰", "email": "zj@qq.com", "phone": "13500001234"},
    ], NIGHT)
    ids = resolve(wh)
    assert ids["crm:KH2"] == ids["erp:C4"] != ids["erp:C3"]
    assert wh.execute("SELECT conflict FROM identity.rejected_links").fetchall() == [
        ("different mobile numbers",)]


def test_oversized_cluster_is_cut_at_its_weakest_links():
    # A chain 1-2-3-4 with a weak middle link, capped at 2 records: {1, 2} and {3, 4}.
    roots, cut = _split([1, 2, 3, 4], [(1, 2, 1.0), (2, 3, 0.7), (3, 4, 0.9)], cap=2)
    assert roots[1] == roots[2] != roots[3] == roots[4]
    assert cut == [(2, 3, 0.7)]


def test_score_counts_pairs_and_findable_pairs(con, tmp_path):
    truth = tmp_path / "truth.csv"
    truth.write_text("source,source_key,person_id,evidence\n"
                     "crm,KH1,P1,phone|name\ncrm,KH2,P1,phone\nwechat,o1,P1,\n"
                     "crm,KH3,P2,name\nerp,C3,P3,name\n", encoding="utf-8")
    con.execute("""CREATE TABLE customer_map AS SELECT * FROM (VALUES
        ('crm', 'KH1', 'A'), ('crm', 'KH2', 'A'), ('wechat', 'o1', 'B'),
        ('crm', 'KH3', 'C'), ('erp', 'C3', 'C')) t(source, source_key, customer_id)""")
    score = score_identity(con, truth, "customer_map")
    # predicted pairs: KH1-KH2, KH3-C3 (wrong); true pairs: KH1-KH2, KH1-o1, KH2-o1
    assert (score.predicted_pairs, score.true_pairs, score.correct_pairs) == (2, 3, 1)
    assert (score.precision, score.recall) == (0.5, 0.3333)
    # only KH1-KH2 share evidence; the follower shares none
    assert (score.findable_pairs, score.findable_found, score.recall_findable) == (1, 1, 1.0)
    assert (score.split_persons, score.merged_customers) == (1, 1)


def test_score_without_a_record_no_customer_holds(con, tmp_path):
    """KH2 links KH1 (phone) and o1 (email); without it (quarantined, no customer) the pair
    KH1-o1 is not findable, also when the evidence components come from the cache."""
    truth = tmp_path / "truth.csv"
    truth.write_text("source,source_key,person_id,evidence\n"
                     "crm,KH1,P1,phone\ncrm,KH2,P1,phone|email\nwechat,o1,P1,email\n"
                     "erp,C1,P2,phone\nerp,C2,P2,phone\n", encoding="utf-8")
    con.execute("""CREATE TABLE customer_map AS SELECT * FROM (VALUES
        ('crm', 'KH1', 'A'), ('wechat', 'o1', 'A'), ('erp', 'C1', 'B'), ('erp', 'C2', 'C'))
        t(source, source_key, customer_id)""")
    scores = [score_identity(con, truth, "customer_map", cache=cache)
              for cache in (False, True, True)]
    assert con.execute("SELECT count(*) FROM identity.truth_records").fetchall() == [(5,)]
    for score in scores:
        assert (score.records, score.unmapped_truth_records) == (4, 1)
        assert (score.true_pairs, score.correct_pairs) == (2, 1)
        # P2's pair is findable (phone) and split; P1's remaining pair is not findable
        assert (score.findable_pairs, score.findable_found) == (1, 0)
    truth.write_text("source,source_key,person_id,evidence\ncrm,KH1,P1,phone\n", encoding="utf-8")
    assert score_identity(con, truth, "customer_map", cache=True).records == 1


def test_a_link_that_would_join_two_genders_is_rejected(wh):
    # C5 and the follower o5 are one woman (bound phone); CRM's 周杰 (a man) shares C5's name and
    # address: the probable link KH5–C5 would make one customer of a man and a woman.
    land(wh, "crm_customers", [
        *FILLER,
        {"customer_code": "KH5", "name": "周杰", "gender": "男", "city": "杭州",
         "address": "西湖区文三路8号"},
    ], NIGHT)
    land(wh, "erp_customers", [
        {"customer_code": "C5", "name": "周杰", "phone": "13700001111",
         "address": "浙江省杭州市西湖区文三路8号"},
    ], NIGHT)
    land(wh, "wechat_followers", [
        {"openid": "o5", "gender": "2", "phone": "137-0000-1111", "city": "杭州"},
    ], NIGHT)
    ids = resolve(wh)
    assert ids["erp:C5"] == ids["wechat:o5"] != ids["crm:KH5"]
    assert wh.execute("SELECT conflict FROM identity.rejected_links").fetchall() == [
        ("different genders",)]


def population(wh) -> None:
    """A population like a real one (150 people in CRM and ERP, linked by phone), so Splink
    learns how rare a shared full name is and how often records of one person meet."""
    surnames, given = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗", "伟芳娜英敏静丽强磊军"
    cities = ["北京", "上海", "广州", "深圳", "成都", "杭州", "武汉", "南京", "西安", "重庆"]
    people = [{"name": surnames[i % 20] + given[i // 20 % 10] + "华", "phone": f"1370000{i:04d}",
               "gender": "男女"[i % 2], "city": cities[i * 3 % 10]} for i in range(150)]
    land(wh, "crm_customers", [{"customer_code": f"KF{i:03d}", **p}
                               for i, p in enumerate(people)], NIGHT)
    land(wh, "erp_customers", [{"customer_code": f"E{i:03d}", "name": p["name"],
                                "phone": p["phone"]} for i, p in enumerate(people)], NIGHT)


def test_a_follower_known_only_by_a_reps_remark_joins_the_crm_customer(wh):
    population(wh)
    land(wh, "crm_customers", [
        {"customer_code": "KH7", "name": "欧阳娜娜", "gender": "女", "city": "广州"}], NIGHT)
    land(wh, "wechat_followers", [
        {"openid": "o7", "nickname": "快乐每一天", "remark": "欧阳娜娜 李雷客户", "gender": "2",
         "city": "广州"},
        {"openid": "o8", "nickname": "快乐每一天", "gender": "2", "city": "广州"},
    ], NIGHT)
    ids = resolve(wh)
    assert ids["crm:KH7"] == ids["wechat:o7"]
    assert ids["wechat:o8"] not in (ids["crm:KH7"], ids["wechat:o7"])  # a nickname is no evidence


def test_a_record_whose_name_and_city_fit_two_customers_joins_neither(wh):
    population(wh)
    land(wh, "crm_customers", NAMESAKES, NIGHT)
    land(wh, "erp_customers", [
        {"customer_code": "C9", "name": "徐蕾梦", "address": "上海市黄浦区南京东路1号"}], NIGHT)
    ids = resolve(wh)
    assert len({ids["crm:KH8"], ids["crm:KH9"], ids["erp:C9"]}) == 3
    reasons = {r[0] for r in wh.execute("SELECT conflict FROM identity.rejected_links").fetchall()}
    assert "name and city fit several customers" in reasons


def test_an_incremental_night_rescores_only_new_records_and_agrees_with_a_full_run(wh):
    population(wh)
    land(wh, "crm_customers", [
        {"customer_code": "KH1", "name": "张 伟", "city": "广州", "gender": "男",
         "address": "天河区中山大道100号华景新城5栋2单元1203"}], NIGHT)
    cfg = IdentityConfig()
    for entity in ("crm_customers", "erp_customers", "wechat_followers"):
        build_staging(wh, entity)
    first = resolve_identities(wh, cfg, "r1", dt.datetime(2026, 11, 21))
    assert first["splink_retrained"] == 1
    # Night 2: an ERP record that only Splink can join to KH1, and one stranger.
    land(wh, "erp_customers", [
        {"customer_code": "C1", "name": "Wei Zhang",
         "address": "广东省广州市天河区中山大道100号华景新城5栋2单元1203"},
        {"customer_code": "C2", "name": "欧阳修", "address": "海淀区学院路1号"}],
        "2026-11-21 02:00:00")
    build_staging(wh, "erp_customers")
    timings: dict[str, float] = {}
    night = resolve_identities(wh, cfg, "r2", dt.datetime(2026, 11, 22), timings=timings)
    assert (night["splink_retrained"], night["splink_records_rescored"]) == (0, 2)
    assert set(timings) == {"source_records", "strong_links", "splink", "region",
                            "link_checks", "clusters", "ids"}
    # Only the two new records and KH1's customer are linked again.
    assert night["records_relinked"] < night["source_records"]

    def outcome():
        links = wh.execute("""SELECT left_source, left_key, right_source, right_key
                              FROM identity.match_links ORDER BY ALL""").fetchall()
        ids = dict(wh.execute("SELECT source || ':' || source_key, customer_id "
                              "FROM identity.customer_map").fetchall())
        return links, ids

    incremental = outcome()
    assert incremental[1]["crm:KH1"] == incremental[1]["erp:C1"]
    full = resolve_identities(wh, cfg, "r3", dt.datetime(2026, 11, 22), full=True)
    assert full["splink_retrained"] == 1
    assert outcome() == incremental
