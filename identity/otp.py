"""One-time login codes and the limits around them, in Redis.

A code lives ``otp_ttl_s`` seconds, is stored only as a keyed hash, dies after one use or
``otp_max_attempts`` wrong guesses, and can be requested once a minute and ten times a day
per phone, and a bounded number of times per hour per client address. Failed attempts on
a phone across codes lead to a short lockout. Every check-and-update is one Lua script, so
two concurrent requests can never both pass a limit or both use a code.

Failure policy: **fail closed**. Without Redis the limits cannot be enforced, so OTP sends
and logins answer 503 rather than run unlimited.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass
from enum import Enum

from core.crypto import Vault
from core.redis import Redis
from identity.settings import IdentitySettings

__all__ = ["OtpCheck", "OtpOutcome", "OtpStore", "SendRefusal"]

# KEYS: lock, cooldown, day, code   ARGV: code_hash, ttl, cooldown_s, per_day
_SEND = """
local lock_ttl = redis.call('PTTL', KEYS[1])
if lock_ttl > 0 then return {'locked', lock_ttl} end
local cool_ttl = redis.call('PTTL', KEYS[2])
if cool_ttl > 0 then return {'cooldown', cool_ttl} end
local sent = tonumber(redis.call('GET', KEYS[3]) or '0')
if sent >= tonumber(ARGV[4]) then return {'daily', redis.call('PTTL', KEYS[3])} end
redis.call('SET', KEYS[2], '1', 'PX', tonumber(ARGV[3]) * 1000)
if redis.call('INCR', KEYS[3]) == 1 then redis.call('EXPIRE', KEYS[3], 86400) end
redis.call('DEL', KEYS[4])
redis.call('HSET', KEYS[4], 'h', ARGV[1], 'n', 0)
redis.call('EXPIRE', KEYS[4], tonumber(ARGV[2]))
return {'ok', 0}
"""

# KEYS: lock, code, fails   ARGV: candidate_hash, max_attempts, threshold, window_s, lockout_s
_CHECK = """
local lock_ttl = redis.call('PTTL', KEYS[1])
if lock_ttl > 0 then return {'locked', lock_ttl} end
local stored = redis.call('HGET', KEYS[2], 'h')
if stored and stored == ARGV[1] then
  redis.call('DEL', KEYS[2])
  return {'ok', 0}
end
local fails = redis.call('INCR', KEYS[3])
if fails == 1 then redis.call('EXPIRE', KEYS[3], tonumber(ARGV[4])) end
if fails >= tonumber(ARGV[3]) then
  redis.call('SET', KEYS[1], '1', 'EX', tonumber(ARGV[5]))
  redis.call('DEL', KEYS[2], KEYS[3])
  return {'locked_now', tonumber(ARGV[5]) * 1000}
end
if not stored then return {'no_code', 0} end
local tries = redis.call('HINCRBY', KEYS[2], 'n', 1)
if tries >= tonumber(ARGV[2]) then
  redis.call('DEL', KEYS[2])
  return {'dead', 0}
end
return {'wrong', tonumber(ARGV[2]) - tries}
"""


class OtpOutcome(Enum):
    """What a code check found."""

    OK = "ok"
    WRONG = "wrong"  # try again (``remaining`` attempts left on this code)
    DEAD = "dead"  # too many wrong guesses: the code is gone, ask for a new one
    NO_CODE = "no_code"  # nothing pending (expired, used, or never sent)
    LOCKED = "locked"  # the phone is locked out for ``retry_after_s``
    LOCKED_NOW = "locked_now"  # this failure triggered the lockout


@dataclass(frozen=True, slots=True)
class OtpCheck:
    """Result of :meth:`OtpStore.check`."""

    outcome: OtpOutcome
    remaining: int = 0
    retry_after_s: int = 0


@dataclass(frozen=True, slots=True)
class SendRefusal:
    """Why a code was not sent, and when asking again can work."""

    reason: str  # locked | cooldown | daily | ip
    retry_after_s: int


class OtpStore:
    """Issues and checks codes for phones identified by their blind index."""

    def __init__(self, redis: Redis, vault: Vault, settings: IdentitySettings) -> None:
        self._redis = redis
        self._settings = settings
        self._hash_key = vault.derive(b"onecity/otp/v1")
        self._send = redis.register_script(_SEND)
        self._check = redis.register_script(_CHECK)

    @staticmethod
    def _keys(phone_index: bytes) -> tuple[str, str, str, str, str]:
        # One hash tag per phone: the script's keys share a Redis Cluster slot.
        tag = "{p:" + phone_index.hex()[:32] + "}"
        return (
            f"oc:otp:{tag}:lock",
            f"oc:otp:{tag}:cool",
            f"oc:otp:{tag}:day",
            f"oc:otp:{tag}:code",
            f"oc:otp:{tag}:fails",
        )

    def _hash(self, phone_index: bytes, code: str) -> str:
        return hmac.new(self._hash_key, phone_index + b":" + code.encode(), "sha256").hexdigest()

    async def allow_ip(self, client_ip: str) -> SendRefusal | None:
        """Count one send for ``client_ip`` this hour; refuse past the hourly limit."""
        hour = int(time.time() // 3600)
        key = f"oc:otp:ip:{client_ip}:{hour}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, 3600)
            count, _ = await pipe.execute()
        if count > self._settings.otp_sends_per_ip_per_hour:
            return SendRefusal("ip", 3600 - int(time.time()) % 3600)
        return None

    async def issue(self, phone_index: bytes) -> tuple[str | None, SendRefusal | None]:
        """Create a fresh code for the phone, or say why not. The code is returned once,
        for the SMS, and never stored in clear."""
        code = f"{secrets.randbelow(1_000_000):06d}"
        lock, cool, day, code_key, _ = self._keys(phone_index)
        s = self._settings
        status, ttl_ms = await self._send(
            keys=[lock, cool, day, code_key],
            args=[self._hash(phone_index, code), s.otp_ttl_s, s.otp_resend_after_s, s.otp_sends_per_day],
        )
        if status != b"ok":
            return None, SendRefusal(status.decode(), max(1, -(-int(ttl_ms) // 1000)))
        return code, None

    async def withdraw(self, phone_index: bytes) -> None:
        """Undo an :meth:`issue` whose SMS could not be sent (so the citizen can retry now)."""
        _lock, cool, day, code_key, _ = self._keys(phone_index)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(cool, code_key)
            pipe.decr(day)
            await pipe.execute()

    async def check(self, phone_index: bytes, code: str) -> OtpCheck:
        """Check (and on success consume) the phone's code, counting failures."""
        lock, _, _, code_key, fails = self._keys(phone_index)
        s = self._settings
        status, value = await self._check(
            keys=[lock, code_key, fails],
            args=[
                self._hash(phone_index, code),
                s.otp_max_attempts,
                s.lockout_threshold,
                s.lockout_window_s,
                s.lockout_s,
            ],
        )
        outcome = OtpOutcome(status.decode())
        if outcome in (OtpOutcome.LOCKED, OtpOutcome.LOCKED_NOW):
            return OtpCheck(outcome, retry_after_s=max(1, -(-int(value) // 1000)))
        return OtpCheck(outcome, remaining=int(value))
