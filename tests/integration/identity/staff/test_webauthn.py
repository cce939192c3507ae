"""WebAuthn security keys as the staff second factor, with a software authenticator whose
attestation and assertions py_webauthn verifies exactly as a hardware key's."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec
from httpx import AsyncClient as AsyncTestClient

from core.db import Pool
from identity.staff import StaffAdmin
from identity.tokens import AccessTokens
from services.departments.sms import SmsGateway
from tests.integration.identity.staff.conftest import (
    KEYS,
    PASSWORD,
    Member,
    add_member,
    enrolment_token,
    password_step,
    register_key,
    sign_in,
    staff_headers,
    webauthn_step,
)
from tests.integration.identity.staff.softkey import SoftAuthenticator, b64url
from tests.support.citizens import bearer, latest_otp


def _type(response: object) -> str:
    body = response.json()  # type: ignore[attr-defined]
    return str(body["type"]).rsplit("/", 1)[-1]


async def _sms_count(sms: SmsGateway, member: Member) -> int:
    return len((await sms.outbox(member.phone)).messages)


async def test_registration_then_sign_in_with_the_key(
    client: AsyncTestClient, sms: SmsGateway, officer: Member, pool: Pool
) -> None:
    spare = await enrolment_token(client, sms, officer)
    enrol = await enrolment_token(client, sms, officer)
    # The enrolment-only token registers a key and does nothing else.
    assert (await client.get("/v1/staff/me", headers=bearer(enrol))).status_code == 401
    assert (await client.get("/v1/admin/audit", headers=bearer(enrol))).status_code == 401
    assert (await client.get("/v1/admin/health-rules", headers=bearer(enrol))).status_code == 401

    options = (await client.post("/v1/staff/authenticators/options", headers=bearer(enrol))).json()
    assert options["public_key"]["rp"]["id"] == "localhost"
    assert options["public_key"]["attestation"] == "none"
    key = SoftAuthenticator()
    created = await client.post(
        "/v1/staff/authenticators",
        json={"credential": key.create(options["public_key"]), "name": "YubiKey 5"},
        headers=bearer(enrol),
    )
    assert created.status_code == 201, created.text
    assert created.json()["name"] == "YubiKey 5" and created.json()["transports"] == ["usb", "nfc"]
    stored = await pool.fetchrow("SELECT * FROM staff_authenticators")
    assert bytes(stored["credential_id"]) == key.credential_id
    assert stored["sign_count"] == 0 and stored["transports"] == ["usb", "nfc"] and len(stored["public_key"]) > 64

    # One key per enrolment token, and only while the account has none.
    again = await register_key_raw(client, enrol, SoftAuthenticator())
    assert again.status_code == 422 and _type(again) == "webauthn-registration-failed"
    other = await client.post(  # a second enrolment token, issued before the key existed
        "/v1/staff/authenticators", json={"credential": {}}, headers=bearer(spare)
    )
    assert other.status_code == 422 and "has a security key" in other.json()["detail"]

    sent = await _sms_count(sms, officer)
    step1 = await password_step(client, officer)
    assert step1["second_factor"] == "webauthn"
    assert [c["id"] for c in step1["webauthn"]["allowCredentials"]] == [b64url(key.credential_id)]
    assert await _sms_count(sms, officer) == sent  # no SMS for an account with a key
    step2 = await webauthn_step(client, step1["ticket"], key.get(step1["webauthn"]))
    assert step2.status_code == 200, step2.text
    token = step2.json()["access_token"]
    assert step2.json()["enrolment_only"] is False
    assert (await client.get("/v1/staff/me", headers=bearer(token))).status_code == 200
    assert await pool.fetchval("SELECT sign_count FROM staff_authenticators") == 1
    listed = (await client.get("/v1/staff/authenticators", headers=bearer(token))).json()["authenticators"]
    assert [a["name"] for a in listed] == ["YubiKey 5"] and listed[0]["last_used_at"] is not None


async def register_key_raw(client: AsyncTestClient, token: str, key: SoftAuthenticator) -> object:
    options = await client.post("/v1/staff/authenticators/options", headers=bearer(token))
    return await client.post(
        "/v1/staff/authenticators",
        json={"credential": key.create(options.json()["public_key"])},
        headers=bearer(token),
    )


async def test_a_registration_must_answer_its_own_challenge(
    client: AsyncTestClient, sms: SmsGateway, officer: Member
) -> None:
    enrol = await enrolment_token(client, sms, officer)
    key = SoftAuthenticator()
    forged = key.create({"rp": {"id": "localhost"}, "challenge": b64url(b"x" * 32)})
    response = await client.post("/v1/staff/authenticators", json={"credential": forged}, headers=bearer(enrol))
    assert response.status_code == 422 and _type(response) == "webauthn-registration-failed"  # no options asked
    options = (await client.post("/v1/staff/authenticators/options", headers=bearer(enrol))).json()["public_key"]
    phished = SoftAuthenticator(origin="https://evil.example").create(options)
    response = await client.post("/v1/staff/authenticators", json={"credential": phished}, headers=bearer(enrol))
    assert response.status_code == 422  # wrong origin; and the challenge is used up now
    response = await client.post(
        "/v1/staff/authenticators", json={"credential": key.create(options)}, headers=bearer(enrol)
    )
    assert response.status_code == 422 and _type(response) == "webauthn-registration-failed"
    for credential in (
        {"id": 1},
        {**key.create(options), "response": {"clientDataJSON": "!!", "attestationObject": "AAAA"}},
        {**key.create(options), "response": {"clientDataJSON": b64url(b"{}"), "attestationObject": b64url(b"\xff")}},
    ):
        await client.post("/v1/staff/authenticators/options", headers=bearer(enrol))
        garbage = await client.post("/v1/staff/authenticators", json={"credential": credential}, headers=bearer(enrol))
        assert garbage.status_code == 422, garbage.text


async def test_a_wrong_signature_is_refused(
    client: AsyncTestClient, sms: SmsGateway, officer: Member, pool: Pool
) -> None:
    await sign_in(client, sms, officer)
    key = KEYS[officer.username]
    step1 = await password_step(client, officer)
    forged = key.get(step1["webauthn"], signing_key=ec.generate_private_key(ec.SECP256R1()))
    response = await webauthn_step(client, step1["ticket"], forged)
    assert response.status_code == 401 and _type(response) == "second-factor-failed"
    step1 = await password_step(client, officer)
    phished = key.get(step1["webauthn"], origin="https://evil.example")
    response = await webauthn_step(client, step1["ticket"], phished)
    assert response.status_code == 401 and _type(response) == "second-factor-failed"
    assert await pool.fetchval("SELECT sign_count FROM staff_authenticators") == 1  # only the good sign-in
    failures = await pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE action = 'staff.login' AND outcome = 'failure'"
        " AND details->>'second_factor' = 'webauthn'"
    )
    assert failures == 2


async def test_a_replayed_challenge_is_refused(client: AsyncTestClient, sms: SmsGateway, officer: Member) -> None:
    await sign_in(client, sms, officer)
    key = KEYS[officer.username]
    step1 = await password_step(client, officer)
    assertion = key.get(step1["webauthn"])
    assert (await webauthn_step(client, step1["ticket"], assertion)).status_code == 200
    replay = await webauthn_step(client, step1["ticket"], assertion)
    assert replay.status_code == 401 and _type(replay) == "second-factor-failed"
    # The same assertion under a fresh ticket answers the wrong challenge.
    fresh = await password_step(client, officer)
    assert (await webauthn_step(client, fresh["ticket"], assertion)).status_code == 401
    # A failed attempt used the ticket up too: no second try with the right answer.
    assert (await webauthn_step(client, fresh["ticket"], key.get(fresh["webauthn"]))).status_code == 401


async def test_a_cloned_key_is_refused_and_blocked_until_recovery(
    client: AsyncTestClient, sms: SmsGateway, officer: Member, pool: Pool, staff_admin: StaffAdmin, tokens: AccessTokens
) -> None:
    await sign_in(client, sms, officer)  # counter 1
    key = KEYS[officer.username]
    clone = key.clone()  # copied now, at 1
    await sign_in(client, sms, officer)  # the real key: 2
    step1 = await password_step(client, officer)
    response = await webauthn_step(client, step1["ticket"], clone.get(step1["webauthn"]))  # the copy says 2
    assert response.status_code == 401 and _type(response) == "authenticator-cloned"
    assert await pool.fetchval("SELECT revoked_reason FROM staff_authenticators") == "cloned"
    cloned_rows = await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'staff.authenticator.cloned'")
    assert cloned_rows == 1
    # Blocked: neither key signs in, and the account does not fall back to SMS enrolment.
    sent = await _sms_count(sms, officer)
    blocked = await client.post("/v1/staff/login/password", json={"username": officer.username, "password": PASSWORD})
    assert blocked.status_code == 401 and _type(blocked) == "authenticator-cloned"
    assert await _sms_count(sms, officer) == sent

    # A security administrator's recovery lets the member enrol a new key by SMS.
    security = await add_member(staff_admin, "sec.admin", ["security_admin"], region="1101", phone="13700000009")
    officer_id = await pool.fetchval("SELECT id::text FROM staff WHERE username = $1", officer.username)
    recovered = await client.post(f"/v1/admin/staff/{officer_id}/recovery", headers=staff_headers(tokens, security))
    assert recovered.status_code == 200 and recovered.json() == {"staff_id": officer_id, "revoked": 0}
    token = await sign_in(client, sms, officer)  # SMS enrolment of a new key, then the key
    assert (await client.get("/v1/staff/me", headers=bearer(token))).status_code == 200


async def test_an_account_with_a_key_cannot_sign_in_by_sms_alone(
    client: AsyncTestClient, sms: SmsGateway, officer: Member
) -> None:
    pending = await password_step(client, officer)  # an SMS ticket from before the key existed
    pending_code = await latest_otp(sms, officer.phone)
    enrol = await enrolment_token(client, sms, officer)
    await register_key(client, enrol)

    step1 = await password_step(client, officer)
    assert step1["second_factor"] == "webauthn"
    for otp in ("000000", pending_code):
        response = await client.post("/v1/staff/login/otp", json={"ticket": step1["ticket"], "otp": otp})
        assert response.status_code == 401 and _type(response) == "webauthn-required"
    late = await client.post("/v1/staff/login/otp", json={"ticket": pending["ticket"], "otp": pending_code})
    assert late.status_code == 401 and _type(late) == "webauthn-required"


async def test_recovery_is_a_security_administrators_act(
    client: AsyncTestClient, sms: SmsGateway, officer: Member, pool: Pool, staff_admin: StaffAdmin, tokens: AccessTokens
) -> None:
    await sign_in(client, sms, officer)
    old_key = KEYS[officer.username]
    officer_id = await pool.fetchval("SELECT id::text FROM staff WHERE username = $1", officer.username)
    security = await add_member(staff_admin, "sec.admin", ["security_admin"], region="1101", phone="13700000009")
    system = await add_member(staff_admin, "sys.admin", ["system_admin"], region="1101", phone="13700000010")
    path = f"/v1/admin/staff/{officer_id}/recovery"

    refused = await client.post(path, headers=staff_headers(tokens, system))
    assert refused.status_code == 403 and _type(refused) == "forbidden"
    own = await client.post(f"/v1/admin/staff/{security.id}/recovery", headers=staff_headers(tokens, security))
    assert own.status_code == 403
    done = await client.post(path, headers=staff_headers(tokens, security))
    assert done.status_code == 200 and done.json()["revoked"] == 1
    audit = await pool.fetchrow("SELECT * FROM audit_log WHERE action = 'staff.authenticator.recovery'")
    assert (audit["actor_id"], audit["subject_id"], audit["details"]) == (security.id, officer_id, {"revoked": 1})

    # Next sign-in: SMS, enrolment only; the old key is gone.
    enrol = await enrolment_token(client, sms, officer)
    new_key = await register_key(client, enrol)
    step1 = await password_step(client, officer)
    assert [c["id"] for c in step1["webauthn"]["allowCredentials"]] == [b64url(new_key.credential_id)]
    assert (await webauthn_step(client, step1["ticket"], old_key.get(step1["webauthn"]))).status_code == 401
    step1 = await password_step(client, officer)
    assert (await webauthn_step(client, step1["ticket"], new_key.get(step1["webauthn"]))).status_code == 200


async def test_metrics_count_step_ups_and_second_factor_results(
    client: AsyncTestClient, sms: SmsGateway, officer: Member
) -> None:
    await sign_in(client, sms, officer)
    step1 = await password_step(client, officer)
    assert (await webauthn_step(client, step1["ticket"], {"id": "nope"})).status_code == 401
    for credential in (
        {"id": "x", "rawId": "!!", "response": {}, "type": "public-key"},
        {**KEYS[officer.username].get(step1["webauthn"]), "response": {"authenticatorData": "AA"}},
    ):
        step1 = await password_step(client, officer)
        assert (await webauthn_step(client, step1["ticket"], credential)).status_code == 401
    text = (await client.get("/metrics")).text
    for line in (
        'onecity_staff_step_ups_total{method="webauthn"}',
        'onecity_staff_step_ups_total{method="sms"}',
        'onecity_staff_second_factor_total{method="webauthn",result="success"}',
        'onecity_staff_second_factor_total{method="webauthn",result="failure"}',
        'onecity_staff_second_factor_total{method="sms",result="enrolment"}',
        'onecity_staff_authenticator_registrations_total{result="success"}',
    ):
        assert line in text, line
    assert "officer.dongcheng" not in text
