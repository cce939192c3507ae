"""The simulators against the fixed department contracts, over real HTTP.

Shapes are checked on the raw JSON (not through the clients' Structs) so a drift between a
simulator and the contract cannot hide behind a shared definition.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from core.signing import Ed25519Signer
from services import check_digit, valid_id_number
from services.simulators import RunningServer, registry_name

Simulators = dict[str, RunningServer]
TokenFactory = Callable[..., str]

ZHANG_SAN = "110101199003070011"  # negative test 1 day ago -> G
LI_SI = "110101198512120019"  # positive test 2 days ago -> R
WANG_WU = "110101197706150019"  # last test 10 days ago + risk-area visit -> Y
OTHER = "43010219950615001" + check_digit("43010219950615001")

CONTRACT_ROUTES = [
    ("health", "GET", "/v1/me/tests", None),
    ("health", "GET", "/v1/me/vaccinations", None),
    ("health", "GET", "/v1/me/risk", None),
    ("transport", "GET", "/v1/me/card", None),
    ("transport", "GET", "/v1/me/trips", None),
    ("socsec", "GET", "/v1/me/card", None),
    ("socsec", "GET", "/v1/me/contributions", None),
    ("registry", "POST", "/v1/verify", {"name": "张三", "id_number": ZHANG_SAN}),
    ("liveness", "POST", "/v1/liveness", {"session_token": "live-abc"}),
    ("sms", "POST", "/v1/messages", {"to": "13800000001", "text": "hello"}),
    ("sms", "GET", "/v1/messages", None),
    ("miniprogram", "POST", "/v1/code2session", {"code": "mp-alice-n1"}),
    ("hukou", "POST", "/v1/cases", {"application_number": "HJ1", "matter": "m", "form": {}, "materials": []}),
    ("education", "POST", "/v1/cases", {"application_number": "JY1", "matter": "m", "form": {}, "materials": []}),
]


def at(value: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert parsed.tzinfo is not None, "times must carry a zone"
    return parsed


def ago(value: str) -> dt.timedelta:
    return dt.datetime.now(dt.UTC) - at(value)


async def call(
    http: httpx.AsyncClient,
    simulators: dict[str, RunningServer],
    department: str,
    method: str,
    path: str,
    token: str | None,
    body: Any = None,
    params: dict[str, str] | None = None,
) -> httpx.Response:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    url = simulators[department].base_url + path
    return await http.request(method, url, headers=headers, json=body, params=params)


# --- health -----------------------------------------------------------------------------------


async def test_health_tests_shape_and_demo_citizens(
    http: httpx.AsyncClient, simulators: Simulators, make_token: TokenFactory
) -> None:
    results = {}
    for id_number in (ZHANG_SAN, LI_SI, WANG_WU, OTHER):
        response = await call(http, simulators, "health", "GET", "/v1/me/tests", make_token("health", id_number))
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/json")
        body = response.json()
        assert set(body) == {"tests"}
        assert body["tests"], "everyone has at least one test"
        for test in body["tests"]:
            assert set(test) == {"id", "sampled_at", "kind", "result", "lab"}
            assert test["result"] in {"negative", "positive", "pending"}
            assert isinstance(test["id"], str)
            assert isinstance(test["kind"], str)
            assert isinstance(test["lab"], str)
            at(test["sampled_at"])
        results[id_number] = body["tests"]

    latest = {key: max(tests, key=lambda t: at(t["sampled_at"])) for key, tests in results.items()}
    assert latest[ZHANG_SAN]["result"] == "negative"
    assert dt.timedelta(hours=23) < ago(latest[ZHANG_SAN]["sampled_at"]) <= dt.timedelta(hours=25)
    assert latest[LI_SI]["result"] == "positive"
    assert dt.timedelta(hours=47) < ago(latest[LI_SI]["sampled_at"]) <= dt.timedelta(hours=49)
    assert latest[WANG_WU]["result"] == "negative"
    assert dt.timedelta(days=10) <= ago(latest[WANG_WU]["sampled_at"]) <= dt.timedelta(days=10, hours=1)


async def test_health_risk_shape_and_demo_citizens(
    http: httpx.AsyncClient, simulators: Simulators, make_token: TokenFactory
) -> None:
    bodies = {}
    for id_number in (ZHANG_SAN, LI_SI, WANG_WU, OTHER):
        response = await call(http, simulators, "health", "GET", "/v1/me/risk", make_token("health", id_number))
        assert response.status_code == 200
        body = response.json()
        assert set(body) == {"close_contact", "quarantine_until", "risk_area_visits"}
        assert isinstance(body["close_contact"], bool)
        assert body["quarantine_until"] is None or at(body["quarantine_until"])
        for visit in body["risk_area_visits"]:
            assert set(visit) == {"area", "at"}
            assert isinstance(visit["area"], str)
            at(visit["at"])
        bodies[id_number] = body
    assert bodies[ZHANG_SAN] == {"close_contact": False, "quarantine_until": None, "risk_area_visits": []}
    assert bodies[WANG_WU]["risk_area_visits"], "王五 visited a risk area"
    assert not bodies[WANG_WU]["close_contact"]
    assert bodies[LI_SI]["risk_area_visits"] == []
    assert at(bodies[LI_SI]["quarantine_until"]) > dt.datetime.now(dt.UTC), "a positive case is isolated"


async def test_health_vaccinations_shape(
    http: httpx.AsyncClient, simulators: Simulators, make_token: TokenFactory
) -> None:
    for id_number in (ZHANG_SAN, LI_SI, WANG_WU, OTHER):
        token = make_token("health", id_number)
        response = await call(http, simulators, "health", "GET", "/v1/me/vaccinations", token)
        assert response.status_code == 200
        body = response.json()
        assert set(body) == {"doses"}
        for number, dose in enumerate(body["doses"], start=1):
            assert set(dose) == {"date", "vaccine", "dose"}
            dt.date.fromisoformat(dose["date"])
            assert dose["dose"] == number
    demo = await call(http, simulators, "health", "GET", "/v1/me/vaccinations", make_token("health", ZHANG_SAN))
    assert len(demo.json()["doses"]) == 3


# --- transport --------------------------------------------------------------------------------


async def test_transport_card_and_trips(
    http: httpx.AsyncClient, simulators: Simulators, make_token: TokenFactory
) -> None:
    for id_number in (ZHANG_SAN, LI_SI, WANG_WU):
        response = await call(http, simulators, "transport", "GET", "/v1/me/card", make_token("transport", id_number))
        assert response.status_code == 200
        card = response.json()
        assert set(card) == {"card_no", "balance_cents", "status"}
        assert card["status"] == "active", "every demo citizen's card is active"
        assert isinstance(card["balance_cents"], int)
        assert isinstance(card["card_no"], str)

    since = (dt.datetime.now(dt.UTC) - dt.timedelta(days=20)).isoformat().replace("+00:00", "Z")
    token = make_token("transport", ZHANG_SAN)
    response = await call(http, simulators, "transport", "GET", "/v1/me/trips", token, params={"since": since})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"trips"}
    assert body["trips"], "20 days of commuting"
    for trip in body["trips"]:
        assert set(trip) == {"at", "line", "station", "fare_cents"}
        assert at(trip["at"]) >= at(since)
        assert at(trip["at"]) <= dt.datetime.now(dt.UTC)
        assert isinstance(trip["fare_cents"], int)
    # Trips are a function of the person and the day: asking again gives the same answer.
    again = await call(http, simulators, "transport", "GET", "/v1/me/trips", token, params={"since": since})
    assert again.json() == body

    no_since = await call(http, simulators, "transport", "GET", "/v1/me/trips", token)
    assert no_since.status_code == 200
    bad = await call(http, simulators, "transport", "GET", "/v1/me/trips", token, params={"since": "yesterday"})
    assert bad.status_code == 400
    assert bad.headers["content-type"].startswith("application/problem+json")


# --- social security --------------------------------------------------------------------------


async def test_socsec_card_and_contributions(
    http: httpx.AsyncClient, simulators: Simulators, make_token: TokenFactory
) -> None:
    for id_number in (ZHANG_SAN, LI_SI, WANG_WU):
        response = await call(http, simulators, "socsec", "GET", "/v1/me/card", make_token("socsec", id_number))
        assert response.status_code == 200
        card = response.json()
        assert set(card) == {"card_no", "status", "issued_city", "medical_balance_cents"}
        assert card["status"] == "active"
        assert card["issued_city"] == "北京市"  # 110101: 北京市东城区

    token = make_token("socsec", ZHANG_SAN)
    last_year = dt.datetime.now(dt.UTC).year - 1
    response = await call(
        http, simulators, "socsec", "GET", "/v1/me/contributions", token, params={"year": str(last_year)}
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"months"}
    assert [m["month"] for m in body["months"]] == [f"{last_year}-{n:02d}" for n in range(1, 13)]
    for month in body["months"]:
        assert set(month) == {"month", "pension_cents", "medical_cents", "employer"}
        assert isinstance(month["pension_cents"], int)
        assert month["pension_cents"] > month["medical_cents"] > 0

    future = await call(http, simulators, "socsec", "GET", "/v1/me/contributions", token, params={"year": "2099"})
    assert future.json() == {"months": []}
    before_work = await call(http, simulators, "socsec", "GET", "/v1/me/contributions", token, params={"year": "1995"})
    assert before_work.json() == {"months": []}  # 张三 was five


# --- registry, liveness, sms, mini-program ------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "id_number", "match"),
    [
        ("张三", ZHANG_SAN, True),
        ("李四", LI_SI, True),
        ("王五", WANG_WU, True),
        ("李四", ZHANG_SAN, False),
        ("张三", ZHANG_SAN[:-1] + "2", False),  # bad check digit
        (registry_name(OTHER), OTHER, True),
        (registry_name(OTHER) + "某", OTHER, False),
    ],
)
async def test_registry_verify(
    http: httpx.AsyncClient, simulators: Simulators, make_token: TokenFactory, name: str, id_number: str, match: bool
) -> None:
    token = make_token("registry", id_number)
    response = await call(
        http, simulators, "registry", "POST", "/v1/verify", token, {"name": name, "id_number": id_number}
    )
    assert response.status_code == 200
    assert response.json() == {"match": match}


async def test_registry_refuses_a_body_about_someone_else(
    http: httpx.AsyncClient, simulators: Simulators, make_token: TokenFactory
) -> None:
    token = make_token("registry", LI_SI)
    body = {"name": "张三", "id_number": ZHANG_SAN}
    response = await call(http, simulators, "registry", "POST", "/v1/verify", token, body)
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("application/problem+json")


def test_registry_names_are_deterministic_chinese_names() -> None:
    assert registry_name(ZHANG_SAN) == "张三"
    assert registry_name(OTHER) == registry_name(OTHER)
    assert re.fullmatch(r"[\u4e00-\u9fff]{2,3}", registry_name(OTHER))
    assert valid_id_number(OTHER)


@pytest.mark.parametrize(("session_token", "passed"), [("live-123", True), ("live-", True), ("dead-123", False)])
async def test_liveness_dev_mode(
    http: httpx.AsyncClient, simulators: Simulators, make_token: TokenFactory, session_token: str, passed: bool
) -> None:
    token = make_token("liveness", ZHANG_SAN)
    body = {"session_token": session_token}
    response = await call(http, simulators, "liveness", "POST", "/v1/liveness", token, body)
    assert response.status_code == 200
    answer = response.json()
    assert set(answer) == {"passed", "score"}
    assert answer["passed"] is passed
    assert 0.0 <= answer["score"] <= 1.0


async def test_liveness_outside_dev_mode_passes_nobody(signer: Ed25519Signer, make_token: TokenFactory) -> None:
    from services import StaticJwks
    from services.simulators import SIMULATORS, start_in_process

    app = SIMULATORS["liveness"](StaticJwks({"keys": [signer.jwk()]}), dev_mode=False)
    async with await start_in_process(app) as server, httpx.AsyncClient(base_url=server.base_url) as client:
        response = await client.post(
            "/v1/liveness",
            json={"session_token": "live-123"},
            headers={"Authorization": f"Bearer {make_token('liveness')}"},
        )
    assert response.status_code == 200
    assert response.json()["passed"] is False


async def test_sms_send_and_outbox(http: httpx.AsyncClient, simulators: Simulators, make_token: TokenFactory) -> None:
    token = make_token("sms", "onecity")
    phone = "13912345678"
    for text in ("您的验证码是 111111", "您的验证码是 222222"):
        response = await call(http, simulators, "sms", "POST", "/v1/messages", token, {"to": phone, "text": text})
        assert response.status_code == 202
    await call(http, simulators, "sms", "POST", "/v1/messages", token, {"to": "13700000000", "text": "other"})

    response = await call(http, simulators, "sms", "GET", "/v1/messages", token, params={"to": phone})
    assert response.status_code == 200
    messages = response.json()["messages"]
    assert [m["text"] for m in messages] == ["您的验证码是 111111", "您的验证码是 222222"]
    for message in messages:
        assert set(message) == {"to", "text", "sent_at"}
        assert message["to"] == phone
        assert ago(message["sent_at"]) < dt.timedelta(seconds=10)

    bad = await call(http, simulators, "sms", "POST", "/v1/messages", token, {"to": "12345", "text": "x"})
    assert bad.status_code == 400
    assert bad.headers["content-type"].startswith("application/problem+json")


async def test_miniprogram_code2session(
    http: httpx.AsyncClient, simulators: Simulators, make_token: TokenFactory
) -> None:
    token = make_token("miniprogram", "onecity")

    async def exchange(code: str) -> httpx.Response:
        return await call(http, simulators, "miniprogram", "POST", "/v1/code2session", token, {"code": code})

    first = await exchange("mp-bob-1")
    assert first.status_code == 200
    assert set(first.json()) == {"openid", "unionid"}
    second = await exchange("mp-bob-2")
    assert second.json() == first.json(), "ids are stable per user"
    other = await exchange("mp-carol-1")
    assert other.json()["openid"] != first.json()["openid"]
    no_union = await exchange("mp-nounion_dave-1")
    assert set(no_union.json()) == {"openid"}

    reused = await exchange("mp-bob-1")
    assert reused.status_code == 400
    assert reused.headers["content-type"].startswith("application/problem+json")
    assert set(reused.json()) >= {"type", "title", "status", "detail"}
    for bad in ("bob-1", "mp-bob", "mp--1", "mp-b b-1", ""):
        assert (await exchange(bad)).status_code == 400


async def test_unknown_citizen_is_404(
    http: httpx.AsyncClient, simulators: Simulators, make_token: TokenFactory
) -> None:
    response = await call(http, simulators, "health", "GET", "/v1/me/tests", make_token("health", "onecity"))
    assert response.status_code == 404
    assert response.json()["status"] == 404


# --- the service token ------------------------------------------------------------------------


@pytest.mark.parametrize(("department", "method", "path", "body"), CONTRACT_ROUTES)
async def test_every_contract_route_requires_its_own_token(
    http: httpx.AsyncClient,
    simulators: Simulators,
    make_token: TokenFactory,
    department: str,
    method: str,
    path: str,
    body: Any,
) -> None:
    forger = Ed25519Signer("svc-test-1", Ed25519PrivateKey.generate())  # right kid, wrong key
    now = int(time.time())
    other_department = "transport" if department != "transport" else "health"
    bad_tokens = {
        "missing": None,
        "expired": make_token(department, iat=now - 300, exp=now - 240),
        "forged": make_token(department, signer_=forger),
        "other-department": make_token(other_department),
        "garbage": "abc.def.ghi",
    }
    for label, token in bad_tokens.items():
        response = await call(http, simulators, department, method, path, token, body)
        assert response.status_code == 401, label
        assert response.headers["content-type"].startswith("application/problem+json"), label
        assert response.headers["www-authenticate"].startswith("Bearer"), label
        problem = response.json()
        assert set(problem) == {"type", "title", "status", "detail"}
        assert problem["status"] == 401


async def test_the_citizen_comes_only_from_the_token(
    http: httpx.AsyncClient, simulators: Simulators, make_token: TokenFactory
) -> None:
    # A query parameter naming someone else changes nothing.
    token = make_token("health", ZHANG_SAN)
    response = await call(http, simulators, "health", "GET", "/v1/me/tests", token, params={"id_number": LI_SI})
    assert all(t["result"] == "negative" for t in response.json()["tests"])


@pytest.mark.parametrize("department", ["health", "socsec", "hukou", "education"])
async def test_cases_once_per_idempotency_key(
    http: httpx.AsyncClient, simulators: Simulators, make_token: TokenFactory, department: str
) -> None:
    base = simulators[department].base_url
    await http.delete(f"{base}/_sim/stats")
    auth = {"Authorization": f"Bearer {make_token(department, ZHANG_SAN)}"}
    body = {"application_number": "N-1", "matter": "some-matter", "form": {"a": "b"}, "materials": []}
    missing = await http.post(f"{base}/v1/cases", json=body, headers=auth)
    assert missing.status_code == 400 and missing.json()["type"] == "idempotency-key-required"
    first = await http.post(f"{base}/v1/cases", json=body, headers={**auth, "Idempotency-Key": "N-1:submit"})
    again = await http.post(f"{base}/v1/cases", json=body, headers={**auth, "Idempotency-Key": "N-1:submit"})
    assert first.status_code == again.status_code == 202
    assert first.json()["case_id"] == again.json()["case_id"]
    case_id = first.json()["case_id"]
    fixed = await http.post(
        f"{base}/v1/cases/{case_id}/resubmission",
        json={"form": {"a": "c"}},
        headers={**auth, "Idempotency-Key": "N-1:resubmit:1"},
    )
    assert fixed.status_code == 202 and fixed.json() == {"case_id": case_id}
    unknown = await http.post(
        f"{base}/v1/cases/nope/resubmission", json={"form": {}}, headers={**auth, "Idempotency-Key": "N-1:resubmit:1"}
    )
    assert unknown.status_code == 404
    stats = (await http.get(f"{base}/_sim/stats")).json()
    assert stats["cases"] == {"N-1": 1}
    refused = await http.post(f"{base}/v1/cases", json=body, headers={"Idempotency-Key": "N-1:submit"})
    assert refused.status_code == 401
