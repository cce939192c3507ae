"""``Admission.channel_of``: the channel of a request is the ``client_id`` of a correctly signed
bearer token; a worker checks each token's signature once and remembers only good ones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import redis.asyncio as aioredis
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bff import peak
from bff.peak import Admission
from core.keys import KeyRing, StoredKey
from core.signing import Ed25519Signer


def _ring(signer: Ed25519Signer) -> KeyRing:
    stored = StoredKey(
        kid=signer.kid,
        purpose="token",
        public_key=signer.public_key,
        active_from=datetime.now(UTC) - timedelta(hours=1),
        retired_at=None,
        verify_until=None,
        signer=signer,
    )
    return KeyRing((stored,))


def _scope(ring: KeyRing, token: str) -> dict[str, Any]:
    app = SimpleNamespace(state=SimpleNamespace(resources=SimpleNamespace(keys=SimpleNamespace(ring=ring))))
    return {"headers": [(b"authorization", f"Bearer {token}".encode())], "app": app}


def _admission() -> Admission:
    return Admission(
        max_in_flight=8,
        channel_max_in_flight=4,
        loop_lag_ms=100,
        retry_after_s=2,
        redis=aioredis.Redis(),  # never contacted by channel_of
    )


def test_a_signed_token_names_its_channel_and_is_checked_once() -> None:
    signer = Ed25519Signer("k1", Ed25519PrivateKey.generate())
    ring = _ring(signer)
    token = signer.sign({"client_id": "partner-bus", "sub": "x"}, typ="at+jwt")
    admission = _admission()
    assert admission.channel_of(_scope(ring, token)) == "partner-bus"
    # Remembered: the same token needs no key any more (an empty ring would refuse a new one).
    assert admission.channel_of(_scope(KeyRing(()), token)) == "partner-bus"
    other = signer.sign({"client_id": "partner-metro", "sub": "y"}, typ="at+jwt")
    assert admission.channel_of(_scope(KeyRing(()), other)) == "anonymous"


def test_a_forged_signature_is_anonymous_and_never_remembered() -> None:
    signer = Ed25519Signer("k1", Ed25519PrivateKey.generate())
    forger = Ed25519Signer("k1", Ed25519PrivateKey.generate())
    ring = _ring(signer)
    forged = forger.sign({"client_id": "partner-bus"}, typ="at+jwt")
    admission = _admission()
    assert admission.channel_of(_scope(ring, forged)) == "anonymous"
    genuine = signer.sign({"client_id": "partner-bus"}, typ="at+jwt")
    assert admission.channel_of(_scope(ring, genuine)) == "partner-bus"
    # The forged token still fails after the genuine one was remembered.
    assert admission.channel_of(_scope(ring, forged)) == "anonymous"


def test_the_memory_is_bounded_oldest_first(monkeypatch: Any) -> None:
    monkeypatch.setattr(peak, "_MAX_REMEMBERED_TOKENS", 2)
    signer = Ed25519Signer("k1", Ed25519PrivateKey.generate())
    ring = _ring(signer)
    tokens = [signer.sign({"client_id": f"partner-{n}"}, typ="at+jwt") for n in range(3)]
    admission = _admission()
    for token in tokens:
        admission.channel_of(_scope(ring, token))
    empty = KeyRing(())
    assert admission.channel_of(_scope(empty, tokens[0])) == "anonymous"  # pushed out
    assert [admission.channel_of(_scope(empty, t)) for t in tokens[1:]] == ["partner-1", "partner-2"]
