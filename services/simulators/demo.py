"""The simulated departments' data: three fixed demo citizens and everyone else.

The three demo citizens (DESIGN, "Demo data") have hand-written records chosen so their health
codes come out ``G``, ``R`` and ``Y``. Any other valid ID number gets plausible records derived
deterministically from a hash of it, so the same person looks the same on every call and in
every simulator, and a fraction of people exercise the unhappy paths (blocked transit cards,
suspended social-security cards, positive or pending tests, risk-area visits).

Times are relative to "now", floored to the hour so answers are stable within an hour (what a
cache in front of a department would see) while "1 day ago" stays roughly 1 day ago.

The Structs here are the simulators' own: deliberately not the clients' Structs in
:mod:`services.departments`, so a client/contract drift shows up in the integration tests.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from typing import Final, Literal

import msgspec

from services.idnumber import birth_date, valid_id_number

__all__ = [
    "DEMO_CITIZENS",
    "Card",
    "ContributionMonth",
    "Contributions",
    "DemoCitizen",
    "Dose",
    "Doses",
    "Risk",
    "RiskVisit",
    "SocsecCard",
    "TestRecord",
    "Tests",
    "Trip",
    "Trips",
    "contributions",
    "health_risk",
    "health_tests",
    "registry_name",
    "socsec_card",
    "transport_card",
    "trips",
    "vaccinations",
    "valid_id_number",
]


class DemoCitizen(msgspec.Struct, frozen=True, kw_only=True):
    """A seeded demo citizen and the health code the rules should give them."""

    phone: str
    name: str
    id_number: str
    health_code: Literal["G", "Y", "R"]


ZHANG_SAN: Final = DemoCitizen(phone="13800000001", name="张三", id_number="110101199003070011", health_code="G")
LI_SI: Final = DemoCitizen(phone="13800000002", name="李四", id_number="110101198512120019", health_code="R")
WANG_WU: Final = DemoCitizen(phone="13800000003", name="王五", id_number="110101197706150019", health_code="Y")
DEMO_CITIZENS: Final = (ZHANG_SAN, LI_SI, WANG_WU)
_DEMO_BY_ID: Final = {citizen.id_number: citizen for citizen in DEMO_CITIZENS}


# --- response shapes (DESIGN, "Department contracts") ---------------------------------------


TestResult = Literal["negative", "positive", "pending"]


class TestRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of health ``GET /v1/me/tests``."""

    __test__ = False  # not a pytest test class, despite the name

    id: str
    sampled_at: dt.datetime
    kind: str
    result: TestResult
    lab: str


class Tests(msgspec.Struct, frozen=True, kw_only=True):
    """Health ``GET /v1/me/tests``."""

    __test__ = False

    tests: list[TestRecord]


class Dose(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of health ``GET /v1/me/vaccinations``."""

    date: dt.date
    vaccine: str
    dose: int


class Doses(msgspec.Struct, frozen=True, kw_only=True):
    """Health ``GET /v1/me/vaccinations``."""

    doses: list[Dose]


class RiskVisit(msgspec.Struct, frozen=True, kw_only=True):
    """One risk-area visit."""

    area: str
    at: dt.datetime


class Risk(msgspec.Struct, frozen=True, kw_only=True):
    """Health ``GET /v1/me/risk``."""

    close_contact: bool
    quarantine_until: dt.datetime | None
    risk_area_visits: list[RiskVisit]


class Card(msgspec.Struct, frozen=True, kw_only=True):
    """Transport ``GET /v1/me/card``."""

    card_no: str
    balance_cents: int
    status: Literal["active", "blocked"]


class Trip(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of transport ``GET /v1/me/trips``."""

    at: dt.datetime
    line: str
    station: str
    fare_cents: int


class Trips(msgspec.Struct, frozen=True, kw_only=True):
    """Transport ``GET /v1/me/trips``."""

    trips: list[Trip]


class SocsecCard(msgspec.Struct, frozen=True, kw_only=True):
    """Social security ``GET /v1/me/card``."""

    card_no: str
    status: Literal["active", "suspended"]
    issued_city: str
    medical_balance_cents: int


class ContributionMonth(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of social security ``GET /v1/me/contributions``."""

    month: str
    pension_cents: int
    medical_cents: int
    employer: str


class Contributions(msgspec.Struct, frozen=True, kw_only=True):
    """Social security ``GET /v1/me/contributions``."""

    months: list[ContributionMonth]


# --- deterministic generation ---------------------------------------------------------------

_SURNAMES: Final = "".join(
    ("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹", "彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈")
)
_GIVEN: Final = "".join(
    ("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰", "萍红建文辉力海鹏飞欣怡子轩浩宇雨晨思博佳琪梓涵")
)
_LABS: Final = ("市疾控中心实验室", "市第一人民医院检验科", "金域医学检验所", "迪安诊断检验中心")
_VACCINES: Final = ("北京生物 新冠病毒灭活疫苗", "科兴 克尔来福", "智飞 重组新冠病毒蛋白疫苗")
_RISK_AREAS: Final = ("丰台区新村街道", "朝阳区呼家楼街道", "海淀区学院路街道", "西城区金融街街道", "大兴区西红门镇")
_LINES: Final = ("1号线", "2号线", "4号线", "6号线", "10号线", "公交52路", "公交300路")
_STATIONS: Final = (
    "天安门东",
    "西单",
    "国贸",
    "北京站",
    "北京南站",
    "中关村",
    "五道口",
    "朝阳门",
    "东直门",
    "望京",
    "宋家庄",
    "西直门",
)
_FARES: Final = (200, 300, 300, 400, 500, 600)
_EMPLOYERS: Final = (
    "星河信息技术有限公司",
    "城建集团第三工程有限公司",
    "市第二人民医院",
    "华联商贸有限公司",
    "长城物流股份有限公司",
    "蓝海餐饮管理有限公司",
    "市公共交通集团",
)
_PROVINCE_CAPITALS: Final = {
    "11": "北京市",
    "12": "天津市",
    "13": "石家庄市",
    "14": "太原市",
    "15": "呼和浩特市",
    "21": "沈阳市",
    "22": "长春市",
    "23": "哈尔滨市",
    "31": "上海市",
    "32": "南京市",
    "33": "杭州市",
    "34": "合肥市",
    "35": "福州市",
    "36": "南昌市",
    "37": "济南市",
    "41": "郑州市",
    "42": "武汉市",
    "43": "长沙市",
    "44": "广州市",
    "45": "南宁市",
    "46": "海口市",
    "50": "重庆市",
    "51": "成都市",
    "52": "贵阳市",
    "53": "昆明市",
    "54": "拉萨市",
    "61": "西安市",
    "62": "兰州市",
    "63": "西宁市",
    "64": "银川市",
    "65": "乌鲁木齐市",
}
_DAY: Final = dt.timedelta(days=1)
_HOUR: Final = dt.timedelta(hours=1)
_MAX_TRIP_DAYS: Final = 92  # how far back trips go, so a huge `since` range stays cheap


def _digest(id_number: str, *salt: object) -> bytes:
    return hashlib.sha256("|".join([id_number, *map(str, salt)]).encode()).digest()


def _rng(id_number: str, *salt: object) -> random.Random:
    """A random stream fixed by the ID number and a salt: same person, same data, every call."""
    return random.Random(int.from_bytes(_digest(id_number, *salt)[:8], "big"))  # noqa: S311 - fake data, not crypto


def _digits(id_number: str, salt: str, count: int) -> str:
    return str(int.from_bytes(_digest(id_number, salt), "big"))[-count:].zfill(count)


def _anchor(now: dt.datetime | None) -> dt.datetime:
    current = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    return current.replace(minute=0, second=0, microsecond=0)


def registry_name(id_number: str) -> str:
    """The name the population registry holds for ``id_number``.

    The demo names for the demo ID numbers; otherwise a deterministic Chinese name (a common
    surname and one or two given-name characters) derived from the ID number.
    """
    demo = _DEMO_BY_ID.get(id_number)
    if demo is not None:
        return demo.name
    rng = _rng(id_number, "name")
    given = "".join(rng.choice(_GIVEN) for _ in range(rng.choice((1, 2, 2))))
    return rng.choice(_SURNAMES) + given


def _test(id_number: str, index: int, sampled_at: dt.datetime, result: TestResult, lab: str) -> TestRecord:
    test_id = "NAT" + _digest(id_number, "test", index).hex()[:12].upper()
    return TestRecord(id=test_id, sampled_at=sampled_at, kind="pcr", result=result, lab=lab)


def health_tests(id_number: str, now: dt.datetime | None = None) -> Tests:
    """Test results, newest first."""
    anchor = _anchor(now)
    rng = _rng(id_number, "tests")
    lab = rng.choice(_LABS)
    plan: list[tuple[dt.datetime, TestResult]]
    if id_number == ZHANG_SAN.id_number:
        plan = [(anchor - _DAY, "negative"), (anchor - 8 * _DAY, "negative")]
    elif id_number == LI_SI.id_number:
        plan = [(anchor - 2 * _DAY, "positive"), (anchor - 9 * _DAY, "negative")]
    elif id_number == WANG_WU.id_number:
        plan = [(anchor - 10 * _DAY, "negative"), (anchor - 17 * _DAY, "negative")]
    else:
        at = anchor - rng.randint(1, 6) * _DAY - rng.randint(0, 12) * _HOUR
        roll = rng.random()
        if roll < 0.03:
            plan = [(at, "positive")]
        elif roll < 0.08:
            plan = [(anchor - rng.randint(2, 10) * _HOUR, "pending"), (at, "negative")]
        else:
            plan = [(at, "negative")]
        for _ in range(rng.randint(0, 3)):
            at -= rng.randint(3, 7) * _DAY
            plan.append((at, "negative"))
    return Tests(tests=[_test(id_number, i, at, result, lab) for i, (at, result) in enumerate(plan)])


def vaccinations(id_number: str) -> Doses:
    """Vaccine doses, oldest first."""
    rng = _rng(id_number, "vaccinations")
    count = 3 if id_number in _DEMO_BY_ID else rng.choice((0, 1, 2, 2, 3, 3, 3, 3, 3, 3))
    vaccine = rng.choice(_VACCINES)
    day = dt.date(2021, 3, 1) + dt.timedelta(days=rng.randint(0, 120))
    doses = []
    for number in range(1, count + 1):
        doses.append(Dose(date=day, vaccine=vaccine, dose=number))
        day += dt.timedelta(days=28 if number == 1 else 180 + rng.randint(0, 60))
    return Doses(doses=doses)


def health_risk(id_number: str, now: dt.datetime | None = None) -> Risk:
    """Close-contact and risk-area status, consistent with :func:`health_tests`."""
    anchor = _anchor(now)
    if id_number == WANG_WU.id_number:
        return Risk(
            close_contact=False,
            quarantine_until=None,
            risk_area_visits=[RiskVisit(area=_RISK_AREAS[0], at=anchor - 3 * _DAY)],
        )
    if id_number in _DEMO_BY_ID and id_number != LI_SI.id_number:
        return Risk(close_contact=False, quarantine_until=None, risk_area_visits=[])
    quarantine_until: dt.datetime | None = None
    positive = [t for t in health_tests(id_number, now).tests if t.result == "positive"]
    if positive:  # a positive case is isolated for 14 days from sampling
        quarantine_until = positive[0].sampled_at + 14 * _DAY
    rng = _rng(id_number, "risk")
    close_contact = id_number not in _DEMO_BY_ID and rng.random() < 0.02
    if close_contact and quarantine_until is None:
        quarantine_until = anchor + rng.randint(3, 10) * _DAY
    visits = []
    if id_number not in _DEMO_BY_ID and rng.random() < 0.05:
        visits.append(RiskVisit(area=rng.choice(_RISK_AREAS), at=anchor - rng.randint(2, 6) * _DAY))
    return Risk(close_contact=close_contact, quarantine_until=quarantine_until, risk_area_visits=visits)


def transport_card(id_number: str) -> Card:
    """The transit card; about 8% of non-demo cards are blocked."""
    rng = _rng(id_number, "transport")
    balances = {ZHANG_SAN.id_number: 5230, LI_SI.id_number: 12000, WANG_WU.id_number: 860}
    blocked = id_number not in _DEMO_BY_ID and rng.random() < 0.08
    return Card(
        card_no="3100" + _digits(id_number, "transport-card", 12),
        balance_cents=balances.get(id_number, rng.randint(0, 300) * 100 + rng.choice((0, 50))),
        status="blocked" if blocked else "active",
    )


def trips(id_number: str, since: dt.datetime, now: dt.datetime | None = None) -> Trips:
    """Rides from ``since`` (at most ~3 months back) until now, oldest first.

    Each calendar day's rides are fixed by the ID number and the date, so they do not move as
    time passes.
    """
    current = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    since = since.astimezone(dt.UTC) if since.tzinfo else since.replace(tzinfo=dt.UTC)  # naive means UTC
    start = max(since, current - _MAX_TRIP_DAYS * _DAY)
    found: list[Trip] = []
    day = start.date()
    while day <= current.date():
        rng = _rng(id_number, "trips", day.isoformat())
        midnight = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
        count = rng.choice((0, 0, 1, 2, 2, 3, 4))
        times = sorted(midnight + dt.timedelta(minutes=rng.randint(6 * 60, 22 * 60)) for _ in range(count))
        for at in times:
            trip = Trip(at=at, line=rng.choice(_LINES), station=rng.choice(_STATIONS), fare_cents=rng.choice(_FARES))
            if start <= at <= current:
                found.append(trip)
        day += _DAY
    return Trips(trips=found)


def socsec_card(id_number: str) -> SocsecCard:
    """The social-security card; about 5% of non-demo cards are suspended."""
    rng = _rng(id_number, "socsec")
    balances = {ZHANG_SAN.id_number: 356_780, LI_SI.id_number: 1_204_550, WANG_WU.id_number: 88_020}
    suspended = id_number not in _DEMO_BY_ID and rng.random() < 0.05
    return SocsecCard(
        card_no=chr(ord("A") + rng.randint(0, 25)) + _digits(id_number, "socsec-card", 8),
        status="suspended" if suspended else "active",
        issued_city=_PROVINCE_CAPITALS.get(id_number[:2], "长沙市"),
        medical_balance_cents=balances.get(id_number, rng.randint(0, 500_000)),
    )


def _employer(id_number: str, year: int) -> str:
    fixed = {
        ZHANG_SAN.id_number: "星河信息技术有限公司",
        LI_SI.id_number: "市第二人民医院",
        WANG_WU.id_number: "城建集团第三工程有限公司",
    }
    # People change jobs now and then: a new draw every four years.
    return fixed.get(id_number) or _rng(id_number, "employer", year // 4).choice(_EMPLOYERS)


def contributions(id_number: str, year: int, now: dt.datetime | None = None) -> Contributions:
    """Monthly contributions in ``year``: from age 22, up to last month, none while suspended."""
    current = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    born = birth_date(id_number)
    if born is None or year > current.year or year < born.year + 22:
        return Contributions(months=[])
    if year == current.year and socsec_card(id_number).status == "suspended":
        return Contributions(months=[])
    last_month = 12 if year < current.year else current.month - 1
    base_yuan = _rng(id_number, "salary").randint(4_000, 30_000)
    salary_cents = int(base_yuan * 100 * 1.04 ** (year - 2020))
    employer = _employer(id_number, year)
    months = [
        ContributionMonth(
            month=f"{year:04d}-{month:02d}",
            pension_cents=salary_cents * 8 // 100,  # employee's 8% pension share
            medical_cents=salary_cents * 2 // 100,  # and 2% medical share
            employer=employer,
        )
        for month in range(1, last_month + 1)
    ]
    return Contributions(months=months)
