"""One-time login codes and the limits around them, in Redis.

A code lives ``otp_ttl_s`` seconds, is stored only as a keyed hash, and dies after one use or
``otp_max_attempts`` wrong guesses — counted separately for strangers and for callers whose
address or device completed a login for the phone before, so strangers voiding a code never
void it for the owner's own device. Every check-and-update is one Lua script, so two
concurrent requests can never both pass a limit or both use a code.

**The owner can always log in.** Nothing a stranger does is charged to the owner:

* Sends. One phone gets at most ``otp_sends_per_day`` codes a day requested by *strangers*
  (an address and device that never completed a login for that phone; one address may spend
  at most ``otp_stranger_sends_per_phone_per_ip`` of them), and separately at most
  ``otp_sends_per_day_known`` requested from an address or device that did. A stranger can
  exhaust the first budget, never the second.
* Failures. A failed check is counted per phone *and* client address. After
  ``lockout_threshold`` failures in ``lockout_window_s``, each further failure makes that
  address wait 1 s, 2 s, 4 s, ... (at most ``lockout_s``) before its next check of that phone.
  Other addresses, the owner's included, are not slowed. A wrong code with no code pending
  costs the caller's address only; it never touches the phone's state.

Guessing stays bounded: strangers get at most ``otp_max_attempts`` guesses per code (after
that even the right code is ``dead`` for them) and at most
``otp_sends_per_day + otp_sends_per_day_known`` codes per phone a day.

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

__all__ = ["Issued", "OtpCheck", "OtpOutcome", "OtpStore", "SendRefusal"]

# KEYS: cool, day (strangers), dayk (known), code, known, pair_sends
# ARGV: code_hash, ttl, cooldown_s, per_day, per_day_known, addr_member, dev_member, per_pair
_SEND = """
local cool_ttl = redis.call('PTTL', KEYS[1])
if cool_ttl > 0 then return {'cooldown', cool_ttl} end
local known = redis.call('SISMEMBER', KEYS[5], ARGV[6]) == 1
if not known and ARGV[7] ~= '' then known = redis.call('SISMEMBER', KEYS[5], ARGV[7]) == 1 end
if known then
  local sent = tonumber(redis.call('GET', KEYS[3]) or '0')
  if sent >= tonumber(ARGV[5]) then return {'daily', redis.call('PTTL', KEYS[3])} end
  if redis.call('INCR', KEYS[3]) == 1 then redis.call('EXPIRE', KEYS[3], 86400) end
else
  local mine = tonumber(redis.call('GET', KEYS[6]) or '0')
  if mine >= tonumber(ARGV[8]) then return {'daily', redis.call('PTTL', KEYS[6])} end
  local sent = tonumber(redis.call('GET', KEYS[2]) or '0')
  if sent >= tonumber(ARGV[4]) then return {'daily', redis.call('PTTL', KEYS[2])} end
  if redis.call('INCR', KEYS[2]) == 1 then redis.call('EXPIRE', KEYS[2], 86400) end
  if redis.call('INCR', KEYS[6]) == 1 then redis.call('EXPIRE', KEYS[6], 86400) end
end
redis.call('SET', KEYS[1], '1', 'PX', tonumber(ARGV[3]) * 1000)
redis.call('DEL', KEYS[4])
redis.call('HSET', KEYS[4], 'h', ARGV[1], 'n', 0, 'k', 0)
redis.call('EXPIRE', KEYS[4], tonumber(ARGV[2]))
return {known and 'ok_known' or 'ok', 0}
"""

# KEYS: code, pair_fails, pair_wait, known
# ARGV: candidate_hash, max_attempts, free_failures, window_s, max_delay_s, addr_member,
#       dev_member, known_ttl_s
# Returns {status, remaining_or_wait_ms, delay_imposed_s}.
# Wrong guesses are counted per class on the code: 'n' for strangers, 'k' for callers whose
# address or device completed a login for this phone. Strangers voiding a code (5 wrong
# guesses) therefore never void it for the owner's known device.
_CHECK = """
local wait = redis.call('PTTL', KEYS[3])
if wait > 0 then return {'delayed', wait, 0} end
local known = redis.call('SISMEMBER', KEYS[4], ARGV[6]) == 1
if not known and ARGV[7] ~= '' then known = redis.call('SISMEMBER', KEYS[4], ARGV[7]) == 1 end
local field = known and 'k' or 'n'
local stored = redis.call('HGET', KEYS[1], 'h')
local spent = stored and tonumber(redis.call('HGET', KEYS[1], field) or '0') >= tonumber(ARGV[2])
if stored and not spent and stored == ARGV[1] then
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
  redis.call('SADD', KEYS[4], ARGV[6])
  if ARGV[7] ~= '' then redis.call('SADD', KEYS[4], ARGV[7]) end
  redis.call('EXPIRE', KEYS[4], tonumber(ARGV[8]))
  return {'ok', 0, 0}
end
local fails = redis.call('INCR', KEYS[2])
if fails == 1 then redis.call('EXPIRE', KEYS[2], tonumber(ARGV[4])) end
local delay = 0
if fails >= tonumber(ARGV[3]) then
  delay = math.floor(math.min(2 ^ (fails - tonumber(ARGV[3])), tonumber(ARGV[5])))
  redis.call('SET', KEYS[3], '1', 'EX', delay)
  -- the failure count must outlive the delay it led to, or the next one would start over
  if redis.call('TTL', KEYS[2]) < delay + 60 then redis.call('EXPIRE', KEYS[2], delay + tonumber(ARGV[4])) end
end
if not stored then return {'no_code', 0, delay} end
if spent then return {'dead', 0, delay} end
local tries = redis.call('HINCRBY', KEYS[1], field, 1)
if tries >= tonumber(ARGV[2]) then
  if known then redis.call('DEL', KEYS[1]) end
  return {'dead', 0, delay}
end
return {'wrong', tonumber(ARGV[2]) - tries, delay}
"""


class OtpOutcome(Enum):
    """What a code check found."""

    OK = "ok"
    WRONG = "wrong"  # try again (``remaining`` attempts left on this code)
    DEAD = "dead"  # too many wrong guesses: the code is gone, ask for a new one
    NO_CODE = "no_code"  # nothing pending (expired, used, or never sent)
    DELAYED = "delayed"  # this address must wait ``retry_after_s`` before checking this phone


@dataclass(frozen=True, slots=True)
class OtpCheck:
    """Result of :meth:`OtpStore.check`.

    ``delay_imposed_s`` > 0 means this failure made the caller's address wait that long
    before its next check of the phone (the successor of the old phone-wide lockout).
    """

    outcome: OtpOutcome
    remaining: int = 0
    retry_after_s: int = 0
    delay_imposed_s: int = 0


@dataclass(frozen=True, slots=True)
class SendRefusal:
    """Why a code was not sent, and when asking again can work."""

    reason: str  # cooldown | daily | ip
    retry_after_s: int


@dataclass(frozen=True, slots=True)
class Issued:
    """A code to send, and which daily budget paid for it (to give it back on failure)."""

    code: str
    known: bool


class OtpStore:
    """Issues and checks codes for phones identified by their blind index."""

    def __init__(self, redis: Redis, vault: Vault, settings: IdentitySettings) -> None:
        self._redis = redis
        self._vault = vault
        self._settings = settings
        self._hash_key = vault.derive(b"onecity/otp/v1")
        self._client_key = vault.derive(b"onecity/otp/client/v1")
        self._send = redis.register_script(_SEND)
        self._check = redis.register_script(_CHECK)

    @staticmethod
    def _tag(phone_index: bytes) -> str:
        # One hash tag per phone: every key a script touches shares a Redis Cluster slot.
        return "oc:otp:{p:" + phone_index.hex()[:32] + "}"

    def _client(self, phone_index: bytes, kind: str, value: str | None) -> str:
        """A keyed hash of an address or device id, per phone: no address in clear in Redis,
        and nothing linkable across phones."""
        if not value:
            return ""
        digest = hmac.new(self._client_key, phone_index + kind.encode() + b":" + value.encode(), "sha256")
        return kind + ":" + digest.hexdigest()[:32]

    def _hash(self, phone_index: bytes, code: str) -> str:
        return hmac.new(self._hash_key, phone_index + b":" + code.encode(), "sha256").hexdigest()

    def _address(self, client_ip: str) -> str:
        """The name an address goes by in Redis: its keyed blind index, as phones are found
        by theirs (no address in clear in a key name; the key is the vault's)."""
        return self._vault.blind_index(client_ip, domain="otp-client-ip").hex()[:32]

    async def allow_ip(self, client_ip: str) -> SendRefusal | None:
        """Count one send for ``client_ip`` this hour; refuse past the hourly limit."""
        hour = int(time.time() // 3600)
        key = f"oc:otp:ip:{self._address(client_ip)}:{hour}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, 3600)
            count, _ = await pipe.execute()
        if count > self._settings.otp_sends_per_ip_per_hour:
            return SendRefusal("ip", 3600 - int(time.time()) % 3600)
        return None

    async def issue(
        self, phone_index: bytes, *, client_ip: str | None, device_id: str | None = None
    ) -> tuple[Issued | None, SendRefusal | None]:
        """Create a fresh code for the phone, or say why not. The code is returned once,
        for the SMS, and never stored in clear."""
        code = f"{secrets.randbelow(1_000_000):06d}"
        tag = self._tag(phone_index)
        addr = self._client(phone_index, "a", client_ip or "unknown")
        s = self._settings
        status, ttl_ms = await self._send(
            keys=[f"{tag}:cool", f"{tag}:day", f"{tag}:dayk", f"{tag}:code", f"{tag}:known", f"{tag}:s:{addr}"],
            args=[
                self._hash(phone_index, code),
                s.otp_ttl_s,
                s.otp_resend_after_s,
                s.otp_sends_per_day,
                s.otp_sends_per_day_known,
                addr,
                self._client(phone_index, "d", device_id),
                s.otp_stranger_sends_per_phone_per_ip,
            ],
        )
        if status not in (b"ok", b"ok_known"):
            return None, SendRefusal(status.decode(), max(1, -(-int(ttl_ms) // 1000)))
        return Issued(code=code, known=status == b"ok_known"), None

    async def withdraw(self, phone_index: bytes, issued: Issued, *, client_ip: str | None) -> None:
        """Undo an :meth:`issue` whose SMS could not be sent (so the citizen can retry now)."""
        tag = self._tag(phone_index)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(f"{tag}:cool", f"{tag}:code")
            if issued.known:
                pipe.decr(f"{tag}:dayk")
            else:
                pipe.decr(f"{tag}:day")
                pipe.decr(f"{tag}:s:{self._client(phone_index, 'a', client_ip or 'unknown')}")
            await pipe.execute()

    async def check(
        self, phone_index: bytes, code: str, *, client_ip: str | None, device_id: str | None = None
    ) -> OtpCheck:
        """Check (and on success consume) the phone's code; failures cost the caller's address.

        On success the address and device become *known* for this phone (the owner's send
        budget applies to them from then on).
        """
        tag = self._tag(phone_index)
        addr = self._client(phone_index, "a", client_ip or "unknown")
        s = self._settings
        status, value, delay = await self._check(
            keys=[f"{tag}:code", f"{tag}:f:{addr}", f"{tag}:w:{addr}", f"{tag}:known"],
            args=[
                self._hash(phone_index, code),
                s.otp_max_attempts,
                s.lockout_threshold,
                s.lockout_window_s,
                s.lockout_s,
                addr,
                self._client(phone_index, "d", device_id),
                s.known_client_ttl_s,
            ],
        )
        outcome = OtpOutcome(status.decode())
        if outcome is OtpOutcome.DELAYED:
            return OtpCheck(outcome, retry_after_s=max(1, -(-int(value) // 1000)))
        return OtpCheck(outcome, remaining=int(value), delay_imposed_s=int(delay))
