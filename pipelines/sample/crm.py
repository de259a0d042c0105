"""CRM exports, as a 销帮帮 / 纷享销客 style CRM writes them: customers.csv, followups.csv
and opportunities.csv. This module renders one chunk's rows; sink.py writes the files."""

from __future__ import annotations

import csv
import io
import random
import zlib

from pipelines.sample import ids, noise
from pipelines.sample.behaviour import Facts
from pipelines.sample.context import RunContext
from pipelines.sample.persons import Person
from pipelines.sample.reference import INDUSTRIES, LEAD_SOURCE_NAMES
from pipelines.sample.truth import TruthRenderer

CUSTOMERS = "crm/customers.csv"
FOLLOWUPS = "crm/followups.csv"
OPPORTUNITIES = "crm/opportunities.csv"
CUSTOMER_HEADER = ["客户编号", "客户名称", "手机", "邮箱", "性别", "出生日期", "省份", "城市",
                   "地址", "行业", "客户来源", "客户阶段", "负责人", "创建时间", "营销授权"]
FOLLOWUP_HEADER = ["客户编号", "跟进时间", "跟进方式", "跟进内容", "跟进人"]
OPPORTUNITY_HEADER = ["商机编号", "客户编号", "阶段", "进入阶段时间", "金额"]

_GENDER = {"M": "男", "F": "女"}


def _consent_text(code: str) -> str:
    """Marketing consent (营销授权): 是 for most, 否 for some, blank where never asked. Derived
    from the code, not drawn from the person's random stream, so adding it changed no other value."""
    bucket = zlib.crc32(code.encode()) % 100
    return "是" if bucket < 80 else "否" if bucket < 92 else ""


def _csv_field(value: str) -> str:
    if any(c in value for c in ',"\r\n'):
        return '"' + value.replace('"', '""') + '"'
    return value


class CrmRenderer:
    def __init__(self, ctx: RunContext, chunk_no: int, truth: TruthRenderer):
        self.ctx, self.chunk_no, self.truth = ctx, chunk_no, truth
        self._buffers = {name: io.StringIO() for name in (CUSTOMERS, FOLLOWUPS, OPPORTUNITIES)}
        self._customers, self._followups, self._opportunities = (
            csv.writer(buffer) for buffer in self._buffers.values())
        self.counts = dict.fromkeys(self._buffers, 0)
        self.malformed_row: int | None = None   # chunk row written with an unquoted comma
        self._opportunities_seen = 0

    def output(self) -> dict[str, tuple[str, int]]:
        return {name: (buffer.getvalue(), self.counts[name])
                for name, buffer in self._buffers.items()}

    # Customers -------------------------------------------------------------------------

    def write(self, p: Person, facts: Facts) -> None:
        if not p.in_crm:
            return
        rng, ctx = p.rng, self.ctx
        code = ids.crm_code(ctx.seed, p.index)
        phone_text = self._customer(p, rng, code, duplicate=False)
        self._write_followups(code, facts.followups, ctx.reps[p.rep], rng)
        self._write_opportunities(p, rng, code)
        if p.crm_duplicate:
            dup_code = ids.crm_code(ctx.seed, p.index, duplicate=True)
            self._customer(p, rng, dup_code, duplicate=True, first_phone=phone_text)
            self._write_followups(dup_code, facts.dup_followups, ctx.reps[p.dup_rep], rng)

    def _customer(self, p: Person, rng: random.Random, code: str, duplicate: bool,
                  first_phone: str = "") -> str:
        ctx, window = self.ctx, self.ctx.window
        evidence = []
        # Phone: the second rep types the number differently, or not at all.
        r = rng.random()
        if p.crm_switchboard is not None and not duplicate:
            phone = ctx.switchboards[p.crm_switchboard]
        elif duplicate:
            phone = noise.other_mobile_text(p.mobile, first_phone, rng) if r < 0.6 else ""
        elif r < 0.08:
            phone = ""
        elif r < 0.12:
            phone = noise.nullish(rng)
        else:
            phone = noise.mobile_text(p.mobile, rng)
        if phone and phone not in noise.NULLISH and phone not in ctx.switchboards:
            evidence.append("phone")
        # Email: often empty; of two duplicate records usually only one has it.
        r = rng.random()
        if p.email and r < (0.3 if duplicate else 0.75):
            email = noise.email_text(p.email, rng)
            evidence.append("email")
        else:
            email = noise.nullish(rng) if r > 0.93 else ""
        if code == p.erp_crm_ref:
            evidence.append("crm_ref")
        name = noise.han_name_text(p.surname, p.given, rng)
        evidence.append("name")
        r = rng.random()
        gender = _GENDER[p.gender] if r < 0.88 else "未知" if r < 0.93 else ""
        r = rng.random()
        if r < (0.3 if duplicate else 0.62):
            birth = noise.birth_date_text(p.birth, rng)
            evidence.append("birth_date")
        else:
            birth = noise.nullish(rng) if r > 0.94 else ""
        city = p.city
        if rng.random() < 0.97:
            province = noise.region_text(city.province, city.province_short, rng)
            city_text = noise.region_text(city.name, city.short, rng)
            evidence.append("city")
        else:
            province = city_text = ""
        r = rng.random()
        if r < (0.4 if duplicate else 0.8):
            address = p.street
            evidence.append("address")
        else:
            address = noise.nullish(rng) if r > 0.95 else ""
        r = rng.random()
        industry = p.industry if r < 0.88 else "" if r < 0.96 else noise.nullish(rng)
        if duplicate:
            lead = p.lead_source if rng.random() < 0.5 else LEAD_SOURCE_NAMES[
                int(rng.random() * len(LEAD_SOURCE_NAMES))]
            stage = "线索" if rng.random() < 0.6 else "潜在客户"
            rep, created = ctx.reps[p.dup_rep], p.crm_dup_created
            if industry and rng.random() < 0.3:
                industry = INDUSTRIES[int(rng.random() * len(INDUSTRIES))]
        else:
            lead, stage, rep = p.lead_source, p.crm_stage(), ctx.reps[p.rep]
            created = p.crm_created
        created_text = (window.datetime_text(created) if rng.random() < 0.7
                        else window.datetime_text_short(created))
        row = [code, name, phone, email, gender, birth, province, city_text, address, industry,
               lead, stage, rep, created_text, _consent_text(code)]
        if self.counts[CUSTOMERS] == self.malformed_row:
            # An address typed with a comma and exported unquoted: one field too many.
            row[8] = f"{p.street},近地铁站"
            self._buffers[CUSTOMERS].write(
                ",".join(v if i == 8 else _csv_field(v) for i, v in enumerate(row)) + "\r\n")
        else:
            self._customers.writerow(row)
        self.counts[CUSTOMERS] += 1
        self.truth.add("crm", code, p.pid, evidence)
        return phone

    # Follow-ups and opportunities ------------------------------------------------------

    def _write_followups(self, code: str, rows: list, owner: str, rng: random.Random) -> None:
        window, reps = self.ctx.window, self.ctx.reps
        for t, method, content, by_colleague in rows:
            who = reps[int(rng.random() * len(reps))] if by_colleague else owner
            self._followups.writerow([code, window.datetime_text(t), method, content, who])
        self.counts[FOLLOWUPS] += len(rows)

    def _write_opportunities(self, p: Person, rng: random.Random, code: str) -> None:
        iso = self.ctx.window.iso
        for opp in p.opportunities:
            self._opportunities_seen += 1
            opp_code = f"SJ{ids.sequence(self.chunk_no, self._opportunities_seen):010d}"
            for stage, day in opp.stages:
                # The amount is an estimate until a quote exists (方案报价 and after).
                amount = opp.quote if stage not in ("初步接洽", "需求确认") else opp.estimate
                self._opportunities.writerow([opp_code, code, stage, iso[day],
                                              noise.amount_text(amount, rng)])
                self.counts[OPPORTUNITIES] += 1
