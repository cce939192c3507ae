"""Data that scenarios prepare before the load: sessions with refresh tokens, live OTP codes,
real-name citizens with access tokens, the demo partner and its token, city-service codes.

Preparation writes straight to PostgreSQL and Redis with the app's own hashing, encryption and
keys (the run's :class:`core.crypto.Vault` and key store), because going through the API would
be rate limited and would take longer than the measurement itself; accounts, sessions and
login codes are written by identity's own bulk functions (:mod:`identity.bulk`), so nothing
here knows identity's tables or vault contexts. Where the server's own
work is what makes the data valid (a code's subject registered for verification, a partner
token), it goes through the API once per item that needs it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, TypeVar
from urllib.parse import quote_plus

import httpx

from bench.context import BenchContext
from codes.payload import build_claims, issue_code
from core.db import create_pool
from core.keys import KeyManager, KeyRing, KeyStore
from core.signing import b64url_decode
from identity import AccessTokens, NewCitizen, insert_signed_in, issue_login_codes
from identity.oidc.seed import DEMO_CLIENT_ID, DEMO_SECRET, seed_demo_partner
from identity.settings import IdentitySettings
from services.idnumber import check_digit
from services.tokens import ServiceTokenMinter

__all__ = [
    "Citizen",
    "basic_auth",
    "create_citizens",
    "create_sessions",
    "ensure_demo_partner",
    "gather_bounded",
    "id_number",
    "issue_codes",
    "issue_otps",
    "key_manager",
    "key_ring",
    "mint_codes",
    "partner_token",
    "phone_number",
    "send_otp",
    "service_token",
]

_T = TypeVar("_T")
#: Citizens of one pool: ``pool * _POOL_SIZE + i`` numbers their phones and ID numbers.
_POOL_SIZE = 1_000_000
_FIRST_BIRTHDAY = date(1940, 1, 1)
_ISSUE_ATTEMPTS = 5

_OTP_BATCH = 32  # at most the client's connections (redis-py refuses more than its pool)


def phone_number(prefix: str, index: int) -> str:
    """A valid mainland mobile number: two-digit ``prefix`` (``13``..``19``) then ``index``.

    Scenarios use distinct prefixes so their phones never meet (an OTP cool-down or an
    existing account would change what a request does).
    """
    if len(prefix) != 2 or not prefix.isdigit() or prefix[0] != "1" or prefix[1] < "3" or not 0 <= index < 10**9:
        raise ValueError(f"cannot make a phone number from {prefix!r} and {index}")
    return f"{prefix}{index:09d}"


async def create_sessions(ctx: BenchContext, count: int, *, phone_prefix: str = "17", first: int = 0) -> list[str]:
    """Insert ``count`` accounts, each with one live session and one unused refresh token.

    Args:
        ctx: The run.
        count: Accounts to create.
        phone_prefix: The phones' prefix (see :func:`phone_number`).
        first: Index of the first phone, so that two calls with one prefix never collide.

    Returns:
        The refresh tokens in clear (only their keyed hashes are stored, as the app does).
    """
    citizens = [
        NewCitizen(phone=phone_number(phone_prefix, i), device_id=f"bench-{i}") for i in range(first, first + count)
    ]
    conn = await ctx.connect()
    try:
        signed_in = await insert_signed_in(conn, ctx.vault, IdentitySettings(), citizens, refresh_tokens=True)
    finally:
        await conn.close()
    return [s.refresh_token for s in signed_in if s.refresh_token is not None]


async def issue_otps(ctx: BenchContext, count: int, *, phone_prefix: str = "15") -> list[tuple[str, str]]:
    """Give ``count`` fresh phones a live login code each, as ``POST /v1/auth/otp`` would.

    The codes live for the whole scenario plus a margin (the app's 5 minutes could run out
    during a long run); everything else (hash, keys, attempt counting) is the app's.

    Returns:
        ``(phone, code)`` pairs.
    """
    settings = IdentitySettings(otp_ttl_s=max(IdentitySettings().otp_ttl_s, ctx.duration_s + 600))
    redis = ctx.redis()
    phones = [phone_number(phone_prefix, i) for i in range(count)]
    try:
        codes = await issue_login_codes(redis, ctx.vault, settings, phones, concurrency=_OTP_BATCH)
    finally:
        await redis.aclose()
    return list(zip(phones, codes, strict=True))


async def send_otp(ctx: BenchContext, phone: str) -> None:
    """Ask the BFF for a login code for ``phone``, as the app does.

    Raises:
        RuntimeError: Unless the BFF accepted (202).
    """
    async with httpx.AsyncClient(base_url=ctx.base_url, timeout=10) as http:
        response = await http.post("/v1/auth/otp", json={"phone": phone})
    if response.status_code != 202:
        raise RuntimeError(f"POST /v1/auth/otp answered {response.status_code}: {response.text[:300]}")


# --- real-name citizens ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Citizen:
    """A real-name (``L3``) account with a live session and an access token for it."""

    phone: str
    account_id: str
    session_id: str
    id_number: str
    access_token: str


def id_number(serial: int) -> str:
    """A valid ID number (district 110101), different for every ``serial`` below 2.5e7.

    The simulators derive a citizen's department data from the ID number alone, so any valid
    one has a card, tests and contributions.
    """
    if not 0 <= serial < 25 * _POOL_SIZE:
        raise ValueError(f"no ID number for serial {serial}")
    born = _FIRST_BIRTHDAY + timedelta(days=serial // 1000)
    first17 = f"110101{born:%Y%m%d}{serial % 1000:03d}"
    return first17 + check_digit(first17)


@contextlib.asynccontextmanager
async def key_manager(ctx: BenchContext) -> AsyncIterator[KeyManager]:
    """The run's signing keys (what ``onecity keys ensure`` made), decrypted with its master key,
    as the server's key manager holds them."""
    pool = await create_pool(ctx.database_url, min_size=1, max_size=1)
    try:
        store = KeyStore(pool, ctx.vault)
        yield KeyManager(store, await store.load())
    finally:
        await pool.close()


async def key_ring(ctx: BenchContext) -> KeyRing:
    """A snapshot of the run's signing keys."""
    async with key_manager(ctx) as keys:
        return keys.ring


async def create_citizens(
    ctx: BenchContext, count: int, *, pool: int, token_ttl_s: int | None = None, first: int = 0
) -> list[Citizen]:
    """Insert ``count`` real-name citizens, each with a live session and an access token.

    The accounts are written by identity (:func:`identity.bulk.insert_signed_in`: level ``L3``,
    name, ID number and region, encrypted and blind-indexed by the run's vault); the access tokens are
    what a login or refresh returns (``AccessTokens.issue`` with the session and level), signed
    with the run's ``token`` key.

    Args:
        ctx: The run.
        count: Citizens to create (at most a million per pool).
        pool: Which pool (0-24): scenarios use different pools, so their citizens never meet.
        token_ttl_s: Access-token lifetime; default the server's, but at least the scenario
            plus ten minutes (a token must not expire during the load).
        first: Index of the first citizen in the pool (two calls for one pool must not overlap).
    """
    if not 0 <= pool < 25 or not first >= 0 or not 0 <= count <= _POOL_SIZE - first:
        raise ValueError(f"cannot make {count} citizens in pool {pool}")
    identity = ctx.settings.identity
    ttl = token_ttl_s or max(identity.access_token_ttl_s, ctx.duration_s + 600)
    async with key_manager(ctx) as keys:
        tokens = AccessTokens(keys, identity)
    new = []
    for i in range(first, first + count):
        serial = pool * _POOL_SIZE + i
        new.append(
            NewCitizen(
                phone=phone_number("16", serial),
                device_id=f"bench-{serial}",
                name=f"测试{i % 997}号",
                id_number=id_number(serial),
            )
        )
    conn = await ctx.connect()
    try:
        signed_in = await insert_signed_in(conn, ctx.vault, identity, new, refresh_tokens=False)
    finally:
        await conn.close()
    citizens = []
    for citizen, session in zip(new, signed_in, strict=True):
        token, _ = tokens.issue(
            subject=session.account_id, session_id=session.session_id, level=session.level, ttl_s=ttl
        )
        assert citizen.id_number is not None
        citizens.append(Citizen(citizen.phone, session.account_id, session.session_id, citizen.id_number, token))
    return citizens


async def gather_bounded(calls: Sequence[Callable[[], Awaitable[_T]]], *, limit: int = 32) -> list[_T]:
    """Run ``calls`` with at most ``limit`` at a time; results in order."""
    slots = asyncio.Semaphore(limit)

    async def one(call: Callable[[], Awaitable[_T]]) -> _T:
        async with slots:
            return await call()

    return list(await asyncio.gather(*(one(call) for call in calls)))


# --- partners ----------------------------------------------------------------------------------


def basic_auth(client_id: str, secret: str) -> str:
    """An ``Authorization: Basic`` value (RFC 6749 section 2.3.1: both parts form-encoded)."""
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


async def ensure_demo_partner(ctx: BenchContext) -> tuple[str, str]:
    """Register the demo partner (``identity.oidc.seed``, as ``onecity dev`` does) unless it
    exists; its client id and secret (scopes ``openid profile codes:verify``)."""
    pool = await create_pool(ctx.database_url, min_size=1, max_size=1)
    try:
        await seed_demo_partner(pool, ctx.vault)
    finally:
        await pool.close()
    return DEMO_CLIENT_ID, DEMO_SECRET


async def partner_token(ctx: BenchContext, scope: str = "codes:verify") -> str:
    """A ``client_credentials`` access token of the demo partner, from ``POST /oauth/token``.

    Raises:
        RuntimeError: Unless the token endpoint answered 200.
    """
    client_id, secret = await ensure_demo_partner(ctx)
    async with ctx.http() as http:
        response = await http.post(
            "/oauth/token",
            data={"grant_type": "client_credentials", "scope": scope},
            headers={"Authorization": basic_auth(client_id, secret)},
        )
    if response.status_code != 200:
        raise RuntimeError(f"POST /oauth/token answered {response.status_code}: {response.text[:300]}")
    token: str = response.json()["access_token"]
    return token


# --- codes -------------------------------------------------------------------------------------


async def issue_codes(ctx: BenchContext, citizens: Sequence[Citizen], code_type: str = "transit") -> list[str]:
    """``POST /v1/me/codes/{code_type}`` for each citizen, as the app does; the payloads.

    Issuing through the server registers each citizen's pseudonym, stores the status and fills
    the holder cache that verification reads. A 503 (the department's answer did not come in
    time, say on a busy machine) is retried a few times, as the app would after Retry-After.

    Raises:
        RuntimeError: When an issue was refused.
    """
    async with ctx.http() as http:

        async def issue(citizen: Citizen) -> str:
            for attempt in range(_ISSUE_ATTEMPTS):
                response = await http.post(
                    f"/v1/me/codes/{code_type}", headers={"Authorization": f"Bearer {citizen.access_token}"}
                )
                if response.status_code != 503 or attempt == _ISSUE_ATTEMPTS - 1:
                    break
                await asyncio.sleep(1)
            if response.status_code != 200:
                raise RuntimeError(
                    f"POST /v1/me/codes/{code_type} answered {response.status_code}: {response.text[:300]}"
                )
            payload: str = response.json()["payload"]
            return payload

        return await gather_bounded([functools.partial(issue, c) for c in citizens], limit=16)


def _claims_of(payload: str) -> dict[str, Any]:
    claims: dict[str, Any] = json.loads(b64url_decode(payload.split(":", 1)[1].split(".")[1]))
    return claims


async def mint_codes(ctx: BenchContext, issued: Sequence[str], count: int) -> list[str]:
    """``count`` new codes for the holders of ``issued`` (round-robin), signed now with the
    run's ``code`` key, each with a fresh ``jti`` and the type's normal lifetime.

    They are what the server would issue to those holders at this moment (same ``iss``,
    ``sub`` and status): verification accepts each one once with ``consume``. Signing them
    here takes a second for tens of thousands; issuing them through the API would take minutes.
    """
    if not issued:
        raise ValueError("mint_codes needs at least one issued code")
    signer = (await key_ring(ctx)).signer("code")
    templates = [_claims_of(payload) for payload in issued]
    codes = []
    for i in range(count):
        t = templates[i % len(templates)]
        claims = build_claims(t["ct"], issuer=t["iss"], subject=t["sub"], status=t["st"], rule_version=t.get("rv"))
        codes.append(issue_code(signer, claims))
    return codes


async def service_token(ctx: BenchContext, department: str, subject: str, scope: str) -> str:
    """A service token as the BFF mints it for a department call (valid 60 s), signed with the
    run's ``service`` key: lets a load run call a simulator directly."""
    ring = await key_ring(ctx)
    return ServiceTokenMinter(lambda: ring.signer("service")).mint(
        audience=department, subject=subject, scope=scope, purpose="bench"
    )
