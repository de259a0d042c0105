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
    ], NIGHT)
    resolve(wh)
    names = wh.execute("""SELECT source_key, nickname, py_a FROM identity.source_records
                          ORDER BY source_key""").fetchall()
    assert names == [("o1", "欧阳娜娜", "ouyangnana"), ("o2", "张伟", "zhangwei"),
                     ("o3", "Sunny", "sunny")]


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
