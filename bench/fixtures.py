"""Data that scenarios prepare before the load: sessions with refresh tokens, live OTP codes.

Preparation writes straight to PostgreSQL and Redis with the app's own hashing (the run's
:class:`core.crypto.Vault`), because going through the API would be rate limited and would
take longer than the measurement itself.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from datetime import UTC, datetime, timedelta

import httpx

from bench.context import BenchContext
from identity.otp import OtpStore
from identity.settings import IdentitySettings

__all__ = ["create_sessions", "issue_otps", "phone_number", "send_otp"]

_OTP_BATCH = 32  # at most the client's connections (redis-py refuses more than its pool)


def phone_number(prefix: str, index: int) -> str:
    """A valid mainland mobile number: two-digit ``prefix`` (``13``..``19``) then ``index``.

    Scenarios use distinct prefixes so their phones never meet (an OTP cool-down or an
    existing account would change what a request does).
    """
    if len(prefix) != 2 or not prefix.isdigit() or prefix[0] != "1" or prefix[1] < "3" or not 0 <= index < 10**9:
        raise ValueError(f"cannot make a phone number from {prefix!r} and {index}")
    return f"{prefix}{index:09d}"


async def create_sessions(ctx: BenchContext, count: int, *, phone_prefix: str = "17") -> list[str]:
    """Insert ``count`` accounts, each with one live session and one unused refresh token.

    Returns:
        The refresh tokens in clear (only their keyed hashes are stored, as the app does).
    """
    vault = ctx.vault
    settings = IdentitySettings()
    now = datetime.now(UTC)
    session_expiry = now + timedelta(seconds=settings.session_absolute_ttl_s)
    token_expiry = now + timedelta(seconds=settings.refresh_idle_ttl_s)
    accounts, sessions, rows, tokens = [], [], [], []
    for i in range(count):
        phone = phone_number(phone_prefix, i)
        account_id, session_id = uuid.uuid4(), uuid.uuid4()
        # The app's own shape ("rt." + 32 random bytes); the server only hashes it.
        token = "rt." + secrets.token_urlsafe(32)
        accounts.append(
            (account_id, vault.encrypt_text(phone, context="phone"), vault.blind_index(phone, domain="phone"))
        )
        sessions.append((session_id, account_id, f"bench-{i}", "Bench phone", "ios", "otp", session_expiry))
        rows.append((vault.keyed_hash(token, domain="refresh-token"), session_id, account_id, token_expiry))
        tokens.append(token)
    conn = await ctx.connect()
    try:
        async with conn.transaction():
            # COPY: tens of thousands of rows in a second or two, not minutes of INSERTs.
            await conn.copy_records_to_table("accounts", records=accounts, columns=["id", "phone_enc", "phone_index"])
            await conn.copy_records_to_table(
                "sessions",
                records=sessions,
                columns=["id", "account_id", "device_id", "device_name", "platform", "auth_method", "expires_at"],
            )
            await conn.copy_records_to_table(
                "refresh_tokens", records=rows, columns=["token_hash", "session_id", "account_id", "expires_at"]
            )
        await conn.execute("ANALYZE accounts, sessions, refresh_tokens")
    finally:
        await conn.close()
    return tokens


async def issue_otps(ctx: BenchContext, count: int, *, phone_prefix: str = "15") -> list[tuple[str, str]]:
    """Give ``count`` fresh phones a live login code each, as ``POST /v1/auth/otp`` would.

    The codes live for the whole scenario plus a margin (the app's 5 minutes could run out
    during a long run); everything else (hash, keys, attempt counting) is the app's.

    Returns:
        ``(phone, code)`` pairs.
    """
    settings = IdentitySettings(otp_ttl_s=max(IdentitySettings().otp_ttl_s, ctx.duration_s + 600))
    redis = ctx.redis()
    store = OtpStore(redis, ctx.vault, settings)
    phones = [phone_number(phone_prefix, i) for i in range(count)]

    async def issue(phone: str) -> tuple[str, str]:
        code, refusal = await store.issue(ctx.vault.blind_index(phone, domain="phone"))
        if code is None:
            raise RuntimeError(f"could not issue an OTP while preparing: {refusal}")
        return phone, code

    pairs: list[tuple[str, str]] = []
    try:
        for start in range(0, count, _OTP_BATCH):
            pairs += await asyncio.gather(*(issue(p) for p in phones[start : start + _OTP_BATCH]))
    finally:
        await redis.aclose()
    return pairs


async def send_otp(ctx: BenchContext, phone: str) -> None:
    """Ask the BFF for a login code for ``phone``, as the app does.

    Raises:
        RuntimeError: Unless the BFF accepted (202).
    """
    async with httpx.AsyncClient(base_url=ctx.base_url, timeout=10) as http:
        response = await http.post("/v1/auth/otp", json={"phone": phone})
    if response.status_code != 202:
        raise RuntimeError(f"POST /v1/auth/otp answered {response.status_code}: {response.text[:300]}")
