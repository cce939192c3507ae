"""Identity assurance for citizens (issue 11): permanent bindings and the correction flow, no
registry oracle, the owner can always log in, recycled numbers. Real PostgreSQL, Redis and
department simulators; several client addresses are separate ASGI clients of one app."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import secrets
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import msgspec
from httpx import AsyncClient as AsyncTestClient
from litestar import Litestar

from bff.app import create_app
from bff.settings import Settings, with_derived
from core.crypto import Vault
from core.db import Pool
from identity.oidc import ClientAdmin
from identity.seed import DEMO_CITIZENS, seed_demo_citizens
from services.departments.sms import SmsGateway
from services.idnumber import check_digit
from services.simulators import registry_name
from tests.support.asgi import running_app
from tests.support.citizens import bearer, latest_otp, login, request_otp

DEVICE = {"id": "device-1", "name": "Test phone", "platform": "ios"}
REAL_NAME = "/v1/me/verification/real-name"
CORRECTION = "/v1/me/verification/correction"


def id_number(serial: int) -> str:
    """A valid ID number (GB 11643 check digit) the registry simulator knows a name for."""
    first17 = f"11010119900101{serial:03d}"
    return first17 + check_digit(first17)


def person(serial: int) -> dict[str, str]:
    number = id_number(serial)
    return {"name": registry_name(number), "id_number": number}


@contextlib.asynccontextmanager
async def from_address(app: Litestar, host: str) -> AsyncIterator[httpx.AsyncClient]:
    """Another client of the same running app, seen from ``host``."""
    transport = httpx.ASGITransport(app=app, client=(host, 40000))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver.local") as other:
        yield other


@contextlib.asynccontextmanager
async def app_client(settings: Settings, **identity: Any) -> AsyncIterator[tuple[Litestar, AsyncTestClient]]:
    """The app with some identity settings changed, and a client for it (127.0.0.1)."""
    app = create_app(msgspec.structs.replace(settings, identity=msgspec.structs.replace(settings.identity, **identity)))
    async with running_app(app) as client:
        yield app, client


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


async def _l3(client: AsyncTestClient, sms: SmsGateway, phone: str, who: dict[str, str]) -> dict[str, Any]:
    tokens = await login(client, sms, phone)
    verified = await client.post(REAL_NAME, json=who, headers=bearer(tokens["access_token"]))
    assert verified.status_code == 200, verified.text
    return tokens


async def _level(pool: Pool, account_id: str) -> str:
    level: str = await pool.fetchval("SELECT level FROM accounts WHERE id = $1::uuid", account_id)
    return level


def _metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample of ``/metrics`` (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(name):
            head, _, value = line.rpartition(" ")
            found = head[len(name) :].strip("{}")
            if ",".join(sorted(found.split(","))) == wanted or (not labels and not found):
                return float(value)
    return 0.0


# bindings are permanent --------------------------------------------------------------------


async def test_a_bound_account_cannot_move_to_another_identity(
    client: AsyncTestClient, sms: SmsGateway, pool: Pool
) -> None:
    tokens = await _l3(client, sms, "13700000001", person(1))
    headers = bearer(tokens["access_token"])
    passed = await client.post(
        "/v1/me/verification/real-person", json={"liveness_token": "live-abcdefghijklmnop"}, headers=headers
    )
    assert passed.json()["level"] == "L4"
    other = await client.post(REAL_NAME, json=person(2), headers=headers)
    assert other.status_code == 409
    assert other.json()["type"].endswith("/identity-already-bound")
    me = (await client.get("/v1/me", headers=headers)).json()
    assert me["id_number"] == id_number(1)[:4] + "*" * 10 + id_number(1)[-4:]
    assert me["level"] == "L4"
    # The other person's ID number stays free for its owner.
    assert await pool.fetchval("SELECT count(*) FROM accounts WHERE id_number_index IS NOT NULL") == 1


async def test_resubmitting_the_same_identity_is_a_harmless_200(
    client: AsyncTestClient, sms: SmsGateway, pool: Pool
) -> None:
    tokens = await _l3(client, sms, "13700000002", person(3))
    headers = bearer(tokens["access_token"])
    before = await pool.fetchval("SELECT level_changed_at FROM accounts")
    for _ in range(7):  # more than the daily attempt limit: no registry call, nothing counted
        again = await client.post(REAL_NAME, json=person(3), headers=headers)
        assert again.status_code == 200 and again.json()["level"] == "L3"
    assert await pool.fetchval("SELECT level_changed_at FROM accounts") == before


async def test_correction_needs_real_person_for_the_new_identity_and_ends_the_old_ones(
    client: AsyncTestClient, sms: SmsGateway, pool: Pool, redis: Any
) -> None:
    phone = "13700000003"
    other_device = await _l3(client, sms, phone, person(4))
    await redis.flushdb()  # the resend cooldown
    tokens = await login(client, sms, phone, device_id="device-2")
    headers = bearer(tokens["access_token"])
    account_id = tokens["account"]["id"]
    await client.post(
        "/v1/me/verification/real-person", json={"liveness_token": "live-abcdefghijklmnop"}, headers=headers
    )
    assert await _level(pool, account_id) == "L4"

    failed = await client.post(
        CORRECTION, json={**person(5), "liveness_token": "spoof-abcdefghijklmnop"}, headers=headers
    )
    assert failed.status_code == 403
    assert (await client.get("/v1/me", headers=headers)).json()["id_number"].endswith(id_number(4)[-4:])

    corrected = await client.post(
        CORRECTION, json={**person(5), "liveness_token": "live-abcdefghijklmnop"}, headers=headers
    )
    assert corrected.status_code == 200, corrected.text
    assert corrected.json()["level"] == "L4"
    assert corrected.json()["id_number"].endswith(id_number(5)[-4:])
    # The other device's session ended: its refresh token and access token are dead.
    dead = await client.post("/v1/auth/refresh", json={"refresh_token": other_device["refresh_token"]})
    assert dead.status_code == 401
    assert (await client.get("/v1/me", headers=bearer(other_device["access_token"]))).status_code == 401
    # The calling session continues and refreshes to the recomputed level.
    fresh = (await client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})).json()
    assert jwt.decode(fresh["access_token"], options={"verify_signature": False})["acr"] == "L4"
    # The old identity is released: its owner can bind it on their own account now.
    owner = await login(client, sms, "13700000004")
    bound = await client.post(REAL_NAME, json=person(4), headers=bearer(owner["access_token"]))
    assert bound.status_code == 200
    audit = await pool.fetch("SELECT outcome, details FROM audit_log WHERE action = 'identity.corrected' ORDER BY id")
    assert [r["outcome"] for r in audit] == ["failure", "success"]


# no registry oracle ------------------------------------------------------------------------


async def test_no_match_and_bound_elsewhere_are_one_answer_and_the_owner_is_told(
    client: AsyncTestClient, sms: SmsGateway, pool: Pool
) -> None:
    owner = await _l3(client, sms, "13700000011", person(11))
    stranger = bearer((await login(client, sms, "13700000012"))["access_token"])
    taken = await client.post(REAL_NAME, json=person(11), headers=stranger)
    wrong = await client.post(REAL_NAME, json={"name": "不是我", "id_number": id_number(12)}, headers=stranger)
    assert taken.status_code == wrong.status_code == 422
    strip = ("instance", "request_id")
    assert {k: v for k, v in taken.json().items() if k not in strip} == {
        k: v for k, v in wrong.json().items() if k not in strip
    }
    assert taken.json()["type"].endswith("/real-name-not-verified")
    told = await pool.fetch("SELECT subject_id FROM audit_log WHERE action = 'identity.binding_attempt'")
    assert [r["subject_id"] for r in told] == [owner["account"]["id"]]


async def test_real_name_attempts_are_limited_per_account_and_per_id_number(
    settings: Settings, clean: None, sms: SmsGateway
) -> None:
    limits = {"real_name_attempts_per_account": 3, "real_name_attempts_per_id_number": 4}
    async with app_client(settings, **limits) as (_, client):
        guesser = bearer((await login(client, sms, "13700000021"))["access_token"])
        answers = [
            (await client.post(REAL_NAME, json={"name": f"猜{i}猜", "id_number": id_number(21)}, headers=guesser))
            for i in range(4)
        ]
        assert [a.status_code for a in answers] == [422, 422, 422, 429]
        assert answers[-1].json()["reason"] == "real_name_attempts"
        # The ID number itself: guesses from a second account hit its own limit of 4 a day.
        second = bearer((await login(client, sms, "13700000022"))["access_token"])
        one = await client.post(REAL_NAME, json={"name": "猜猜", "id_number": id_number(21)}, headers=second)
        two = await client.post(REAL_NAME, json={"name": "猜猜猜", "id_number": id_number(21)}, headers=second)
        assert (one.status_code, two.status_code) == (422, 429)
        # Even the right name: the ID number is out of attempts for today.
        right = await client.post(REAL_NAME, json=person(21), headers=second)
        assert right.status_code == 429


async def test_metrics_count_registry_calls_delays_and_step_ups(client: AsyncTestClient, sms: SmsGateway) -> None:
    before = (await client.get("/metrics")).text
    tokens = await _l3(client, sms, "13700000031", person(31))
    wrong = bearer((await login(client, sms, "13700000032"))["access_token"])
    await client.post(REAL_NAME, json={"name": "不是我", "id_number": id_number(32)}, headers=wrong)
    await client.post(
        "/v1/me/verification/real-person",
        json={"liveness_token": "live-abcdefghijklmnop"},
        headers=bearer(tokens["access_token"]),
    )
    for _ in range(4):  # no code pending for this phone: the default threshold (3) imposes a delay
        await client.post("/v1/auth/login", json={"phone": "13700000033", "otp": "123456", "device": DEVICE})
    after = (await client.get("/metrics")).text
    name = "onecity_identity_registry_calls_total"
    for outcome in ("match", "no_match"):
        assert _metric(after, name, purpose="real_name", outcome=outcome) == (
            _metric(before, name, purpose="real_name", outcome=outcome) + 1
        )
    steps = "onecity_identity_step_ups_total"
    assert _metric(after, steps, kind="real_person", outcome="success") > _metric(
        before, steps, kind="real_person", outcome="success"
    )
    delays = "onecity_identity_login_delays_total"
    assert _metric(after, delays) > _metric(before, delays)
    assert "110101" not in after and "13700000033" not in after


# the owner can always log in ---------------------------------------------------------------


async def test_wrong_codes_with_nothing_pending_never_keep_the_owner_out(
    settings: Settings, clean: None, sms: SmsGateway, pool: Pool
) -> None:
    phone = "13700000041"
    async with app_client(settings) as (app, owner):
        async with from_address(app, "203.0.113.66") as attacker:
            statuses = [
                (await attacker.post("/v1/auth/login", json={"phone": phone, "otp": "123456", "device": DEVICE}))
                for _ in range(12)
            ]
        # The attacker's own address is slowed down (401, then 429 "delayed" while it waits)...
        assert statuses[0].status_code == 401
        assert any(s.status_code == 429 and s.json()["reason"] == "delayed" for s in statuses)
        # ...the owner, from their own address, is not: code and login at once.
        code = await request_otp(owner, sms, phone)
        ok = await owner.post("/v1/auth/login", json={"phone": phone, "otp": code, "device": DEVICE})
        assert ok.status_code == 200
    assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'auth.lockout'") >= 1


async def test_an_attacker_pending_code_failures_delay_only_the_attacker(
    settings: Settings, clean: None, sms: SmsGateway
) -> None:
    phone = "13700000042"
    async with app_client(settings, otp_resend_after_s=1, lockout_threshold=1) as (app, owner):
        async with from_address(app, "203.0.113.67") as attacker:
            # The attacker makes OneCity send a code (to the owner's phone) and guesses it wrong.
            assert (await attacker.post("/v1/auth/otp", json={"phone": phone})).status_code == 202
            code = await latest_otp(sms, phone)
            first = await attacker.post("/v1/auth/login", json={"phone": phone, "otp": _wrong(code), "device": DEVICE})
            # The failure delays the attacker's address (threshold 1 here)...
            assert first.status_code == 401 and first.json()["retry_after"] == 1
            for _ in range(2):
                more = await attacker.post(
                    "/v1/auth/login", json={"phone": phone, "otp": _wrong(code), "device": DEVICE}
                )
                assert more.status_code in (401, 429)
        # The owner received that code and uses it from their own address.
        ok = await owner.post("/v1/auth/login", json={"phone": phone, "otp": code, "device": DEVICE})
        assert ok.status_code == 200


async def test_strangers_voiding_a_code_never_void_it_for_the_owners_device(
    settings: Settings, clean: None, sms: SmsGateway
) -> None:
    phone = "13700000044"
    async with app_client(settings, otp_resend_after_s=1) as (app, owner):
        first = await request_otp(owner, sms, phone)
        signed_in = await owner.post("/v1/auth/login", json={"phone": phone, "otp": first, "device": DEVICE})
        assert signed_in.status_code == 200  # this device is now known for the phone
        await asyncio.sleep(1.05)
        code = await request_otp(owner, sms, phone)
        reasons = []
        for n in range(6):  # a botnet: one wrong guess from each of many addresses
            async with from_address(app, f"198.51.100.{20 + n}") as attacker:
                bad = await attacker.post(
                    "/v1/auth/login", json={"phone": phone, "otp": _wrong(code), "device": {**DEVICE, "id": f"x{n}"}}
                )
                reasons.append(bad.json()["reason"])
        assert reasons == ["wrong", "wrong", "wrong", "wrong", "dead", "dead"]
        # Strangers are out of guesses on this code, even with the right one...
        async with from_address(app, "198.51.100.99") as attacker:
            stolen = await attacker.post(
                "/v1/auth/login", json={"phone": phone, "otp": code, "device": {**DEVICE, "id": "x99"}}
            )
            assert stolen.status_code == 401 and stolen.json()["reason"] == "dead"
        # ...the owner's device, from a new address, still logs in with it.
        async with from_address(app, "192.0.2.44") as roaming:
            ok = await roaming.post("/v1/auth/login", json={"phone": phone, "otp": code, "device": DEVICE})
            assert ok.status_code == 200, ok.text


async def test_strangers_cannot_spend_the_owners_daily_codes(settings: Settings, clean: None, sms: SmsGateway) -> None:
    """The guarantee: strangers make OneCity send at most ``otp_sends_per_day`` codes a day to a
    number (here 3, at most 2 per address); the owner's known device keeps its own budget."""
    phone = "13700000043"
    limits = {
        "otp_resend_after_s": 1,
        "otp_sends_per_day": 3,
        "otp_sends_per_day_known": 2,
        "otp_stranger_sends_per_phone_per_ip": 2,
    }
    async with app_client(settings, **limits) as (app, owner):
        first = await request_otp(owner, sms, phone)  # the owner logged in once from this device
        signed_in = await owner.post("/v1/auth/login", json={"phone": phone, "otp": first, "device": DEVICE})
        assert signed_in.status_code == 200
        sent_before = len((await sms.outbox(phone)).messages)
        refused = []
        for host in ("198.51.100.1", "198.51.100.2", "198.51.100.3"):
            async with from_address(app, host) as attacker:
                for _ in range(3):
                    await asyncio.sleep(1.05)  # the 1 s resend cooldown
                    r = await attacker.post("/v1/auth/otp", json={"phone": phone})
                    refused.append(r.status_code)
        # 2 per address, 3 in all for strangers (the owner's first code came from a stranger too).
        assert refused.count(202) == 2
        assert len((await sms.outbox(phone)).messages) - sent_before == 2
        await asyncio.sleep(1.05)
        # The owner's device (a new address too: mobile networks change it) still gets codes.
        async with from_address(app, "192.0.2.10") as roaming:
            mine = await roaming.post("/v1/auth/otp", json={"phone": phone, "device_id": DEVICE["id"]})
            assert mine.status_code == 202, mine.text
            code = await latest_otp(sms, phone)
            ok = await roaming.post("/v1/auth/login", json={"phone": phone, "otp": code, "device": DEVICE})
            assert ok.status_code == 200


# recycled numbers --------------------------------------------------------------------------


async def test_a_recycled_number_sees_no_pii_codes_or_screens_until_it_proves_the_identity(
    client: AsyncTestClient, sms: SmsGateway, pool: Pool, vault: Vault, redis: Any
) -> None:
    await seed_demo_citizens(pool, vault)
    phone, name, number = DEMO_CITIZENS[0]
    await login(client, sms, phone, device_id="old-phone")
    # The citizen went quiet 91 days ago (the carrier re-issues a number after 90).
    await pool.execute(
        """UPDATE sessions SET last_seen_at = now() - interval '91 days', created_at = now() - interval '91 days'"""
    )
    await pool.execute("UPDATE accounts SET created_at = now() - interval '400 days'")
    await redis.flushdb()
    tokens = await login(client, sms, phone, device_id="new-phone")
    headers = bearer(tokens["access_token"])
    assert tokens["account"]["name"] is None and tokens["account"]["reverification_required"] is True
    me = (await client.get("/v1/me", headers=headers)).json()
    assert me["name"] is None and me["id_number"] is None and me["reverification_required"] is True
    for path in ("/v1/me/codes", "/v1/me/home", "/v1/me/health/records", "/v1/me/socsec/card"):
        refused = await client.get(path, headers=headers)
        assert refused.status_code == 403, path
        assert refused.json()["type"].endswith("/identity-reverification-required")
    assert (await client.post("/v1/me/codes/health", headers=headers)).status_code == 403
    # Nor can it approve a partner (who would then read the profile).
    approve = await client.post(
        "/oauth/authorize",
        json={
            "client_id": "any-partner",
            "redirect_uri": "https://partner.example/cb",
            "scope": "openid profile",
            "state": "st-1",
            "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "code_challenge_method": "S256",
            "nonce": "n-1",
        },
        headers=headers,
    )
    assert approve.status_code == 403 and approve.json()["type"].endswith("/identity-reverification-required")
    # Its own account routes stay open: sessions, and logout works.
    assert (await client.get("/v1/me/sessions", headers=headers)).status_code == 200
    # A wrong identity does not clear it; the bound one does.
    wrong = await client.post(REAL_NAME, json={"name": "不是我", "id_number": number}, headers=headers)
    assert wrong.status_code == 422
    proved = await client.post(REAL_NAME, json={"name": name, "id_number": number}, headers=headers)
    assert proved.status_code == 200
    fresh = (await client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})).json()
    assert fresh["account"]["name"] == name[0] + "*"
    assert (await client.get("/v1/me/codes", headers=bearer(fresh["access_token"]))).status_code == 200
    actions = {r["action"] for r in await pool.fetch("SELECT action FROM audit_log")}
    assert "identity.reverify" in actions


async def test_a_dormant_account_on_its_own_device_or_an_active_one_is_not_held_back(
    client: AsyncTestClient, sms: SmsGateway, pool: Pool, vault: Vault, redis: Any
) -> None:
    await seed_demo_citizens(pool, vault)
    phone = DEMO_CITIZENS[1][0]
    await login(client, sms, phone, device_id="old-phone")
    await redis.flushdb()
    active = await login(client, sms, phone, device_id="second-phone")
    assert active["account"]["reverification_required"] is False
    await pool.execute("UPDATE sessions SET last_seen_at = now() - interval '91 days'")
    await redis.flushdb()
    same_device = await login(client, sms, phone, device_id="old-phone")
    assert same_device["account"]["reverification_required"] is False
    assert same_device["account"]["name"] is not None


async def test_real_person_also_proves_the_identity_again(
    client: AsyncTestClient, sms: SmsGateway, pool: Pool, vault: Vault, redis: Any
) -> None:
    await seed_demo_citizens(pool, vault)
    phone = DEMO_CITIZENS[2][0]
    await pool.execute("UPDATE accounts SET created_at = now() - interval '200 days'")
    tokens = await login(client, sms, phone, device_id="new-phone")
    headers = bearer(tokens["access_token"])
    assert tokens["account"]["reverification_required"] is True
    passed = await client.post(
        "/v1/me/verification/real-person", json={"liveness_token": "live-abcdefghijklmnop"}, headers=headers
    )
    assert passed.status_code == 200
    fresh = (await client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})).json()
    assert fresh["account"]["reverification_required"] is False
    claims = jwt.decode(fresh["access_token"], options={"verify_signature": False})
    assert "reverify" not in claims and claims["acr"] == "L4"


async def test_a_held_back_session_cannot_correct_the_identity(
    client: AsyncTestClient, sms: SmsGateway, pool: Pool, vault: Vault
) -> None:
    await seed_demo_citizens(pool, vault)
    phone = DEMO_CITIZENS[0][0]
    await pool.execute("UPDATE accounts SET created_at = now() - interval '200 days'")
    tokens = await login(client, sms, phone, device_id="new-phone")
    refused = await client.post(
        CORRECTION,
        json={**person(51), "liveness_token": "live-abcdefghijklmnop"},
        headers=bearer(tokens["access_token"]),
    )
    assert refused.status_code == 403
    assert refused.json()["type"].endswith("/identity-reverification-required")


async def test_correction_ends_partner_grants_and_live_codes_of_the_old_identity(
    settings: Settings, clean: None, sms: SmsGateway, pool: Pool, vault: Vault
) -> None:
    issuer = "http://testserver.local"
    redirect = "https://hospital.example/callback"
    app = create_app(with_derived(msgspec.structs.replace(settings, public_url=issuer)))
    async with running_app(app) as client:
        partner = await ClientAdmin(pool, vault).add(
            "hospital", name="City Hospital", redirect_uris=[redirect], scopes=["openid", "profile", "codes:verify"]
        )
        assert partner is not None and partner.secret is not None
        tokens = await _l3(client, sms, "13700000061", person(61))
        tokens = (await client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})).json()
        headers = bearer(tokens["access_token"])
        # A partner grant (authorization code + PKCE) and a live health code, both of the old identity.
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        approved = await client.post(
            "/oauth/authorize",
            json={
                "client_id": "hospital",
                "redirect_uri": redirect,
                "scope": "openid profile",
                "state": "st-1",
                "code_challenge": challenge,
                "code_challenge_method": "S256",
                "nonce": "n-1",
            },
            headers=headers,
        )
        assert approved.status_code == 200, approved.text
        code = parse_qs(urlsplit(approved.json()["redirect_to"]).query)["code"][0]
        secret = partner.secret
        granted = await client.post(
            "/oauth/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect,
                "code_verifier": verifier,
            },
            auth=("hospital", secret),
        )
        assert granted.status_code == 200, granted.text
        health = await client.post("/v1/me/codes/health", headers=headers)
        assert health.status_code == 200, health.text

        corrected = await client.post(
            CORRECTION, json={**person(62), "liveness_token": "live-abcdefghijklmnop"}, headers=headers
        )
        assert corrected.status_code == 200, corrected.text

        refreshed = await client.post(
            "/oauth/token",
            data={"grant_type": "refresh_token", "refresh_token": granted.json()["refresh_token"]},
            auth=("hospital", secret),
        )
        assert refreshed.status_code in (400, 401) and refreshed.json()["error"] == "invalid_grant"
        userinfo = await client.get("/oauth/userinfo", headers=bearer(granted.json()["access_token"]))
        assert userinfo.status_code == 401
        machine = await client.post(
            "/oauth/token",
            data={"grant_type": "client_credentials", "scope": "codes:verify"},
            auth=("hospital", secret),
        )
        verified = await client.post(
            "/v1/codes/verify",
            json={"payload": health.json()["payload"]},
            headers=bearer(machine.json()["access_token"]),
        )
        assert verified.status_code == 200
        assert verified.json()["valid"] is False and verified.json()["reason"] == "revoked"
    assert await pool.fetchval("SELECT count(*) FROM oauth_consents") == 0
