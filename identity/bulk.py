"""Signed-in citizens and login codes by the thousand, for load preparation.

The benchmark prepares tens of thousands of accounts before it measures; the API would rate
limit that and take longer than the measurement. These functions write what a login writes
(an account, a session, optionally a refresh token) and what ``POST /v1/auth/otp`` keeps (a
live code), with identity's own encryption, hashing and Redis scripts, so nothing outside
identity names its tables, vault contexts or key layout. They are not used by the app.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from core.crypto import Vault
from core.db import Connection
from core.redis import Redis
from identity.otp import OtpStore
from identity.pii import Pii
from identity.repository import IdentityRepository
from identity.service import new_refresh_token, refresh_token_hash
from identity.settings import IdentitySettings

__all__ = ["NewCitizen", "SignedIn", "insert_signed_in", "issue_login_codes"]


@dataclass(frozen=True, slots=True, kw_only=True)
class NewCitizen:
    """An account to create, signed in on one device.

    Attributes:
        phone: The account's phone (unique).
        device_id: The session's device.
        name: With ``id_number``: a bound (``L3``) account; without: ``L2``.
        id_number: The bound ID number (unique); its first six digits are the region.
    """

    phone: str
    device_id: str
    name: str | None = None
    id_number: str | None = None


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A created account and its live session."""

    account_id: str
    session_id: str
    level: str
    refresh_token: str | None


async def insert_signed_in(
    conn: Connection,
    vault: Vault,
    settings: IdentitySettings,
    citizens: Sequence[NewCitizen],
    *,
    refresh_tokens: bool,
    device_name: str = "Bench phone",
    platform: str = "ios",
) -> list[SignedIn]:
    """Create the accounts, each with one live session (``otp`` login) and, when asked, one
    unused refresh token; in one transaction, by ``COPY``.

    Args:
        conn: A connection to the database (not in a transaction).
        vault: The run's vault: the server must be able to read what is written.
        settings: Session and refresh-token lifetimes.
        citizens: What to create.
        refresh_tokens: Also give each session a refresh token (returned in clear; only
            its keyed hash is stored, as a login does).
        device_name: The sessions' device name.
        platform: The sessions' platform.

    Returns:
        One :class:`SignedIn` per citizen, in order.
    """
    pii = Pii(vault)
    now = datetime.now(UTC)
    session_expiry = now + timedelta(seconds=settings.session_absolute_ttl_s)
    token_expiry = now + timedelta(seconds=settings.refresh_idle_ttl_s)
    accounts, sessions, tokens, signed_in = [], [], [], []
    for citizen in citizens:
        account_id, session_id = uuid.uuid4(), uuid.uuid4()
        stored = pii.account(citizen.phone, citizen.name, citizen.id_number)
        level = "L2" if stored.id_number_index is None else "L3"
        accounts.append(
            (
                account_id,
                stored.phone_enc,
                stored.phone_index,
                level,
                stored.name_enc,
                stored.id_number_enc,
                stored.id_number_index,
                stored.region_code,
            )
        )
        sessions.append((session_id, account_id, citizen.device_id, device_name, platform, "otp", session_expiry))
        token = new_refresh_token() if refresh_tokens else None
        if token is not None:
            tokens.append((refresh_token_hash(vault, token), session_id, account_id, token_expiry))
        signed_in.append(SignedIn(str(account_id), str(session_id), level, token))
    await IdentityRepository.copy_signed_in(conn, accounts=accounts, sessions=sessions, refresh_tokens=tokens)
    return signed_in


async def issue_login_codes(
    redis: Redis, vault: Vault, settings: IdentitySettings, phones: Sequence[str], *, concurrency: int = 32
) -> list[str]:
    """Give each phone a live login code, as ``POST /v1/auth/otp`` would (limits included).

    Args:
        redis: The run's Redis.
        vault: The run's vault.
        settings: OTP lifetime and limits (a long ``otp_ttl_s`` keeps codes alive for a run).
        phones: The phones.
        concurrency: Codes issued at once (at most the Redis client's connections).

    Returns:
        The codes, in the order of ``phones``.

    Raises:
        RuntimeError: A limit refused a code.
    """
    store = OtpStore(redis, vault, settings)
    pii = Pii(vault)

    async def issue(phone: str) -> str:
        issued, refusal = await store.issue(pii.phone.index(phone), client_ip=None)
        if issued is None:
            raise RuntimeError(f"could not issue a login code: {refusal}")
        return issued.code

    codes: list[str] = []
    for start in range(0, len(phones), concurrency):
        codes += await asyncio.gather(*(issue(phone) for phone in phones[start : start + concurrency]))
    return codes
