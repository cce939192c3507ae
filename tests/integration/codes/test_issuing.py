"""Issuing citizens' codes: the payload contract, statuses from the real simulators, levels."""

from __future__ import annotations

import base64
import json
import time
from datetime import datetime

import pytest

from codes.payload import LIFETIMES, CodeType
from codes.verifier import verify_code
from core.crypto import Vault
from core.db import Pool
from identity.seed import DEMO_CITIZENS
from services.departments.sms import SmsGateway
from services.simulators.demo import registry_name, transport_card
from tests.integration.codes.conftest import (
    LI_SI,
    WANG_WU,
    ZHANG_SAN,
    App,
    Demo,
    account_id_of,
    code_keys,
    find_id_number,
    issue,
)
from tests.support.citizens import bearer, login


def _parts(payload: str) -> tuple[dict[str, object], dict[str, object]]:
    header_b64, claims_b64, _ = payload[4:].split(".")

    def decode(part: str) -> dict[str, object]:
        value: dict[str, object] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
        return value

    return decode(header_b64), decode(claims_b64)


@pytest.mark.parametrize(("phone", "expected"), [(ZHANG_SAN, "G"), (LI_SI, "R"), (WANG_WU, "Y")])
async def test_demo_citizens_get_their_colours(app: App, demo: Demo, phone: str, expected: str) -> None:
    body = await issue(app.client, demo[phone])
    assert body["status"] == expected
    payload = body["payload"]
    assert payload.startswith("OC1:") and len(payload) <= 320
    header, claims = _parts(payload)
    assert list(header) == ["alg", "kid", "typ"] and header["alg"] == "EdDSA" and header["typ"] == "oc1"
    assert str(header["kid"]).startswith("code-")
    assert list(claims) == ["iss", "ct", "sub", "st", "iat", "exp", "jti", "rv"]
    assert claims["ct"] == "H" and claims["st"] == expected and claims["iss"] == "cs" and claims["rv"] == 1
    assert claims["exp"] - claims["iat"] == 180  # type: ignore[operator]
    assert body["rule_version"] == 1
    # The app refreshes two thirds into the code's life, before it expires.
    issued, refresh, expires = (datetime.fromisoformat(body[k]) for k in ("issued_at", "refresh_after", "expires_at"))
    assert issued < refresh < expires
    # Offline, with the published keys, the code verifies.
    result = verify_code(payload, await code_keys(app.client), expected_types={"health"}, trusted_issuers={"cs"})
    assert result.valid, result.reason


async def test_demo_reasons_are_shown_to_the_citizen(app: App, demo: Demo) -> None:
    response = await app.client.get("/v1/me/codes", headers=demo[LI_SI])
    assert response.status_code == 200, response.text
    codes = {c["type"]: c for c in response.json()["codes"]}
    assert set(codes) == {"health", "transit", "socsec", "citizen"}
    health = codes["health"]
    assert health["available"] and health["status"] == "R" and health["rule_version"] == 1
    assert {"positive_test", "quarantine"} <= set(health["reasons"])
    assert health["source"] == "department"
    wang = {c["type"]: c for c in (await app.client.get("/v1/me/codes", headers=demo[WANG_WU])).json()["codes"]}
    assert set(wang["health"]["reasons"]) == {"no_recent_negative_test", "risk_area_visit"}
    assert wang["transit"]["status"] == "A" and wang["socsec"]["status"] == "A" and wang["citizen"]["status"] == "A"


@pytest.mark.parametrize("code_type", ["health", "transit", "socsec", "citizen"])
async def test_each_type_has_its_lifetime_and_a_private_subject(app: App, demo: Demo, code_type: str) -> None:
    body = await issue(app.client, demo[ZHANG_SAN], code_type)
    _, claims = _parts(body["payload"])
    kind = CodeType.parse(code_type)
    assert claims["ct"] == kind.value
    assert claims["exp"] - claims["iat"] == LIFETIMES[kind] <= 300  # type: ignore[operator]
    assert ("rv" in claims) == (code_type == "health")
    assert len(body["payload"]) <= 320
    # sub is a pseudonym: not the account id, the phone or the ID number, and per type.
    account_id = await account_id_of(app.client, demo[ZHANG_SAN])
    sub = str(claims["sub"])
    assert len(sub) == 11
    for secret in (account_id, ZHANG_SAN, DEMO_CITIZENS[0][2]):
        assert sub not in secret and secret not in sub
    other = await issue(app.client, demo[ZHANG_SAN], "citizen" if code_type != "citizen" else "health")
    assert _parts(other["payload"])[1]["sub"] != sub
    again = await issue(app.client, demo[ZHANG_SAN], code_type)
    assert _parts(again["payload"])[1]["sub"] == sub and _parts(again["payload"])[1]["jti"] != claims["jti"]


async def test_transit_refresh_is_before_the_sixty_second_expiry(app: App, demo: Demo) -> None:
    body = await issue(app.client, demo[ZHANG_SAN], "transit")
    _, claims = _parts(body["payload"])
    assert claims["exp"] - claims["iat"] == 60  # type: ignore[operator]
    refresh = datetime.fromisoformat(body["refresh_after"]).timestamp()
    assert claims["iat"] < refresh < claims["exp"]  # type: ignore[operator]


async def test_levels_decide_which_codes_a_citizen_may_hold(app: App, sms: SmsGateway) -> None:
    tokens = await login(app.client, sms, "13900000077")  # a new account: L2
    headers = bearer(tokens["access_token"])
    for code_type in ("health", "transit", "socsec"):
        response = await app.client.post(f"/v1/me/codes/{code_type}", headers=headers)
        assert response.status_code == 401
        assert response.headers["content-type"].startswith("application/problem+json")
        assert 'acr_values="L3"' in response.headers["www-authenticate"]
        assert response.json()["required_level"] == "L3"
    citizen = await issue(app.client, headers, "citizen")
    assert citizen["status"] == "A"
    overview = {c["type"]: c for c in (await app.client.get("/v1/me/codes", headers=headers)).json()["codes"]}
    assert not overview["health"]["available"] and overview["health"]["required_level"] == "L3"
    assert overview["health"]["status"] is None
    assert overview["citizen"]["available"] and overview["citizen"]["status"] == "A"


async def test_blocked_transit_card_gives_a_suspended_code(app: App, pool: Pool, vault: Vault, sms: SmsGateway) -> None:
    id_number = find_id_number(lambda n: transport_card(n).status == "blocked")
    phone = "13900000088"
    tokens = await login(app.client, sms, phone)
    headers = bearer(tokens["access_token"])
    response = await app.client.post(
        "/v1/me/verification/real-name",
        json={"name": registry_name(id_number), "id_number": id_number},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    tokens = (await app.client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})).json()
    headers = bearer(tokens["access_token"])
    body = await issue(app.client, headers, "transit")
    assert body["status"] == "X" and body["reasons"] == ["card_blocked"]
    assert _parts(body["payload"])[1]["st"] == "X"


@pytest.mark.parametrize("path", ["/v1/me/codes/venue", "/v1/me/codes/HEALTH", "/v1/me/codes/x" * 3])
async def test_unknown_code_types_are_client_errors(app: App, demo: Demo, path: str) -> None:
    response = await app.client.post(path, headers=demo[ZHANG_SAN])
    assert 400 <= response.status_code < 500
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_codes_need_a_citizen_token(app: App) -> None:
    response = await app.client.post("/v1/me/codes/health")
    assert response.status_code == 401
    assert (await app.client.get("/v1/me/codes")).status_code == 401


async def test_issuing_is_rate_limited_per_account(app: App, demo: Demo) -> None:
    limit = app.state.codes.settings.issue_per_minute
    statuses = []
    for _ in range(limit + 1):
        statuses.append((await app.client.post("/v1/me/codes/citizen", headers=demo[ZHANG_SAN])).status_code)
    # The window is a calendar minute: at most one boundary may reset it during the loop.
    assert statuses.count(429) >= 1 or time.time() % 60 < 5
    assert 429 not in statuses[:limit] or time.time() % 60 < 5
