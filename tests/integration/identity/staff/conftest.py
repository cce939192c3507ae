"""Fixtures of the staff tests: staff accounts created through the same code as the CLI."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
import pytest
from httpx import AsyncClient as AsyncTestClient

from bff.settings import Settings
from core.crypto import Vault
from core.db import Pool
from core.keys import KeyManager, KeyStore
from identity.staff import StaffAdmin
from identity.staff.passwords import Passwords
from identity.staff.schemas import StaffProfile
from identity.tokens import AccessTokens
from services.departments.sms import SmsGateway
from tests.integration.identity.staff.softkey import SoftAuthenticator
from tests.support.citizens import bearer, latest_otp

PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class Member:
    """A staff account of the test."""

    username: str
    phone: str
    region: str


@pytest.fixture(scope="session")
def settings(settings: Settings) -> Settings:
    """Cheaper argon2 parameters keep the suite fast; production uses RFC 9106's."""
    staff = msgspec.structs.replace(settings.staff, argon2_time_cost=1, argon2_memory_kib=8192, argon2_parallelism=1)
    return msgspec.structs.replace(settings, staff=staff)


@pytest.fixture
def staff_admin(pool: Pool, vault: Vault, settings: Settings) -> StaffAdmin:
    return StaffAdmin(pool, vault, passwords=Passwords.from_settings(settings.staff))


@pytest.fixture
async def officer(client: AsyncTestClient, staff_admin: StaffAdmin) -> Member:
    """A health officer of Dongcheng district, Beijing (110101: the demo citizens' district)."""
    await staff_admin.add(
        "officer.dongcheng",
        name="Officer Wang",
        phone="13700000001",
        password=PASSWORD,
        roles=["health_officer"],
        region="110101",
    )
    return Member("officer.dongcheng", "13700000001", "110101")


#: The security key each member of the current test enrolled (by username).
KEYS: dict[str, SoftAuthenticator] = {}


async def password_step(client: AsyncTestClient, member: Member, password: str = PASSWORD) -> dict[str, Any]:
    """Step 1; the 202 body."""
    step1 = await client.post("/v1/staff/login/password", json={"username": member.username, "password": password})
    assert step1.status_code == 202, step1.text
    body: dict[str, Any] = step1.json()
    return body


async def enrolment_token(client: AsyncTestClient, sms: SmsGateway, member: Member) -> str:
    """Password and SMS code of an account without a security key: the enrolment-only token."""
    step1 = await password_step(client, member)
    assert step1["second_factor"] == "sms" and step1["webauthn"] is None
    code = await latest_otp(sms, member.phone)
    step2 = await client.post("/v1/staff/login/otp", json={"ticket": step1["ticket"], "otp": code})
    assert step2.status_code == 200, step2.text
    assert step2.json()["enrolment_only"] is True
    token: str = step2.json()["access_token"]
    return token


async def register_key(client: AsyncTestClient, token: str, key: SoftAuthenticator | None = None) -> SoftAuthenticator:
    """Registration options, then the attestation of ``key`` (a new one by default)."""
    key = key or SoftAuthenticator()
    options = await client.post("/v1/staff/authenticators/options", headers=bearer(token))
    assert options.status_code == 200, options.text
    created = await client.post(
        "/v1/staff/authenticators",
        json={"credential": key.create(options.json()["public_key"]), "name": "YubiKey"},
        headers=bearer(token),
    )
    assert created.status_code == 201, created.text
    return key


async def webauthn_step(client: AsyncTestClient, ticket: str, credential: dict[str, Any]) -> Any:  # httpx.Response
    return await client.post("/v1/staff/login/webauthn", json={"ticket": ticket, "credential": credential})


async def sign_in(client: AsyncTestClient, sms: SmsGateway, member: Member, password: str = PASSWORD) -> str:
    """Password, then the security key (enrolled first, by SMS, if the member has none);
    returns the staff access token."""
    step1 = await password_step(client, member, password)
    if step1["second_factor"] == "sms":
        code = await latest_otp(sms, member.phone)
        enrol = await client.post("/v1/staff/login/otp", json={"ticket": step1["ticket"], "otp": code})
        assert enrol.status_code == 200, enrol.text
        KEYS[member.username] = await register_key(client, enrol.json()["access_token"])
        step1 = await password_step(client, member, password)
    assert step1["second_factor"] == "webauthn"
    step2 = await webauthn_step(client, step1["ticket"], KEYS[member.username].get(step1["webauthn"]))
    assert step2.status_code == 200, step2.text
    token: str = step2.json()["access_token"]
    return token


@pytest.fixture(scope="session")
async def tokens(key_store: KeyStore, settings: Settings) -> AccessTokens:
    """The real access token issuer, over the test key store."""
    return AccessTokens(await KeyManager.open(key_store), settings.identity)


async def add_member(
    staff_admin: StaffAdmin, username: str, roles: list[str], region: str = "110101", phone: str = "13700000005"
) -> StaffProfile:
    """A staff account with ``roles`` (through the CLI's code path)."""
    return await staff_admin.add(username, name=username, phone=phone, password=PASSWORD, roles=roles, region=region)


def staff_headers(tokens: AccessTokens, profile: StaffProfile) -> dict[str, str]:
    """Headers of a staff access token for ``profile``, as the sign-in would issue it."""
    token, _ = tokens.issue(
        subject=profile.id,
        client_id="onecity-staff",
        audience="onecity-staff",
        extra={"roles": profile.roles, "region": profile.region},
    )
    return bearer(token)
