"""One-time login codes in a real Redis: the code, its hash, its limits and the delay schedule.

Time does not pass in these tests; where a rule needs it to (the resend cool-down, an
address's wait), the key that carries the wait is deleted, as its expiry would.
"""

from __future__ import annotations

import hmac
import time

import msgspec
import pytest

from core.crypto import Vault
from core.redis import Redis
from identity.otp import Issued, OtpCheck, OtpOutcome, OtpStore, SendRefusal
from identity.settings import IdentitySettings

PHONE = "13800000001"
OWNER_IP = "198.51.100.1"
STRANGER_IP = "203.0.113.7"


@pytest.fixture
def store(redis: Redis, vault: Vault, identity_settings: IdentitySettings, clean: None) -> OtpStore:
    return OtpStore(redis, vault, identity_settings)


@pytest.fixture
def phone(vault: Vault) -> bytes:
    return vault.blind_index(PHONE, domain="phone")


_PATTERNS = {"cool": "oc:otp:*:cool", "wait": "oc:otp:*:w:*"}


async def _time_passes(redis: Redis, what: str) -> None:
    """Expire now every key of one kind: ``cool`` (resend cool-downs) or ``wait`` (addresses' waits)."""
    stale = [key async for key in redis.scan_iter(match=_PATTERNS[what])]
    if stale:
        await redis.delete(*stale)


async def _issue(store: OtpStore, phone: bytes, ip: str = OWNER_IP, device: str | None = None) -> Issued:
    issued, refusal = await store.issue(phone, client_ip=ip, device_id=device)
    assert refusal is None and issued is not None
    return issued


async def test_a_code_is_six_digits_stored_only_as_its_keyed_hash(
    store: OtpStore, redis: Redis, vault: Vault, phone: bytes
) -> None:
    before = int(time.time() * 1000)  # Redis reports expiry times in ms exactly
    issued = await _issue(store, phone)
    after = int(time.time() * 1000) + 1
    assert issued.known is False
    assert len(issued.code) == 6 and issued.code.isascii() and issued.code.isdigit()
    (key,) = [k async for k in redis.scan_iter(match="oc:otp:*:code")]
    expected = hmac.new(vault.derive(b"onecity/otp/v1"), phone + b":" + issued.code.encode(), "sha256").hexdigest()
    assert await redis.hgetall(key) == {b"h": expected.encode(), b"n": b"0", b"k": b"0"}
    assert before + 300 * 1000 <= await redis.pexpiretime(key) <= after + 300 * 1000
    # Nothing in Redis holds the code, the phone or the address in clear.
    for name in [k async for k in redis.scan_iter(match="oc:otp:*")]:
        assert PHONE.encode() not in name and OWNER_IP.encode() not in name
        if await redis.type(name) == b"string":
            assert issued.code.encode() not in (await redis.get(name) or b"")


async def test_the_right_code_passes_once(store: OtpStore, phone: bytes) -> None:
    issued = await _issue(store, phone)
    assert await store.check(phone, issued.code, client_ip=OWNER_IP) == OtpCheck(OtpOutcome.OK)
    assert await store.check(phone, issued.code, client_ip=OWNER_IP) == OtpCheck(OtpOutcome.NO_CODE)


async def test_a_code_is_bound_to_its_phone(store: OtpStore, vault: Vault, phone: bytes) -> None:
    issued = await _issue(store, phone)
    other = vault.blind_index("13800000002", domain="phone")
    assert await store.check(other, issued.code, client_ip=OWNER_IP) == OtpCheck(OtpOutcome.NO_CODE)


async def test_wrong_guesses_count_down_then_the_code_is_dead(store: OtpStore, redis: Redis, phone: bytes) -> None:
    issued = await _issue(store, phone)
    wrong = f"{(int(issued.code) + 1) % 1_000_000:06d}"
    results = []
    for _ in range(5):
        results.append(await store.check(phone, wrong, client_ip=STRANGER_IP))
        await _time_passes(redis, "wait")
    # max_attempts 5; from the third failure on, each one makes this address wait 1, 2, 4 s.
    assert results == [
        OtpCheck(OtpOutcome.WRONG, remaining=4),
        OtpCheck(OtpOutcome.WRONG, remaining=3),
        OtpCheck(OtpOutcome.WRONG, remaining=2, delay_imposed_s=1),
        OtpCheck(OtpOutcome.WRONG, remaining=1, delay_imposed_s=2),
        OtpCheck(OtpOutcome.DEAD, delay_imposed_s=4),
    ]
    # Dead for this stranger even with the right code.
    await _time_passes(redis, "wait")
    assert (await store.check(phone, issued.code, client_ip=STRANGER_IP)).outcome is OtpOutcome.DEAD


async def test_the_delay_schedule_doubles_up_to_its_cap(
    redis: Redis, vault: Vault, identity_settings: IdentitySettings, phone: bytes, clean: None
) -> None:
    store = OtpStore(redis, vault, msgspec.structs.replace(identity_settings, otp_max_attempts=100))
    await _issue(store, phone)
    delays = []
    for _ in range(8):
        check = await store.check(phone, "000000x", client_ip=STRANGER_IP)
        assert check.outcome is OtpOutcome.WRONG
        delays.append(check.delay_imposed_s)
        await _time_passes(redis, "wait")
    # lockout_threshold 3, lockout_s 5: free, free, then 1, 2, 4 and capped at 5.
    assert delays == [0, 0, 1, 2, 4, 5, 5, 5]


async def test_a_waiting_address_is_refused_even_with_the_right_code(store: OtpStore, phone: bytes) -> None:
    issued = await _issue(store, phone)
    for _ in range(3):
        await store.check(phone, "999999x", client_ip=STRANGER_IP)
    # The third failure imposed a 1 s wait; the right code does not get past it.
    assert await store.check(phone, issued.code, client_ip=STRANGER_IP) == OtpCheck(OtpOutcome.DELAYED, retry_after_s=1)
    # Another address (the owner's) is not slowed, and the code is still there for it.
    assert await store.check(phone, issued.code, client_ip=OWNER_IP) == OtpCheck(OtpOutcome.OK)


async def test_a_guess_with_no_code_pending_costs_only_the_address(store: OtpStore, phone: bytes) -> None:
    results = [await store.check(phone, "123456", client_ip=STRANGER_IP) for _ in range(3)]
    assert results == [
        OtpCheck(OtpOutcome.NO_CODE),
        OtpCheck(OtpOutcome.NO_CODE),
        OtpCheck(OtpOutcome.NO_CODE, delay_imposed_s=1),
    ]
    issued = await _issue(store, phone)
    assert await store.check(phone, issued.code, client_ip=OWNER_IP) == OtpCheck(OtpOutcome.OK)


async def test_strangers_voiding_a_code_never_void_it_for_a_known_device(
    store: OtpStore, redis: Redis, phone: bytes
) -> None:
    first = await _issue(store, phone, OWNER_IP, "device-1")
    assert (await store.check(phone, first.code, client_ip=OWNER_IP, device_id="device-1")).outcome is OtpOutcome.OK
    await _time_passes(redis, "cool")
    # From a new address, the known device draws on the owner's budget.
    issued = await _issue(store, phone, "192.0.2.50", "device-1")
    assert issued.known is True
    for _ in range(5):
        await store.check(phone, "000000x", client_ip=STRANGER_IP)
        await _time_passes(redis, "wait")
    assert (await store.check(phone, issued.code, client_ip=STRANGER_IP)).outcome is OtpOutcome.DEAD
    assert await store.check(phone, issued.code, client_ip="192.0.2.50", device_id="device-1") == OtpCheck(
        OtpOutcome.OK
    )


async def test_resend_cool_down(store: OtpStore, phone: bytes) -> None:
    await _issue(store, phone)
    issued, refusal = await store.issue(phone, client_ip=OWNER_IP)
    assert issued is None and refusal is not None
    assert refusal.reason == "cooldown"
    assert refusal.retry_after_s in (59, 60)  # 60 s, rounded up from what is left of it


async def test_daily_budgets_strangers_per_address_then_per_phone_and_the_owner_apart(
    store: OtpStore, redis: Redis, phone: bytes
) -> None:
    async def send(ip: str, device: str | None = None) -> str:
        await _time_passes(redis, "cool")
        issued, refusal = await store.issue(phone, client_ip=ip, device_id=device)
        if refusal is not None:
            assert 86_000 < refusal.retry_after_s <= 86_400  # until the day's counter expires
            return refusal.reason
        assert issued is not None
        return "known" if issued.known else "stranger"

    # The owner's first login: a stranger's send (1 of the phone's 3), then known.
    first = await _issue(store, phone, OWNER_IP, "owner-device")
    assert first.known is False
    assert (await store.check(phone, first.code, client_ip=OWNER_IP, device_id="owner-device")).outcome is OtpOutcome.OK
    # One address may spend 2 of the phone's stranger sends; the phone then has none left.
    assert [await send("203.0.113.1") for _ in range(3)] == ["stranger", "stranger", "daily"]
    assert await send("203.0.113.2") == "daily"
    # The owner's device, from any address, and the owner's address have their own 2.
    assert [await send("192.0.2.9", "owner-device"), await send(OWNER_IP), await send(OWNER_IP)] == [
        "known",
        "known",
        "daily",
    ]


async def test_withdraw_gives_the_send_back(store: OtpStore, redis: Redis, phone: bytes) -> None:
    issued = await _issue(store, phone, "203.0.113.1")
    await store.withdraw(phone, issued, client_ip="203.0.113.1")
    # No cool-down and no code left; the budgets are as before the send.
    assert [k async for k in redis.scan_iter(match="oc:otp:*:cool")] == []
    assert await store.check(phone, issued.code, client_ip=OWNER_IP) == OtpCheck(OtpOutcome.NO_CODE)
    for _ in range(2):
        await _issue(store, phone, "203.0.113.1")
        await _time_passes(redis, "cool")
    _, refusal = await store.issue(phone, client_ip="203.0.113.1")
    assert refusal is not None and refusal.reason == "daily"


async def test_sends_per_address_per_hour(store: OtpStore) -> None:
    assert await store.allow_ip(STRANGER_IP) is None
    assert await store.allow_ip(STRANGER_IP) is None
    refusal = await store.allow_ip(STRANGER_IP)
    assert isinstance(refusal, SendRefusal) and refusal.reason == "ip"
    assert 1 <= refusal.retry_after_s <= 3600  # until the hour turns
    assert await store.allow_ip(OWNER_IP) is None
