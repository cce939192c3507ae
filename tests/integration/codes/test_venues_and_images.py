"""Venues, posters, check-ins and exposure queries; code images decoded back to payloads."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import zxingcpp
from PIL import Image

from bff.cli import main as onecity
from bff.settings import Settings
from codes.seed import DEMO_VENUE, DEMO_VENUE_ID, seed_demo_venue
from core.crypto import Vault
from core.db import Pool
from identity.oidc import ClientAdmin
from services.departments.sms import SmsGateway
from tests.conftest import MASTER_KEY
from tests.integration.codes.conftest import (
    LI_SI,
    ZHANG_SAN,
    App,
    Demo,
    PartnerHeaders,
    StaffHeaders,
    Verify,
    account_id_of,
    issue,
)
from tests.support.citizens import bearer, login
from tests.unit.codes.test_render import _rasterize_svg

VENUE = {"name": "市图书馆", "address": "文化路1号", "region": "110101"}


def _decode(image: Image.Image) -> zxingcpp.Barcode:
    results = zxingcpp.read_barcodes(image)
    assert len(results) == 1 and results[0].format == zxingcpp.BarcodeFormat.QRCode
    return results[0]


def _claims(payload: str) -> dict[str, Any]:
    part = payload[4:].split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return claims


async def _venue(app: App, headers: dict[str, str], **fields: str) -> dict[str, Any]:
    response = await app.client.post("/v1/admin/venues", json={**VENUE, **fields}, headers=headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_staff_register_venues_in_their_region(app: App, staff: StaffHeaders, pool: Pool) -> None:
    venue = await _venue(app, staff())
    claims = _claims(venue["payload"])
    assert claims["ct"] == "V" and claims["sub"] == venue["id"] and claims["st"] == "A"
    assert claims["exp"] - claims["iat"] > 300 * 86400  # a poster hangs for a year
    assert len(venue["payload"]) <= 320
    assert (await app.client.post("/v1/admin/venues", json=VENUE, headers=staff(region="110102"))).status_code == 403
    assert (await app.client.post("/v1/admin/venues", json=VENUE, headers=staff(("auditor",)))).status_code == 403
    bad = await app.client.post("/v1/admin/venues", json={**VENUE, "region": "11"}, headers=staff())
    assert bad.status_code == 400
    assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'codes.venue.create'") == 1


async def _partner_client(app: App, settings: Settings, client_id: str, *regions: str) -> int:
    """Register a partner client and (``onecity codes venue regions``) its venue regions."""
    await ClientAdmin(app.state.resources.pool, Vault(MASTER_KEY)).add(
        client_id, scopes=["venues:write"], grant_types=["client_credentials"]
    )
    return await _venue_regions(settings, client_id, *regions) if regions else 0


async def _venue_regions(settings: Settings, client_id: str, *regions: str) -> int:
    def configure() -> int:
        return onecity(["codes", "venue", "regions", client_id, *regions], settings=settings)

    return await asyncio.to_thread(configure)


async def test_partners_register_their_own_venues(app: App, partner: PartnerHeaders, settings: Settings) -> None:
    await _partner_client(app, settings, "mall-operator", "110101")
    owner = partner("mall-operator", scope="venues:write")
    response = await app.client.post("/v1/venues", json=VENUE, headers=owner)
    assert response.status_code == 201, response.text
    venue_id = response.json()["id"]
    assert (await app.client.get(f"/v1/venues/{venue_id}", headers=owner)).status_code == 200
    await _partner_client(app, settings, "someone-else", "110101")
    other = partner("someone-else", scope="venues:write")
    assert (await app.client.get(f"/v1/venues/{venue_id}", headers=other)).status_code == 404
    assert (await app.client.post("/v1/venues", json=VENUE, headers=partner())).status_code == 403  # codes:verify only
    poster = await app.client.get(f"/v1/venues/{venue_id}/poster", headers=owner)
    assert poster.status_code == 200 and poster.headers["content-type"] == "image/png"
    assert _decode(Image.open(io.BytesIO(poster.content))).text == response.json()["payload"]


async def test_poster_decodes_to_the_venue_code(app: App, staff: StaffHeaders) -> None:
    venue = await _venue(app, staff())
    png = await app.client.get(f"/v1/admin/venues/{venue['id']}/poster", headers=staff())
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    barcode = _decode(Image.open(io.BytesIO(png.content)))
    assert barcode.text == venue["payload"] and barcode.ec_level == "M"
    svg = await app.client.get(f"/v1/admin/venues/{venue['id']}/poster?format=svg", headers=staff())
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert _decode(_rasterize_svg(svg.content)).text == venue["payload"]
    assert (
        await app.client.get(f"/v1/admin/venues/{venue['id']}/poster?format=gif", headers=staff())
    ).status_code == 400
    assert (await app.client.get("/v1/admin/venues/AAAAAAAAAAA/poster", headers=staff())).status_code == 404
    assert (await app.client.get("/v1/admin/venues/bad/poster", headers=staff())).status_code in (400, 404)


async def test_checkin_and_exposure_query(
    app: App, demo: Demo, staff: StaffHeaders, pool: Pool, sms: SmsGateway
) -> None:
    venue = await _venue(app, staff())
    response = await app.client.post("/v1/me/checkins", json={"payload": venue["payload"]}, headers=demo[ZHANG_SAN])
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["venue"] == {"id": venue["id"], "name": VENUE["name"], "address": VENUE["address"]}
    # An L2 citizen may check in too.
    l2 = bearer((await login(app.client, sms, "13900000055"))["access_token"])
    assert (await app.client.post("/v1/me/checkins", json={"payload": venue["payload"]}, headers=l2)).status_code == 201
    await app.client.post("/v1/me/checkins", json={"payload": venue["payload"]}, headers=demo[LI_SI])
    # Stored pseudonymously: no account id.
    account_id = await account_id_of(app.client, demo[ZHANG_SAN])
    rows = await pool.fetch("SELECT * FROM checkins")
    assert len(rows) == 3 and all(account_id not in str(dict(r)) for r in rows)

    start = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    end = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    path = f"/v1/admin/venues/{venue['id']}/checkins"
    listed = await app.client.get(path, params={"from": start, "to": end}, headers=staff(staff_id="tracer-1"))
    assert listed.status_code == 200, listed.text
    checkins = listed.json()["checkins"]
    assert len(checkins) == 3 and len({c["pseudonym"] for c in checkins}) == 3
    assert all(len(c["pseudonym"]) == 11 for c in checkins)
    audit = await pool.fetchrow("SELECT * FROM audit_log WHERE action = 'codes.exposure_query'")
    assert audit is not None and audit["actor_id"] == "tracer-1" and audit["details"]["count"] == 3
    # Region and role are checked; the window is bounded.
    assert (
        await app.client.get(path, params={"from": start, "to": end}, headers=staff(region="110102"))
    ).status_code == 403
    assert (
        await app.client.get(path, params={"from": start, "to": end}, headers=staff(("auditor",)))
    ).status_code == 403
    assert (await app.client.get(path, params={"from": start, "to": end}, headers=staff(("admin",)))).status_code == 403
    long_ago = (datetime.now(UTC) - timedelta(days=90)).isoformat()
    assert (await app.client.get(path, params={"from": long_ago, "to": end}, headers=staff())).status_code == 422
    assert (await app.client.get(path, params={"from": end, "to": start}, headers=staff())).status_code == 422
    assert (await app.client.get(path, params={"from": "yesterday", "to": end}, headers=staff())).status_code == 400
    assert (await app.client.get(path, headers=staff())).status_code == 400
    assert (await app.client.get(path, params={"from": start, "to": end}, headers=demo[ZHANG_SAN])).status_code == 401


async def test_checkin_refuses_what_is_not_a_current_venue_code(
    app: App, demo: Demo, staff: StaffHeaders, verify: Verify
) -> None:
    health = await issue(app.client, demo[ZHANG_SAN])
    response = await app.client.post("/v1/me/checkins", json={"payload": health["payload"]}, headers=demo[ZHANG_SAN])
    assert response.status_code == 422 and response.json()["reason"] == "wrong_type"
    response = await app.client.post("/v1/me/checkins", json={"payload": "garbage"}, headers=demo[ZHANG_SAN])
    assert response.status_code == 422 and response.json()["reason"] == "malformed"
    venue = await _venue(app, staff())
    online = await verify(venue["payload"])
    assert online["valid"] and online["code_type"] == "venue" and online["holder"] == {"name": VENUE["name"]}
    consumed = await verify(venue["payload"], consume=True)
    assert consumed["valid"] is False and consumed["reason"] == "wrong_type"
    # A reprinted poster replaces the old one.
    reissued = await app.client.post(f"/v1/admin/venues/{venue['id']}/code", headers=staff())
    assert reissued.status_code == 200 and reissued.json()["payload"] != venue["payload"]
    response = await app.client.post("/v1/me/checkins", json={"payload": venue["payload"]}, headers=demo[ZHANG_SAN])
    assert response.status_code == 422 and response.json()["reason"] == "revoked"
    assert (await verify(venue["payload"]))["reason"] == "revoked"
    assert (await verify(reissued.json()["payload"]))["valid"] is True
    fresh = await app.client.post(
        "/v1/me/checkins", json={"payload": reissued.json()["payload"]}, headers=demo[ZHANG_SAN]
    )
    assert fresh.status_code == 201


@pytest.mark.parametrize("code_type", ["health", "transit", "citizen"])
@pytest.mark.parametrize("fmt", ["png", "svg"])
async def test_code_image_round_trip(app: App, demo: Demo, code_type: str, fmt: str) -> None:
    code = await issue(app.client, demo[ZHANG_SAN], code_type)
    response = await app.client.get(f"/v1/me/codes/{code_type}/image", params={"format": fmt}, headers=demo[ZHANG_SAN])
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    if fmt == "png":
        assert response.headers["content-type"] == "image/png"
        barcode = _decode(Image.open(io.BytesIO(response.content)))
    else:
        assert response.headers["content-type"].startswith("image/svg+xml")
        barcode = _decode(_rasterize_svg(response.content))
    # The image is the current code: the one just issued.
    assert barcode.text == code["payload"] and barcode.ec_level == "M"
    again = await app.client.get(f"/v1/me/codes/{code_type}/image", params={"format": fmt}, headers=demo[ZHANG_SAN])
    assert again.content == response.content


async def test_image_without_a_current_code_issues_one(app: App, demo: Demo, verify: Verify) -> None:
    response = await app.client.get("/v1/me/codes/health/image", headers=demo[LI_SI])
    assert response.status_code == 200
    payload = _decode(Image.open(io.BytesIO(response.content))).text
    body = await verify(payload)
    assert body["valid"] and body["status"] == "R"
    assert (await app.client.get("/v1/me/codes/health/image?format=bmp", headers=demo[LI_SI])).status_code == 400
    assert (await app.client.get("/v1/me/codes/health/image")).status_code == 401


async def test_demo_venue_seed_is_idempotent(app: App, pool: Pool, vault: Vault, staff: StaffHeaders) -> None:
    assert await seed_demo_venue(pool, vault, issuer="cs") is True
    assert await seed_demo_venue(pool, vault, issuer="cs") is False
    response = await app.client.get(f"/v1/admin/venues/{DEMO_VENUE_ID}", headers=staff())
    assert response.status_code == 200 and response.json()["name"] == DEMO_VENUE.name


async def test_a_second_checkin_within_ten_minutes_returns_the_first(
    app: App, demo: Demo, staff: StaffHeaders, pool: Pool
) -> None:
    venue = await _venue(app, staff())
    first = await app.client.post("/v1/me/checkins", json={"payload": venue["payload"]}, headers=demo[ZHANG_SAN])
    assert first.status_code == 201 and first.json()["repeated"] is False
    # A double tap and a concurrent retry: the existing check-in, 200, no new row.
    again = await asyncio.gather(
        *(
            app.client.post("/v1/me/checkins", json={"payload": venue["payload"]}, headers=demo[ZHANG_SAN])
            for _ in range(3)
        )
    )
    assert [r.status_code for r in again] == [200, 200, 200]
    assert {r.json()["checked_in_at"] for r in again} == {first.json()["checked_in_at"]}
    assert all(r.json()["repeated"] for r in again)
    assert await pool.fetchval("SELECT count(*) FROM checkins") == 1
    # Another citizen is another check-in; after the window the same citizen is a new one.
    other = await app.client.post("/v1/me/checkins", json={"payload": venue["payload"]}, headers=demo[LI_SI])
    assert other.status_code == 201
    await pool.execute("UPDATE checkins SET checked_in_at = checked_in_at - interval '11 minutes'")
    later = await app.client.post("/v1/me/checkins", json={"payload": venue["payload"]}, headers=demo[ZHANG_SAN])
    assert later.status_code == 201
    assert await pool.fetchval("SELECT count(*) FROM checkins") == 3


async def test_checkins_are_rate_limited_per_citizen(app: App, demo: Demo, staff: StaffHeaders, pool: Pool) -> None:
    limit = app.state.codes.settings.checkins_per_hour
    venues = [await _venue(app, staff(), name=f"场馆{n}") for n in range(limit + 1)]
    statuses = [
        (await app.client.post("/v1/me/checkins", json={"payload": v["payload"]}, headers=demo[ZHANG_SAN])).status_code
        for v in venues[:limit]
    ]
    assert statuses == [201] * limit
    refused = await app.client.post(
        "/v1/me/checkins", json={"payload": venues[limit]["payload"]}, headers=demo[ZHANG_SAN]
    )
    assert refused.status_code == 429
    assert refused.json()["type"].endswith("/rate-limited")
    assert 1 <= int(refused.headers["Retry-After"]) <= 3600
    assert await pool.fetchval("SELECT count(*) FROM checkins") == limit
    # Another citizen has their own allowance.
    other = await app.client.post("/v1/me/checkins", json={"payload": venues[limit]["payload"]}, headers=demo[LI_SI])
    assert other.status_code == 201


async def test_exposure_queries_page_by_keyset(app: App, staff: StaffHeaders, pool: Pool) -> None:
    venue = await _venue(app, staff())
    base = datetime.now(UTC) - timedelta(hours=2)
    # Five check-ins, two of them at the very same instant (the id breaks the tie).
    times = [base, base + timedelta(minutes=1), base + timedelta(minutes=1), base + timedelta(minutes=3), base]
    await pool.executemany(
        "INSERT INTO checkins (venue_id, pseudonym, checked_in_at) VALUES ($1, $2, $3)",
        [(venue["id"], f"pseudonym{n:02d}", at) for n, at in enumerate(times)],
    )
    path = f"/v1/admin/venues/{venue['id']}/checkins"
    params = {"from": (base - timedelta(minutes=1)).isoformat(), "to": datetime.now(UTC).isoformat(), "limit": "2"}
    seen: list[tuple[str, str]] = []
    cursor = None
    pages = 0
    while True:
        response = await app.client.get(
            path, params={**params, **({"cursor": cursor} if cursor else {})}, headers=staff()
        )
        assert response.status_code == 200, response.text
        body = response.json()
        seen += [(c["checked_in_at"], c["pseudonym"]) for c in body["checkins"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            assert body["truncated"] is False
            break
        assert body["truncated"] is True and len(body["checkins"]) == 2
    assert pages == 3 and len(seen) == 5 and len(set(seen)) == 5
    assert [at for at, _ in seen] == sorted(at for at, _ in seen)  # ordered by time, oldest first
    assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'codes.exposure_query'") == 3
    bad = await app.client.get(path, params={**params, "cursor": "not-a-cursor"}, headers=staff())
    assert bad.status_code == 400 and bad.json()["type"].endswith("/bad-request")


async def test_partners_register_venues_only_in_their_configured_regions(
    app: App, partner: PartnerHeaders, settings: Settings, pool: Pool
) -> None:
    assert await _partner_client(app, settings, "chain-stores", "110101", "120000") == 0
    owner = partner("chain-stores", scope="venues:write")
    assert (await app.client.post("/v1/venues", json=VENUE, headers=owner)).status_code == 201
    below = await app.client.post("/v1/venues", json={**VENUE, "region": "120000001"}, headers=owner)
    assert below.status_code == 201, below.text  # a configured code covers the codes below it
    outside = await app.client.post("/v1/venues", json={**VENUE, "region": "110102"}, headers=owner)
    assert outside.status_code == 403
    assert outside.json()["type"].endswith("/venue-region-not-allowed")
    # A client with venues:write but no regions configured registers nothing.
    await _partner_client(app, settings, "new-partner")
    unconfigured = await app.client.post("/v1/venues", json=VENUE, headers=partner("new-partner", scope="venues:write"))
    assert unconfigured.status_code == 403
    assert unconfigured.json()["type"].endswith("/venue-region-not-allowed")
    assert await pool.fetchval("SELECT count(*) FROM venues WHERE owner_type = 'partner'") == 2
    # The CLI refuses unknown clients and bad codes without a traceback.
    assert await _venue_regions(settings, "chain-stores", "11") == 1
    assert await _venue_regions(settings, "not-a-client", "110101") == 1
    assert await _venue_regions(settings, "chain-stores") == 0  # shows them, unchanged
    assert await pool.fetchval("SELECT count(*) FROM partner_venue_regions WHERE client_id = 'chain-stores'") == 2
