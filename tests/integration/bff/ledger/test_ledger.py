"""The citizen's data-access ledger, one access kind at a time, driven through the real endpoints:
partners verify codes and sign citizens in, staff override statuses and run exposure queries,
and the citizen (only that citizen) sees each access with who, what, why and when."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from core.db import Pool
from identity.seed import DEMO_CITIZENS
from tests.integration.bff.ledger.conftest import App, Partner
from tests.integration.codes.conftest import (
    DEMO_REGION,
    LI_SI,
    WANG_WU,
    ZHANG_SAN,
    Demo,
    StaffHeaders,
    account_id_of,
    issue,
)
from tests.support.citizens import bearer

PROBLEM = "application/problem+json"


async def flush(app: App) -> None:
    """Write what the audit batcher holds (userinfo and ID token releases go through it)."""
    await app.state.resources.audit.flush()


async def ledger(app: App, headers: dict[str, str], **params: str) -> dict[str, Any]:
    """One page of ``GET /v1/me/data-access`` (200 required)."""
    response = await app.client.get("/v1/me/data-access", headers=headers, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def walk(
    app: App, headers: dict[str, str], limit: int = 2, cursor: str | None = None, **params: str
) -> list[dict[str, Any]]:
    """Every entry, page by page (from ``cursor`` if given)."""
    items: list[dict[str, Any]] = []
    while True:
        page = await ledger(app, headers, limit=str(limit), **params, **({"cursor": cursor} if cursor else {}))
        assert len(page["items"]) <= limit
        items.extend(page["items"])
        cursor = page.get("next_cursor")
        if cursor is None:
            return items


async def machine_token(app: App, partner: Partner) -> dict[str, str]:
    """The partner's ``client_credentials`` token with ``codes:verify``, from the real token endpoint."""
    response = await app.client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "codes:verify"},
        auth=(partner.client_id, partner.secret),
    )
    assert response.status_code == 200, response.text
    return bearer(response.json()["access_token"])


async def verify(app: App, partner_headers: dict[str, str], payload: str, **fields: Any) -> dict[str, Any]:
    response = await app.client.post("/v1/codes/verify", json={"payload": payload, **fields}, headers=partner_headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_partner_verifications_show_partner_venue_and_result(
    app: App, demo: Demo, hospital: Partner, library: Partner
) -> None:
    gate = await machine_token(app, hospital)
    desk = await machine_token(app, library)
    code = await issue(app.client, demo[ZHANG_SAN], "transit")
    assert (await verify(app, gate, code["payload"], venue_id="gate-7", consume=True))["valid"] is True
    assert (await verify(app, gate, code["payload"], venue_id="gate-7", consume=True))["reason"] == "replayed"
    health = await issue(app.client, demo[ZHANG_SAN], "health")
    assert (await verify(app, desk, health["payload"]))["valid"] is True

    items = (await ledger(app, demo[ZHANG_SAN], kind="code_verification"))["items"]
    assert [i["kind"] for i in items] == ["code_verification"] * 3
    newest, replayed, first = items
    assert newest == {
        "kind": "code_verification",
        "at": newest["at"],
        "who": {"type": "partner", "id": "library", "name": "City Library"},
        "purpose": "code-verification",
        "code_type": "health",
        "valid": True,
        "result": "valid",
    }
    assert replayed == {
        "kind": "code_verification",
        "at": replayed["at"],
        "who": {"type": "partner", "id": "hospital", "name": "City Hospital"},
        "purpose": "code-verification",
        "code_type": "transit",
        "venue_id": "gate-7",
        "valid": False,
        "result": "replayed",
    }
    assert first["result"] == "valid" and first["consumed"] is True and first["venue_id"] == "gate-7"
    assert newest["at"] > replayed["at"] > first["at"]
    # Another citizen never sees them, and the other citizen's own scans are theirs alone.
    assert (await ledger(app, demo[LI_SI], kind="code_verification"))["items"] == []
    li_code = await issue(app.client, demo[LI_SI], "health")
    await verify(app, desk, li_code["payload"])
    assert len((await ledger(app, demo[LI_SI], kind="code_verification"))["items"]) == 1
    assert len((await ledger(app, demo[ZHANG_SAN], kind="code_verification"))["items"]) == 3


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


async def _sign_in_at(app: App, citizen: dict[str, str], partner: Partner, scope: str) -> dict[str, Any]:
    """The OIDC code flow from the app (``POST /oauth/authorize``) and the partner's code exchange."""
    verifier, challenge = _pkce()
    authorized = await app.client.post(
        "/oauth/authorize",
        json={
            "client_id": partner.client_id,
            "redirect_uri": partner.redirect_uri,
            "scope": scope,
            "state": "st-1",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "nonce": "n-1",
        },
        headers=citizen,
    )
    assert authorized.status_code == 200, authorized.text
    code = parse_qs(urlsplit(authorized.json()["redirect_to"]).query)["code"][0]
    exchanged = await app.client.post(
        "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": partner.redirect_uri,
            "code_verifier": verifier,
            "client_id": partner.client_id,
            "client_secret": partner.secret,
        },
    )
    assert exchanged.status_code == 200, exchanged.text
    body: dict[str, Any] = exchanged.json()
    assert body["id_token"]
    return body


async def test_releases_to_partners_list_claim_names_never_values(app: App, demo: Demo, hospital: Partner) -> None:
    tokens = await _sign_in_at(app, demo[ZHANG_SAN], hospital, "openid profile phone")
    userinfo = await app.client.get("/oauth/userinfo", headers=bearer(tokens["access_token"]))
    assert userinfo.status_code == 200, userinfo.text
    released = userinfo.json()
    assert {"name", "phone_number"} <= set(released)
    await flush(app)

    page = await ledger(app, demo[ZHANG_SAN], kind="claims_release")
    partner = {"type": "partner", "id": "hospital", "name": "City Hospital"}
    claims = ["name", "phone_number", "phone_number_verified"]
    assert page["items"] == [
        {
            "kind": "claims_release",
            "at": page["items"][0]["at"],
            "who": partner,
            "purpose": "profile-request",
            "via": "userinfo",
            "claims": claims,
        },
        {
            "kind": "claims_release",
            "at": page["items"][1]["at"],
            "who": partner,
            "purpose": "sign-in",
            "via": "id_token",
            "claims": claims,
        },
    ]
    text = str(page)
    assert released["name"] not in text and released["phone_number"] not in text and ZHANG_SAN not in text
    assert (await ledger(app, demo[LI_SI], kind="claims_release"))["items"] == []
    # Only openid: an ID token with no personal claim (only the pairwise `sub`) is a release too.
    await _sign_in_at(app, demo[WANG_WU], hospital, "openid")
    await flush(app)
    only_sub = (await ledger(app, demo[WANG_WU], kind="claims_release"))["items"]
    assert [(i["via"], i["claims"]) for i in only_sub] == [("id_token", [])]


async def test_staff_overrides_show_staff_by_id_role_and_region(app: App, demo: Demo, staff: StaffHeaders) -> None:
    account_id = await account_id_of(app.client, demo[ZHANG_SAN])
    until = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    path = f"/v1/admin/citizens/{account_id}/health-status"
    response = await app.client.put(
        path,
        json={"status": "R", "reason": "contact of case 12 (李四)", "until": until.isoformat()},
        headers=staff(staff_id="officer-7"),
    )
    assert response.status_code == 200, response.text
    assert (await app.client.delete(path, headers=staff(staff_id="officer-8"))).status_code == 204

    items = (await ledger(app, demo[ZHANG_SAN], kind="staff_action"))["items"]
    officer = {"type": "staff", "roles": ["health_officer"], "region": DEMO_REGION}
    assert items == [
        {
            "kind": "staff_action",
            "at": items[0]["at"],
            "who": {**officer, "id": "officer-8"},
            "purpose": "health-status-override",
            "action": "health_override_lift",
        },
        {
            "kind": "staff_action",
            "at": items[1]["at"],
            "who": {**officer, "id": "officer-7"},
            "purpose": "health-status-override",
            "action": "health_override_set",
            "status": "R",
            "until": until.isoformat().replace("+00:00", "Z"),
        },
    ]
    assert "李四" not in str(items), "the free-text reason (it may name others) is not shown"
    assert (await ledger(app, demo[LI_SI], kind="staff_action"))["items"] == []


async def _venue_with_checkin(app: App, demo: Demo, staff: StaffHeaders) -> dict[str, Any]:
    venue = await app.client.post(
        "/v1/admin/venues", json={"name": "市图书馆", "address": "文化路1号", "region": DEMO_REGION}, headers=staff()
    )
    assert venue.status_code == 201, venue.text
    body: dict[str, Any] = venue.json()
    checkin = await app.client.post("/v1/me/checkins", json={"payload": body["payload"]}, headers=demo[ZHANG_SAN])
    assert checkin.status_code == 201, checkin.text
    return body


async def test_exposure_queries_appear_to_the_citizens_they_returned_after_any_hold(
    app: App, demo: Demo, staff: StaffHeaders, pool: Pool
) -> None:
    venue = await _venue_with_checkin(app, demo, staff)
    start = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0)
    end = (datetime.now(UTC) + timedelta(minutes=1)).replace(microsecond=0)
    window = {"from": start.isoformat(), "to": end.isoformat()}
    path = f"/v1/admin/venues/{venue['id']}/checkins"
    tracer = staff(staff_id="tracer-1")

    # Without a hold: visible at once.
    assert (await app.client.get(path, params=window, headers=tracer)).status_code == 200
    items = (await ledger(app, demo[ZHANG_SAN], kind="staff_action"))["items"]
    assert items == [
        {
            "kind": "staff_action",
            "at": items[0]["at"],
            "who": {"type": "staff", "id": "tracer-1", "roles": ["health_officer"], "region": DEMO_REGION},
            "purpose": "epidemiological-investigation",
            "action": "exposure_query",
            "venue_id": venue["id"],
            "window_start": start.isoformat().replace("+00:00", "Z"),
            "window_end": end.isoformat().replace("+00:00", "Z"),
            "checkins": 1,
        }
    ]
    # With a hold: hidden from the citizen until it passes; the hold itself is audited.
    hold = datetime.now(UTC) + timedelta(seconds=2)
    held = await app.client.get(path, params={**window, "hold_until": hold.isoformat()}, headers=tracer)
    assert held.status_code == 200, held.text
    assert len((await ledger(app, demo[ZHANG_SAN], kind="staff_action"))["items"]) == 1
    audited = await pool.fetch(
        "SELECT details FROM audit_log WHERE action = 'codes.exposure_query' ORDER BY id DESC LIMIT 1"
    )
    assert audited[0]["details"]["hold_until"] == hold.isoformat()
    await asyncio.sleep(max(0.0, (hold - datetime.now(UTC)).total_seconds()) + 0.2)
    after = (await ledger(app, demo[ZHANG_SAN], kind="staff_action"))["items"]
    assert len(after) == 2
    assert after[0]["held_until"] == hold.isoformat().replace("+00:00", "Z")
    assert after[0]["at"] > after[1]["at"]
    # A citizen who did not check in never sees it.
    assert (await ledger(app, demo[LI_SI], kind="staff_action"))["items"] == []


@pytest.mark.parametrize(
    ("hold", "who"),
    [
        (timedelta(seconds=-5), ("health_officer",)),
        (timedelta(days=31), ("health_officer",)),
        (timedelta(days=1), ("admin",)),
    ],
)
async def test_holds_are_bounded_and_only_for_health_officers(
    app: App, demo: Demo, staff: StaffHeaders, pool: Pool, hold: timedelta, who: tuple[str, ...]
) -> None:
    venue = await _venue_with_checkin(app, demo, staff)
    now = datetime.now(UTC)
    params = {
        "from": (now - timedelta(hours=1)).isoformat(),
        "to": (now + timedelta(minutes=1)).isoformat(),
        "hold_until": (now + hold).isoformat(),
    }
    response = await app.client.get(f"/v1/admin/venues/{venue['id']}/checkins", params=params, headers=staff(who))
    expected = 403 if who == ("admin",) else 422
    assert response.status_code == expected, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["type"].endswith("/forbidden" if expected == 403 else "/unprocessable")
    assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE action LIKE 'codes.exposure%'") == 0


async def test_filters_and_keyset_pagination(app: App, demo: Demo, hospital: Partner, staff: StaffHeaders) -> None:
    gate = await machine_token(app, hospital)
    account_id = await account_id_of(app.client, demo[ZHANG_SAN])
    code = await issue(app.client, demo[ZHANG_SAN], "citizen")
    for _ in range(3):
        await verify(app, gate, code["payload"])
    middle = datetime.now(UTC)
    until = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    response = await app.client.put(
        f"/v1/admin/citizens/{account_id}/health-status",
        json={"status": "Y", "reason": "check", "until": until},
        headers=staff(),
    )
    assert response.status_code == 200
    for _ in range(2):
        await verify(app, gate, code["payload"])
    # A department read through the codes domain's plain Protocol (audited by the fan-out).
    _, _, id_number = DEMO_CITIZENS[0]
    await app.state.resources.fanout.as_departments().transport.card(id_number, purpose="transit-code")
    await flush(app)

    everything = await walk(app, demo[ZHANG_SAN], limit=100)
    kinds = [i["kind"] for i in everything]
    assert kinds.count("code_verification") == 5 and kinds.count("staff_action") == 1
    assert kinds.count("department_read") == 1 and kinds[0] == "department_read"
    assert [i["at"] for i in everything] == sorted((i["at"] for i in everything), reverse=True)
    # Pages of 2 (and of 1) give the same entries, none twice, none skipped.
    assert await walk(app, demo[ZHANG_SAN], limit=2) == everything
    assert await walk(app, demo[ZHANG_SAN], limit=1) == everything

    # Stable under concurrent inserts: a scan made between two pages does not shift them.
    first = await ledger(app, demo[ZHANG_SAN], limit="3")
    await verify(app, gate, code["payload"])
    rest = await walk(app, demo[ZHANG_SAN], limit=3, cursor=first["next_cursor"])
    assert first["items"] + rest == everything

    # Kinds (one or several) and the time window.
    only = await walk(app, demo[ZHANG_SAN], kind="staff_action,department_read")
    assert [i["kind"] for i in only] == ["department_read", "staff_action"]
    before = await walk(app, demo[ZHANG_SAN], kind="code_verification", until=middle.isoformat())
    since = await walk(app, demo[ZHANG_SAN], kind="code_verification", since=middle.isoformat())
    assert len(before) == 3 and len(since) == 3

    # A cursor past the last page: an empty page, no next cursor.
    past = base64.urlsafe_b64encode(b'["2000-01-01T00:00:00Z",0,1]').decode().rstrip("=")
    assert await ledger(app, demo[ZHANG_SAN], cursor=past) == {"items": []}
    # Another citizen sees none of it.
    assert (await ledger(app, demo[LI_SI]))["items"] == []


@pytest.mark.parametrize(
    "query",
    [
        {"cursor": "not-a-cursor"},
        {"cursor": base64.urlsafe_b64encode(b'["2024-01-01T00:00:00Z",1]').decode()},
        {"cursor": base64.urlsafe_b64encode(b'["2024-01-01T00:00:00Z",2,1]').decode()},
        {"cursor": base64.urlsafe_b64encode(b'["2024-01-01T00:00:00Z",0,null,"jti"]').decode()},
        {"cursor": base64.urlsafe_b64encode(b'["2024-01-01T00:00:00Z",1,5]').decode()},
        {"cursor": base64.urlsafe_b64encode(b'["2024-01-01T00:00:00",0,1]').decode()},
        {"kind": "gossip"},
        {"kind": ","},
        {"since": "2025-01-02T00:00:00Z", "until": "2025-01-01T00:00:00Z"},
        {"since": "2025-01-02T00:00:00"},
        {"since": "yesterday"},
        {"limit": "101"},
    ],
)
async def test_bad_queries_are_400_problems(app: App, demo: Demo, query: dict[str, str]) -> None:
    response = await app.client.get("/v1/me/data-access", params=query, headers=demo[ZHANG_SAN])
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    # Ours (cursor, kind, window) are `bad-request`; what the schema refuses is `validation-error`.
    slug = "validation-error" if "limit" in query or query.get("since") == "yesterday" else "bad-request"
    assert response.json()["type"].endswith("/" + slug)


async def test_requires_a_citizen(app: App, staff: StaffHeaders) -> None:
    assert (await app.client.get("/v1/me/data-access")).status_code == 401
    assert (await app.client.get("/v1/me/data-access", headers=staff())).status_code == 401


async def test_rows_at_the_same_instant_are_paged_exactly_once(app: App, demo: Demo, pool: Pool) -> None:
    # Ties of `at` across the two sources cannot be produced on purpose through the endpoints,
    # so the rows are written as the scan log and the audit batcher would write them.
    account_id = await account_id_of(app.client, demo[ZHANG_SAN])
    await issue(app.client, demo[ZHANG_SAN], "health")
    pseudonym = await pool.fetchval(
        "SELECT pseudonym FROM code_subjects WHERE account_id = $1 AND code_type = 'H'", account_id
    )
    at = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    await pool.executemany(
        "INSERT INTO scan_log (scanned_at, partner_id, code_type, pseudonym, jti, result)"
        " VALUES ($1, $2, 'H', $3, $4, 'valid')",
        [(at, partner, pseudonym, jti) for partner in ("p-a", "p-b") for jti in ("jti-a", "jti-b")],
    )
    await pool.executemany(
        "INSERT INTO audit_log (at, actor_type, actor_id, subject_id, action, outcome, details)"
        " VALUES ($1, 'system', 'onecity', $2, 'data.read', 'success', $3)",
        [(at, account_id, {"department": "health", "resource": r, "purpose": "test"}) for r in ("a", "b", "c")],
    )
    window = {"since": at.isoformat(), "until": (at + timedelta(microseconds=1)).isoformat()}
    everything = await walk(app, demo[ZHANG_SAN], limit=100, **window)
    assert [(i["kind"], i.get("who", {}).get("id"), i.get("resource")) for i in everything] == [
        ("code_verification", "p-b", None),
        ("code_verification", "p-a", None),
        ("code_verification", "p-b", None),
        ("code_verification", "p-a", None),
        ("department_read", None, "c"),
        ("department_read", None, "b"),
        ("department_read", None, "a"),
    ]
    for limit in (1, 2, 3):
        assert await walk(app, demo[ZHANG_SAN], limit=limit, **window) == everything
