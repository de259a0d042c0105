"""WeChat exports: followers.jsonl (user-info API objects) and events.jsonl (one event a line).
This module renders one chunk's lines; sink.py writes the files."""

from __future__ import annotations

import json

from pipelines.sample import ids, noise
from pipelines.sample.behaviour import Facts
from pipelines.sample.clock import DAY
from pipelines.sample.context import RunContext
from pipelines.sample.draws import between, pick
from pipelines.sample.persons import Person, nickname
from pipelines.sample.reference import (
    CATEGORIES,
    SUBSCRIBE_SCENE_CUM,
    SUBSCRIBE_SCENES,
    TAG_AMBASSADOR,
    TAG_EVENT,
    TAG_INTEREST_BASE,
    TAG_VIP,
)
from pipelines.sample.truth import TruthRenderer

FOLLOWERS, EVENTS = "wechat/followers.jsonl", "wechat/events.jsonl"


class WechatRenderer:
    def __init__(self, ctx: RunContext, chunk_no: int, truth: TruthRenderer):
        self.ctx, self.chunk_no, self.truth = ctx, chunk_no, truth
        self.followers: list[str] = []
        self.events: list[str] = []
        self._mall_orders_seen = 0
        self.bad_event_line: int | None = None   # chunk event line cut off mid-object

    def output(self) -> dict[str, tuple[str, int]]:
        return {FOLLOWERS: ("".join(self.followers), len(self.followers)),
                EVENTS: ("".join(self.events), len(self.events))}

    def write(self, p: Person, facts: Facts) -> None:
        if not p.in_wechat:
            return
        rng, seed = p.rng, self.ctx.seed
        main = ids.openid(seed, p.index, "mp")
        union = ids.unionid(seed, p.index) if p.has_unionid else None
        self._follower(p, main, union, p.subscribe_t, mini_program=False)
        mall_openid = main
        if p.second_openid:
            # The mall mini program: same unionid, its own openid, opened some time later.
            mini = ids.openid(seed, p.index, "mini")
            first = p.subscribe_t + int(rng.random() * (self.ctx.window.last_t - p.subscribe_t))
            mall_times = [o.t for o in facts.orders if o.channel == "mall"]
            if mall_times:   # opened at the latest just before the first mall order
                first = max(p.subscribe_t, min(first, mall_times[0] - between(rng, 60, 3600)))
            self._follower(p, mini, union, first, mini_program=True)
            mall_openid = mini
        self._write_events(main, mall_openid, facts)

    def _follower(self, p: Person, openid: str, union: str | None, subscribed: int,
                  mini_program: bool) -> None:
        rng, ctx = p.rng, self.ctx
        evidence = []
        if p.binds_phone:
            evidence.append("phone")
        if union:
            evidence.append("unionid")
        nick = nickname(p, rng)
        remark = ""
        if rng.random() < 0.05:   # a rep's note carries the real name
            remark = (f"{p.name} {ctx.reps[p.rep]}客户", f"{p.name}-老客户",
                      f"{p.city.short}{p.name}")[int(rng.random() * 3)]
        if nick == p.name or remark:
            evidence.append("name")
        r = rng.random()
        if r < 0.72:
            province, city, country = p.city.province_short, p.city.short, "中国"
        elif r < 0.87:
            province, city, country = p.city.province_en, p.city.name_en, "中国"
        else:
            province = city = country = ""
        if city:
            evidence.append("city")
        sex = (1 if p.gender == "M" else 2) if rng.random() < 0.9 else 0
        if p.referred and not mini_program:
            scene = "ADD_SCENE_QR_CODE" if rng.random() < 0.7 else "ADD_SCENE_PROFILE_CARD"
        else:
            scene = SUBSCRIBE_SCENES[pick(SUBSCRIBE_SCENE_CUM, rng.random())]
        tags = [TAG_INTEREST_BASE + c + 1 for c in p.favourites if rng.random() < 0.4]
        if p.tier == "vip" and p.is_buyer and rng.random() < 0.7:
            tags.append(TAG_VIP)
        if rng.random() < 0.1:
            tags.append(TAG_EVENT)
        if p.is_kol and rng.random() < 0.8:
            tags.append(TAG_AMBASSADOR)
        # Unsubscribed users keep their last known profile in the account's follower table.
        unsubscribed = p.unsubscribe_t is not None and not mini_program
        record = {
            "subscribe": 0 if unsubscribed else 1,
            "openid": openid,
            "nickname": nick,
            "sex": sex,
            "language": "zh_CN",
            "city": city,
            "province": province,
            "country": country,
            "subscribe_time": ctx.window.unix(subscribed),
        }
        if union:
            record["unionid"] = union
        record["remark"] = remark
        record["tagid_list"] = tags
        record["subscribe_scene"] = scene
        if p.binds_phone:
            record["phone"] = noise.mobile_text(p.mobile, rng)
        self.followers.append(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
        self.truth.add("wechat", openid, p.pid, evidence)

    def _write_events(self, main: str, mall_openid: str, facts: Facts) -> None:
        window = self.ctx.window
        unix_base = window.unix_base
        # Built by hand, not with json.dumps: values are plain ASCII / Han text, and it is ~5x
        # faster at millions of lines.
        lines: list[tuple[int, str]] = []
        for event in facts.wechat:
            t, kind = event[0], event[1]
            head = f'{{"openid":"{main}","event_type":"{kind}","event_time":{unix_base + t}'
            if kind == "article_read" or kind == "share":
                lines.append((t, f'{head},"article_id":"{event[2]}","category":"{event[3]}"}}\n'))
            elif kind == "menu_click":
                lines.append((t, f'{head},"menu_key":"{event[2]}"}}\n'))
            else:
                lines.append((t, f'{head},"invited_openid":"{event[2]}"}}\n'))
        mall = [o for o in facts.orders if o.channel == "mall"]
        for order in mall:
            self._mall_orders_seen += 1
            number = ids.sequence(self.chunk_no, self._mall_orders_seen)
            order_id = f"WX{window.compact[order.t // DAY]}{number:09d}"
            head = (f'{{"openid":"{mall_openid}","event_type":"mall_order",'
                    f'"event_time":{unix_base + order.t},"order_id":"{order_id}"')
            for product, qty, price in order.lines:
                fen = round(qty * price * 100)
                lines.append((order.t, f'{head},"amount_fen":{fen},'
                                       f'"category":"{CATEGORIES[product.category]}",'
                                       f'"quantity":{qty}}}\n'))
        if mall:
            lines.sort(key=lambda line: line[0])
        bad = self.bad_event_line
        start = len(self.events)
        if bad is not None and start <= bad < start + len(lines):
            t, text = lines[bad - start]
            lines[bad - start] = (t, text[: len(text) // 2] + "\n")   # cut off mid-object
        self.events.extend(text for _, text in lines)
