"""The identity service's own rules, called directly on real PostgreSQL, Redis and simulators:
levels and re-verification of a principal, authentication, the masked account, the one OTP
check with its audit events, sending codes, and refresh rotation with reuse detection."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest

from core.crypto import Vault
from core.db import Pool
from core.errors import InsufficientLevel, RateLimited, Unauthorized
from core.keys import KeyManager
from core.redis import Redis
from identity.errors import ReverificationRequired
from identity.repository import AccountRow, IdentityRepository
from identity.revocation import RevocationSet
from identity.schemas import Account, Device, OtpSent
from identity.service import IdentityService, Principal
from identity.settings import IdentitySettings
from identity.tokens import API_AUDIENCE, AccessClaims, AccessTokens
from services.departments import Departments
from services.departments.sms import SmsGateway
from tests.support.citizens import latest_otp

PHONE = "13800000001"
IP = "198.51.100.1"
DEVICE = Device(id="device-1", name="My phone", platform="ios")


def _principal(level: str, *, reverify: bool = False) -> Principal:
    now = int(time.time())
    claims = AccessClaims(
        iss="https://city.example",
        aud="onecity-app",
        sub="acc-1",
        iat=now,
        exp=now + 600,
        jti="j",
        client_id="onecity-app",
        sid="sid-1",
        acr=level,
        reverify=reverify,
    )
    return Principal(claims)


# levels -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "allowed"),
    [
        ("L2", {"L2"}),
        ("L3", {"L2", "L3"}),
        ("L4", {"L2", "L3", "L4"}),
        ("L1", set()),  # a level the ranking does not know is below every level
        ("", set()),
    ],
)
def test_levels_rank_l2_below_l3_below_l4(level: str, allowed: set[str]) -> None:
    principal = _principal(level)
    for required in ("L2", "L3", "L4"):
        if required in allowed:
            principal.require_level(required)
            continue
        with pytest.raises(InsufficientLevel) as refused:
            principal.require_level(required)
        assert refused.value.status == 401
        assert refused.value.type_slug == "insufficient-user-authentication"
        assert refused.value.headers == {
            "WWW-Authenticate": f'Bearer error="insufficient_user_authentication", acr_values="{required}"'
        }
        assert refused.value.extensions == {"required_level": required}
        assert refused.value.detail == f"This needs identity level {required}"


def test_a_principal_is_its_token() -> None:
    principal = _principal("L3")
    assert (principal.account_id, principal.session_id, principal.level, principal.reverify) == (
        "acc-1",
        "sid-1",
        "L3",
        False,
    )


def test_a_held_back_session_must_prove_its_identity_first() -> None:
    _principal("L4").require_confirmed()
    with pytest.raises(ReverificationRequired) as refused:
        _principal("L4", reverify=True).require_confirmed()
    assert refused.value.status == 403
    assert refused.value.type_slug == "identity-reverification-required"


# the service on real stores -----------------------------------------------------------------


@pytest.fixture
def service(
    pool: Pool,
    redis: Redis,
    vault: Vault,
    keys: KeyManager,
    departments: Departments,
    identity_settings: IdentitySettings,
    clean: None,
) -> IdentityService:
    return IdentityService(
        repository=IdentityRepository(pool),
        redis=redis,
        vault=vault,
        tokens=AccessTokens(keys, identity_settings),
        departments=departments,
        settings=identity_settings,
        revocations=RevocationSet(redis, pool, window_s=930),
    )


async def _audit(pool: Pool) -> list[tuple[str, str, str | None, dict[str, Any]]]:
    rows = await pool.fetch("SELECT action, outcome, client_ip AS ip, details FROM audit_log ORDER BY id")
    return [(r["action"], r["outcome"], r["ip"], r["details"]) for r in rows]


async def _login(service: IdentityService, sms: SmsGateway, phone: str = PHONE) -> Any:
    await service.send_otp(phone, client_ip=IP, device_id=DEVICE.id)
    code = await latest_otp(sms, phone)
    login = await service.login_with_otp(phone, code, channel="app", client_ip=IP, device=DEVICE)
    assert login.tokens is not None and not login.held_back
    return login.tokens


async def test_sending_a_code_delivers_it_and_audits_the_budget(
    service: IdentityService, sms: SmsGateway, pool: Pool
) -> None:
    assert await service.send_otp(PHONE, client_ip=IP) == OtpSent(expires_in=300, resend_after=60)
    assert len(await latest_otp(sms, PHONE)) == 6
    assert await _audit(pool) == [("auth.otp.send", "success", IP, {"budget": "stranger"})]


async def test_no_key_a_send_leaves_in_redis_names_the_address(service: IdentityService, redis: Redis) -> None:
    await service.send_otp(PHONE, client_ip=IP, device_id=DEVICE.id)
    names = [key async for key in redis.scan_iter(match="*")]
    assert names, "a send writes its limits to Redis"
    for name in names:
        assert IP.encode() not in name and PHONE.encode() not in name and DEVICE.id.encode() not in name
    # The per-address hourly counter is there, under the address's keyed hash.
    (hourly,) = [name async for name in redis.scan_iter(match="oc:otp:ip:*")]
    assert await redis.get(hourly) == b"1"


async def test_a_refused_send_is_429_with_its_reason(service: IdentityService, pool: Pool) -> None:
    await service.send_otp(PHONE, client_ip=IP)
    with pytest.raises(RateLimited) as refused:
        await service.send_otp(PHONE, client_ip=IP)
    assert refused.value.detail == "A code was sent less than a minute ago"
    assert refused.value.extensions == {"reason": "cooldown"}
    assert refused.value.headers["Retry-After"] in ("59", "60")
    assert (await _audit(pool))[-1] == ("auth.otp.send", "denied", IP, {"reason": "cooldown"})


async def test_the_right_code_in_a_browser_logs_in_without_an_app_session(
    service: IdentityService, sms: SmsGateway, pool: Pool
) -> None:
    await service.send_otp(PHONE, client_ip=IP)
    login = await service.login_with_otp(PHONE, await latest_otp(sms, PHONE), channel="browser", client_ip=IP)
    assert (login.tokens, login.held_back) == (None, False)
    assert [event[:2] for event in await _audit(pool)] == [("auth.otp.send", "success"), ("auth.login", "success")]
    assert await pool.fetchval("SELECT count(*) FROM sessions") == 0


async def _check(service: IdentityService, code: str, method: str) -> None:
    """One login attempt on the channel whose audit ``method`` is given."""
    if method == "otp":
        await service.login_with_otp(PHONE, code, channel="app", client_ip=IP, device=DEVICE)
    else:
        await service.login_with_otp(PHONE, code, channel="browser", client_ip=IP)


@pytest.mark.parametrize("method", ["otp", "oidc-browser"])
async def test_failed_checks_their_errors_and_the_lockout_events(
    service: IdentityService, sms: SmsGateway, pool: Pool, method: str
) -> None:
    await service.send_otp(PHONE, client_ip=IP)
    wrong = f"{(int(await latest_otp(sms, PHONE)) + 1) % 1_000_000:06d}"
    refusals = []
    for _ in range(3):
        with pytest.raises(Unauthorized) as refused:
            await _check(service, wrong, method)
        refusals.append(refused.value)
    assert [(type(r), r.detail, r.extensions, r.headers) for r in refusals] == [
        (
            Unauthorized,
            "The code is wrong",
            {"reason": "wrong", "attempts_left": left, **({"retry_after": 1} if left == 2 else {})},
            {"WWW-Authenticate": 'Bearer error="invalid_grant"'},
        )
        for left in (4, 3, 2)
    ]
    # While this address waits, even a check is refused before the code is looked at.
    with pytest.raises(RateLimited) as delayed:
        await _check(service, wrong, method)
    assert delayed.value.extensions == {"reason": "delayed"}
    assert delayed.value.headers == {"Retry-After": "1"}
    failure = {"reason": "wrong"} | ({"method": method} if method != "otp" else {})
    assert (await _audit(pool))[1:] == [
        ("auth.login", "failure", IP, failure),
        ("auth.login", "failure", IP, failure),
        ("auth.login", "failure", IP, failure),
        ("auth.lockout", "success", IP, {"scope": "phone+address", "delay_s": 1, "method": method}),
        ("auth.login", "failure", IP, {"reason": "delayed"} | ({"method": method} if method != "otp" else {})),
    ]


async def test_no_code_pending(service: IdentityService) -> None:
    with pytest.raises(Unauthorized) as refused:
        await _check(service, "123456", "otp")
    assert refused.value.detail == "No valid code for this phone: request a new one"
    assert refused.value.extensions == {"reason": "no_code", "attempts_left": 0}


async def test_login_creates_an_l2_account_with_a_masked_view(
    service: IdentityService, sms: SmsGateway, pool: Pool
) -> None:
    pair = await _login(service, sms)
    assert pair.token_type == "Bearer"
    assert pair.expires_in == 600
    assert pair.refresh_token.startswith("rt.")
    assert pair.account == Account(
        id=pair.account.id,
        level="L2",
        phone="138****0001",
        name=None,
        id_number=None,
        created_at=pair.account.created_at,
    )
    principal = await service.authenticate(pair.access_token)
    assert (principal.account_id, principal.level) == (pair.account.id, "L2")
    assert (await _audit(pool))[-1][:2] == ("auth.login", "success")


def test_the_account_view_masks_and_hides_while_held_back(service: IdentityService, vault: Vault) -> None:
    created = datetime(2026, 1, 1, tzinfo=UTC)
    account = AccountRow(
        id="acc-1",
        level="L3",
        phone_enc=vault.encrypt_text("13800000001", context="phone"),
        name_enc=vault.encrypt_text("欧阳娜娜", context="name"),
        id_number_enc=vault.encrypt_text("110101199003070011", context="id_number"),
        id_number_index=vault.blind_index("110101199003070011", domain="id_number"),
        region_code="110101",
        created_at=created,
    )
    assert service.account_view(account) == Account(
        id="acc-1", level="L3", phone="138****0001", name="欧***", id_number="1101**********0011", created_at=created
    )
    assert service.account_view(account, reverify=True) == Account(
        id="acc-1",
        level="L3",
        phone="138****0001",
        name=None,
        id_number=None,
        created_at=created,
        reverification_required=True,
    )


async def test_authenticate_refuses_tokens_that_are_not_the_apps(service: IdentityService) -> None:
    tokens = service.tokens
    partner, _ = tokens.issue(subject="acc-1", session_id="grant-1", level="L3", client_id="hospital")
    service_token, _ = tokens.issue(subject="hospital", client_id="onecity-app")
    api, _ = tokens.issue(subject="acc-1", session_id="grant-1", level="L3", audience=API_AUDIENCE)
    for token, detail in [
        (partner, "This token is not a citizen app token"),
        (service_token, "This token is not a citizen app token"),
        (api, "The access token is invalid"),
    ]:
        with pytest.raises(Unauthorized) as refused:
            await service.authenticate(token)
        assert refused.value.detail == detail
        assert refused.value.headers == {"WWW-Authenticate": 'Bearer error="invalid_token"'}


async def test_refresh_rotates_and_a_reused_token_ends_the_session(
    service: IdentityService, sms: SmsGateway, pool: Pool
) -> None:
    first = await _login(service, sms)
    second = await service.refresh(first.refresh_token, client_ip=IP)
    assert second.refresh_token != first.refresh_token
    assert (await service.authenticate(second.access_token)).session_id == (
        await service.authenticate(first.access_token)
    ).session_id
    with pytest.raises(Unauthorized) as refused:
        await service.refresh(first.refresh_token, client_ip=IP)
    assert refused.value.detail == "The refresh token is invalid or has been used"
    assert refused.value.headers == {"WWW-Authenticate": 'Bearer error="invalid_grant"'}
    # Someone holds a copy: the whole session ends, its access tokens at once.
    for token in (first.access_token, second.access_token):
        with pytest.raises(Unauthorized) as ended:
            await service.authenticate(token)
        assert ended.value.detail == "The session has ended"
    with pytest.raises(Unauthorized):
        await service.refresh(second.refresh_token, client_ip=IP)
    assert [e[:2] for e in await _audit(pool) if e[0].startswith("auth.refresh")] == [
        ("auth.refresh", "success"),
        ("auth.refresh.reuse", "denied"),
        ("auth.refresh", "failure"),
    ]
