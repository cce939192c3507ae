"""Verified access tokens are remembered per process, but never past what a full check allows."""

from __future__ import annotations

import pytest

from core.errors import Unauthorized
from core.keys import KeyManager, KeyStore
from identity.settings import IdentitySettings
from identity.tokens import API_AUDIENCE, AccessTokens


async def _tokens(key_store: KeyStore) -> tuple[AccessTokens, KeyManager]:
    keys = await KeyManager.open(key_store)
    return AccessTokens(keys, IdentitySettings()), keys


async def test_the_same_token_is_verified_once_and_its_claims_reused(key_store: KeyStore) -> None:
    tokens, _ = await _tokens(key_store)
    token, _ = tokens.issue(subject="account-1", session_id="session-1", level="L2")
    first = await tokens.verify(token)
    assert await tokens.verify(token) is first
    assert first.sub == "account-1"
    assert first.sid == "session-1"


async def test_a_remembered_token_still_expires_on_time(key_store: KeyStore) -> None:
    tokens, _ = await _tokens(key_store)
    skew = IdentitySettings().clock_skew_s
    token, _ = tokens.issue(subject="account-1", session_id="session-1", level="L2")
    claims = await tokens.verify(token)
    assert await tokens.verify(token, now=claims.exp + skew - 1) is claims
    with pytest.raises(Unauthorized) as expired:
        await tokens.verify(token, now=claims.exp + skew)
    assert expired.value.detail == "The access token has expired"
    # Issued "in the future" for a clock far behind: refused, cached or not.
    with pytest.raises(Unauthorized) as early:
        await tokens.verify(token, now=claims.iat - skew - 1)
    assert early.value.detail == "The access token is invalid"


async def test_a_token_remembered_for_one_audience_is_checked_for_another(key_store: KeyStore) -> None:
    tokens, _ = await _tokens(key_store)
    token, _ = tokens.issue(subject="account-1", session_id="session-1", level="L2")
    await tokens.verify(token)
    with pytest.raises(Unauthorized):
        await tokens.verify(token, audience=API_AUDIENCE)


async def test_a_reloaded_key_ring_makes_every_token_be_checked_again(key_store: KeyStore) -> None:
    tokens, keys = await _tokens(key_store)
    token, _ = tokens.issue(subject="account-1", session_id="session-1", level="L2")
    first = await tokens.verify(token)
    await keys.reload()  # new key objects: a retired key would now be missing from the ring
    again = await tokens.verify(token)
    assert again is not first
    assert again == first


async def test_a_forged_token_is_never_remembered(key_store: KeyStore) -> None:
    tokens, _ = await _tokens(key_store)
    token, _ = tokens.issue(subject="account-1", session_id="session-1", level="L2")
    head, body, signature = token.split(".")
    forged = f"{head}.{body}.{signature[:-4]}AAAA"
    for _ in range(2):
        with pytest.raises(Unauthorized):
            await tokens.verify(forged)
