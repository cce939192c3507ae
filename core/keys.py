"""The Ed25519 key store: signing keys per purpose, encrypted at rest, rotated with overlap.

Three independent key sets exist: ``token`` (access and ID tokens), ``code`` (city-service
codes) and ``service`` (the BFF's tokens to departments). A key of one purpose never
verifies anything of another, which is what keeps a token from passing as a code.

Rotation adds a new key and *retires* the old one: a retired key signs nothing more but
keeps verifying until ``verify_until`` (its retirement plus the longest life of what it
signed). A new key may be given a future ``active_from`` so verifiers that cache the JWKS
see it before anything signed with it reaches them.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from core.crypto import DecryptionError, MasterKeyError, Vault
from core.db import Connection, Pool
from core.signing import Ed25519Signer, public_key_to_jwk

__all__ = [
    "DEFAULT_VERIFY_GRACE",
    "PURPOSES",
    "KeyManager",
    "KeyRing",
    "KeyStore",
    "Purpose",
    "StoredKey",
]

Purpose = Literal["token", "code", "service"]
PURPOSES: tuple[Purpose, ...] = ("token", "code", "service")

#: How long a retired key keeps verifying: the longest life of anything it signed, plus margin.
#: Tokens: refresh-bound ID/access tokens live minutes; codes: venue codes live up to a year.
DEFAULT_VERIFY_GRACE: Mapping[str, timedelta] = {
    "token": timedelta(days=1),
    "code": timedelta(days=400),
    "service": timedelta(hours=1),
}

# Serialises key creation across processes (two BFFs starting on an empty store).
_KEYS_LOCK_ID = 0x0C17_0002


@dataclass(frozen=True, slots=True)
class StoredKey:
    """One key as loaded from the store."""

    kid: str
    purpose: str
    public_key: Ed25519PublicKey
    active_from: datetime
    retired_at: datetime | None
    verify_until: datetime | None
    signer: Ed25519Signer | None  # only keys that may still sign are decrypted


@dataclass(frozen=True, slots=True)
class KeyRing:
    """An immutable snapshot of the key store, cheap to query on every request."""

    keys: tuple[StoredKey, ...]
    loaded_at: float = field(default_factory=time.monotonic)

    def signer(self, purpose: str, *, now: datetime | None = None) -> Ed25519Signer:
        """The newest key of ``purpose`` whose ``active_from`` has passed.

        Raises:
            LookupError: if the purpose has no usable key (``ensure_active`` was not run).
        """
        moment = now or datetime.now(UTC)
        candidates = [k for k in self.keys if k.purpose == purpose and k.signer is not None and k.active_from <= moment]
        if not candidates:
            raise LookupError(f"no active {purpose} key")
        best = max(candidates, key=lambda k: k.active_from)
        assert best.signer is not None
        return best.signer

    def public_key(self, kid: str, purpose: str, *, now: datetime | None = None) -> Ed25519PublicKey | None:
        """The public key ``kid`` if it belongs to ``purpose`` and may still verify."""
        moment = now or datetime.now(UTC)
        for k in self.keys:
            if k.kid == kid:
                if k.purpose != purpose or (k.verify_until is not None and k.verify_until <= moment):
                    return None
                return k.public_key
        return None

    def jwks(self, purposes: Iterable[str]) -> dict[str, list[dict[str, str]]]:
        """JWKS (RFC 7517) of every key of ``purposes`` that verifies now or will sign soon."""
        wanted = set(purposes)
        moment = datetime.now(UTC)
        return {
            "keys": [
                public_key_to_jwk(k.public_key, kid=k.kid)
                for k in sorted(self.keys, key=lambda k: (k.purpose, k.active_from))
                if k.purpose in wanted and (k.verify_until is None or k.verify_until > moment)
            ]
        }


class KeyStore:
    """Reads and writes ``signing_keys``; private keys are AES-GCM ciphertext under the vault.

    Args:
        pool: The asyncpg pool.
        vault: Encrypts private keys; its master key must be the one they were stored with.
        verify_grace: Per purpose, how long a retired key keeps verifying.
    """

    def __init__(self, pool: Pool, vault: Vault, verify_grace: Mapping[str, timedelta] = DEFAULT_VERIFY_GRACE) -> None:
        self._pool = pool
        self._vault = vault
        self._grace = dict(verify_grace)

    @staticmethod
    def _new_kid(purpose: str) -> str:
        return f"{purpose}-{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(4)}"

    def _encrypt(self, kid: str, key: Ed25519PrivateKey) -> bytes:
        raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        # The kid is bound as associated data: a ciphertext copied onto another row fails.
        return self._vault.encrypt(raw, context=f"signing-key:{kid}")

    async def ensure_active(self, purposes: Iterable[str] = PURPOSES) -> list[str]:
        """Create a first key for each purpose that has none that can sign; return new kids."""
        created: list[str] = []
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _KEYS_LOCK_ID)
            for purpose in purposes:
                has = await conn.fetchval(
                    "SELECT 1 FROM signing_keys WHERE purpose = $1 AND retired_at IS NULL LIMIT 1", purpose
                )
                if not has:
                    created.append(await self._insert(conn, purpose, datetime.now(UTC)))
        return created

    async def _insert(self, conn: Connection, purpose: str, active_from: datetime) -> str:
        key = Ed25519PrivateKey.generate()
        kid = self._new_kid(purpose)
        await conn.execute(
            """INSERT INTO signing_keys (kid, purpose, public_key, private_key_enc, active_from)
               VALUES ($1, $2, $3, $4, $5)""",
            kid,
            purpose,
            key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw),
            self._encrypt(kid, key),
            active_from,
        )
        return kid

    async def rotate(self, purpose: str, *, activate_in: timedelta = timedelta(0)) -> str:
        """Add a new key for ``purpose`` and retire the current ones when it takes over.

        Args:
            purpose: ``token``, ``code`` or ``service``.
            activate_in: Delay before the new key signs; publish first, sign later.

        Returns:
            The new key's ``kid``.
        """
        if purpose not in PURPOSES:
            raise ValueError(f"unknown key purpose {purpose!r}")
        active_from = datetime.now(UTC) + activate_in
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _KEYS_LOCK_ID)
            await conn.execute(
                """UPDATE signing_keys SET retired_at = $2::timestamptz, verify_until = $2::timestamptz + $3::interval
                   WHERE purpose = $1 AND retired_at IS NULL""",
                purpose,
                active_from,
                self._grace[purpose],
            )
            return await self._insert(conn, purpose, active_from)

    async def load(self) -> KeyRing:
        """Snapshot every key that still verifies, decrypting those that may still sign.

        Raises:
            MasterKeyError: if the master key does not decrypt the stored keys.
        """
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                """SELECT kid, purpose, public_key, private_key_enc, active_from, retired_at, verify_until
                   FROM signing_keys WHERE verify_until IS NULL OR verify_until > now()"""
            )
        now = datetime.now(UTC)
        keys = []
        for r in rows:
            signer = None
            if r["retired_at"] is None or r["retired_at"] > now:
                try:
                    raw = self._vault.decrypt(r["private_key_enc"], context=f"signing-key:{r['kid']}")
                except DecryptionError as exc:
                    raise MasterKeyError(
                        "ONECITY_MASTER_KEY does not decrypt the stored signing keys: wrong master key"
                    ) from exc
                signer = Ed25519Signer(r["kid"], Ed25519PrivateKey.from_private_bytes(raw))
            keys.append(
                StoredKey(
                    kid=r["kid"],
                    purpose=r["purpose"],
                    public_key=Ed25519PublicKey.from_public_bytes(bytes(r["public_key"])),
                    active_from=r["active_from"],
                    retired_at=r["retired_at"],
                    verify_until=r["verify_until"],
                    signer=signer,
                )
            )
        return KeyRing(tuple(keys))


class KeyManager:
    """Holds the current :class:`KeyRing` of one process and keeps it fresh.

    Another process (``onecity keys rotate``) may change the store at any time; the ring is
    reloaded every ``refresh_s`` seconds, and when a verifier meets an unknown ``kid``. Misses
    are *single-flight*: every concurrent miss waits for the one reload in flight instead of
    starting its own, and a miss starts a reload at most once per ``miss_reload_s`` seconds
    (counted from the last load of any kind). So a burst of random kids from an attacker costs
    at most one query per interval, and a key rotated in by another process is found at most
    ``miss_reload_s`` seconds after it appears.

    Attributes:
        reloads: How many times this manager loaded the store (a counter for tests and metrics).
    """

    def __init__(self, store: KeyStore, ring: KeyRing, *, refresh_s: float = 60.0, miss_reload_s: float = 5.0) -> None:
        self.store = store
        self.ring = ring
        self.reloads = 0
        self._refresh_s = refresh_s
        self._miss_reload_s = miss_reload_s
        self._lock = asyncio.Lock()
        self._inflight: asyncio.Task[KeyRing] | None = None
        self._last_miss_reload = float("-inf")

    @classmethod
    async def open(cls, store: KeyStore, **kwargs: float) -> KeyManager:
        """Ensure every purpose has a key, load the ring, and return a manager."""
        await store.ensure_active()
        return cls(store, await store.load(), **kwargs)

    def signer(self, purpose: str) -> Ed25519Signer:
        """The key to sign with now for ``purpose``."""
        return self.ring.signer(purpose)

    async def reload(self) -> KeyRing:
        """Reload the ring from the store now."""
        async with self._lock:
            self.reloads += 1
            self.ring = await self.store.load()
            return self.ring

    async def _reload_after_miss(self) -> KeyRing:
        """The ring after the one shared reload of a burst of misses (or as it is, if the last
        load is more recent than ``miss_reload_s``)."""
        inflight = self._inflight
        if inflight is None:
            now = time.monotonic()
            if now - max(self.ring.loaded_at, self._last_miss_reload) < self._miss_reload_s:
                return self.ring
            self._last_miss_reload = now
            inflight = self._inflight = asyncio.get_running_loop().create_task(self.reload())

            def done(task: asyncio.Task[KeyRing]) -> None:
                self._inflight = None
                if not task.cancelled():
                    task.exception()  # retrieved: waiters (if any) got it already

            inflight.add_done_callback(done)
        # shield: a cancelled request must not cancel the reload the others are waiting for.
        return await asyncio.shield(inflight)

    async def public_key(self, kid: str, purpose: str) -> Ed25519PublicKey | None:
        """Look ``kid`` up, sharing one rate-limited reload with concurrent misses if unknown."""
        key = self.ring.public_key(kid, purpose)
        if key is None:
            key = (await self._reload_after_miss()).public_key(kid, purpose)
        return key

    async def refresh_forever(self) -> None:
        """Background task: reload every ``refresh_s`` seconds; errors wait for the next turn."""
        while True:
            await asyncio.sleep(self._refresh_s)
            try:
                await self.reload()
            except Exception:  # noqa: S112 - a failed refresh keeps the last good ring
                continue
