"""The browser side of ``GET /oauth/authorize``: OTP login page, consent page, redirect.

State lives in Redis, never in the page: a *transaction* (the validated authorization
request, then who signed in) under a random id the pages carry, bound to the browser by an
``HttpOnly`` cookie so a transaction started in one browser cannot be completed from
another (login CSRF). After a successful login a short *browser session* cookie lets the
citizen approve further partners without typing a code again (single sign-on), unless the
partner asks for ``prompt=login`` or a ``max_age`` that has passed.

The login itself is citizen identity's: the code is sent by ``IdentityService.send_otp``
(same limits per phone and address) and the citizen logged in by
``IdentityService.login_with_otp(channel="browser")``, the entry point of the app's login too
(same delays, same ``auth.login`` / ``auth.lockout`` events). A browser login creates the
account at ``L2`` the first time, like the app, but no app session: the result of a browser
login is an OAuth grant, not app tokens.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import msgspec

from core.errors import RateLimited, Unauthorized
from core.redis import Redis
from identity.masking import mask_phone
from identity.oidc.authorization import (
    AMR_OF_METHOD,
    AuthorizationParams,
    Authorizer,
    RedirectableError,
    UnsafeAuthorizationRequest,
)
from identity.oidc.pages import consent_page, error_page, login_page, otp_page
from identity.oidc.par import AUTHORIZATION_PARAMS, JKT_PATTERN, PushedRequests
from identity.oidc.schemas import BrowserConsentForm, BrowserOtpForm, BrowserPhoneForm
from identity.oidc.settings import OidcSettings
from identity.otp import OtpOutcome
from identity.service import IdentityService
from services.errors import DepartmentError

__all__ = ["BINDING_COOKIE", "SSO_COOKIE", "BrowserFlow", "BrowserResult", "CookieToSet"]

BINDING_COOKIE = "oc_authz"
SSO_COOKIE = "oc_sso"
COOKIE_PATH = "/oauth/authorize"
_PHONE = re.compile(r"^1[3-9][0-9]{9}$")
_OTP = re.compile(r"^[0-9]{6}$")
_QUERY_PARAMS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "prompt",
    "max_age",
)
_OTP_ERRORS = {
    OtpOutcome.WRONG: "验证码错误 · The code is wrong",
    OtpOutcome.DEAD: "错误次数过多，请重新获取验证码 · Too many wrong attempts: request a new code",
    OtpOutcome.NO_CODE: "验证码已失效，请重新获取 · The code has expired: request a new one",
}


@dataclass(frozen=True, slots=True)
class CookieToSet:
    """A cookie the response must set (``max_age`` 0 deletes it)."""

    name: str
    value: str
    max_age: int | None = None


@dataclass(frozen=True, slots=True)
class BrowserResult:
    """A page to show (``html``) or a place to go (``location``)."""

    status: int
    html: str | None = None
    location: str | None = None
    cookies: list[CookieToSet] = field(default_factory=list)


class _Tx(msgspec.Struct, kw_only=True):
    client_id: str
    redirect_uri: str
    scopes: list[str]
    code_challenge: str
    state: str | None
    nonce: str | None
    prompt: list[str]
    max_age: int | None
    binding: str
    dpop_jkt: str | None = None
    phone_enc: str | None = None
    account_id: str | None = None
    amr: list[str] | None = None
    auth_time: int | None = None


class _Session(msgspec.Struct, kw_only=True):
    account_id: str
    amr: list[str]
    auth_time: int


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class BrowserFlow:
    """Runs the browser pages.

    Args:
        authorizer: Validation, consent and codes.
        pushed: Pushed requests (RFC 9126) a browser's request may refer to.
        identity: OTP sending and checking, accounts.
        redis: Transactions and browser sessions.
        settings: Lifetimes.
        base_path: Where the page forms post (``/oauth/authorize``).
    """

    def __init__(
        self,
        *,
        authorizer: Authorizer,
        pushed: PushedRequests,
        identity: IdentityService,
        redis: Redis,
        settings: OidcSettings,
        base_path: str = COOKIE_PATH,
    ) -> None:
        self._authorizer = authorizer
        self._pushed = pushed
        self._identity = identity
        self._redis = redis
        self._settings = settings
        self._base = base_path
        self.secure_cookies = authorizer.issuer.startswith("https://")

    # state ---------------------------------------------------------------------------------

    @staticmethod
    def _tx_key(tx_id: str) -> str:
        return "oc:oidc:tx:" + _digest(tx_id)

    @staticmethod
    def _session_key(token: str) -> str:
        return "oc:oidc:sso:" + _digest(token)

    async def _save(self, tx_id: str, tx: _Tx) -> None:
        await self._redis.set(self._tx_key(tx_id), msgspec.json.encode(tx), ex=self._settings.browser_tx_ttl_s)

    async def _load(self, tx_id: str, cookies: Mapping[str, str]) -> _Tx | None:
        raw = await self._redis.get(self._tx_key(tx_id))
        if raw is None:
            return None
        tx = msgspec.json.decode(raw, type=_Tx)
        binding = cookies.get(BINDING_COOKIE, "")
        if not binding or not hmac.compare_digest(_digest(binding), tx.binding):
            return None
        return tx

    async def _session(self, cookies: Mapping[str, str]) -> _Session | None:
        token = cookies.get(SSO_COOKIE)
        if not token or len(token) > 128:
            return None
        raw = await self._redis.get(self._session_key(token))
        return msgspec.json.decode(raw, type=_Session) if raw is not None else None

    # pages ---------------------------------------------------------------------------------

    def _page(self, html: str, status: int = 200, cookies: Sequence[CookieToSet] = ()) -> BrowserResult:
        return BrowserResult(status=status, html=html, cookies=list(cookies))

    @staticmethod
    def _redirect(location: str, status: int, cookies: Sequence[CookieToSet] = ()) -> BrowserResult:
        return BrowserResult(status=status, location=location, cookies=list(cookies))

    def _unsafe(self, message: str) -> BrowserResult:
        return self._page(error_page(message), 400)

    def _expired(self) -> BrowserResult:
        return self._unsafe("登录已过期或无效 · This sign-in has expired or is not valid in this browser.")

    async def _rebuild(self, tx: _Tx) -> AuthorizationParams | None:
        """The transaction's request, re-checked against the client as it is now."""
        try:
            client = await self._authorizer.client_and_redirect(tx.client_id, tx.redirect_uri)
        except UnsafeAuthorizationRequest:
            return None
        return AuthorizationParams(
            client=client,
            redirect_uri=tx.redirect_uri,
            scopes=tuple(tx.scopes),
            code_challenge=tx.code_challenge,
            state=tx.state,
            nonce=tx.nonce,
            prompt=frozenset(tx.prompt),
            max_age=tx.max_age,
            dpop_jkt=tx.dpop_jkt,
        )

    def _consent(self, params: AuthorizationParams, tx_id: str, cookies: Sequence[CookieToSet] = ()) -> BrowserResult:
        return self._page(
            consent_page(
                client_name=params.client.name,
                tx=tx_id,
                action=f"{self._base}/consent",
                scopes=self._authorizer.describe(params.scopes),
                offer_full_name=params.wants_full_name_choice,
            ),
            cookies=cookies,
        )

    async def _finish_or_consent(
        self,
        params: AuthorizationParams,
        tx_id: str,
        tx: _Tx,
        *,
        client_ip: str | None,
        status: int,
        cookies: Sequence[CookieToSet] = (),
    ) -> BrowserResult:
        """Issue the code at once when consent is already on record, else ask for it."""
        assert tx.account_id is not None
        assert tx.amr is not None
        assert tx.auth_time is not None
        existing = await self._authorizer.consents(tx.account_id, params.client.client_id)
        missing = self._authorizer.missing_consent(params, existing)
        if not missing and "consent" not in params.prompt:
            await self._redis.delete(self._tx_key(tx_id))
            location = await self._complete(params, tx, share_full_name=None, client_ip=client_ip)
            return self._redirect(location, status, cookies)
        if "none" in params.prompt:
            await self._redis.delete(self._tx_key(tx_id))
            location = self._authorizer.error_redirect(
                params.redirect_uri, params.state, "consent_required", "The citizen has not consented yet"
            )
            return self._redirect(location, status, cookies)
        await self._save(tx_id, tx)
        return self._consent(params, tx_id, cookies)

    async def _complete(
        self, params: AuthorizationParams, tx: _Tx, *, share_full_name: bool | None, client_ip: str | None
    ) -> str:
        assert tx.account_id is not None
        assert tx.amr is not None
        assert tx.auth_time is not None
        level = await self._authorizer.current_level(tx.account_id)
        if level is None:
            return self._authorizer.error_redirect(
                params.redirect_uri, params.state, "access_denied", "The account no longer exists"
            )
        return await self._authorizer.complete(
            params,
            account_id=tx.account_id,
            acr=level,
            amr=tx.amr,
            auth_time=tx.auth_time,
            share_full_name=share_full_name,
            channel="browser",
            client_ip=client_ip,
        )

    # steps ---------------------------------------------------------------------------------

    async def start(
        self, query: Mapping[str, list[str]], cookies: Mapping[str, str], *, client_ip: str | None
    ) -> BrowserResult:
        """``GET /oauth/authorize``: a pushed request (RFC 9126) replaces the query, and
        clients that must push are held to it."""
        try:
            query = await self._pushed.front_channel_query(query)
        except UnsafeAuthorizationRequest as exc:
            return self._unsafe(exc.message)
        values = {name: query.get(name, []) for name in AUTHORIZATION_PARAMS}
        try:
            if len(values["client_id"]) > 1 or len(values["redirect_uri"]) > 1:
                raise UnsafeAuthorizationRequest("client_id and redirect_uri must appear once.")
            client = await self._authorizer.client_and_redirect(
                next(iter(values["client_id"]), None), next(iter(values["redirect_uri"]), None)
            )
        except UnsafeAuthorizationRequest as exc:
            return self._unsafe(exc.message)
        redirect_uri = values["redirect_uri"][0]
        state = values["state"][0] if len(values["state"]) == 1 else None
        try:
            if any(len(v) > 1 for v in values.values()):
                raise RedirectableError("invalid_request", "A parameter appears more than once")
            one = {name: (v[0] if v else None) for name, v in values.items()}
            params = self._authorizer.validate(
                client,
                redirect_uri,
                response_type=one["response_type"],
                scope=one["scope"],
                code_challenge=one["code_challenge"],
                code_challenge_method=one["code_challenge_method"],
                state=one["state"],
                nonce=one["nonce"],
                prompt=one["prompt"],
                max_age=one["max_age"],
                request_object=bool(query.get("request") or query.get("request_uri")),
            )
            # RFC 9449 section 10: the code is bound to this DPoP key (a pushed request's, or
            # the dpop_jkt parameter of the request itself).
            jkt = query.get("dpop_jkt", [])
            if jkt:
                if len(jkt) > 1 or not JKT_PATTERN.fullmatch(jkt[0]):
                    raise RedirectableError("invalid_request", "dpop_jkt must be one JWK SHA-256 thumbprint")
                params = msgspec.structs.replace(params, dpop_jkt=jkt[0])
        except RedirectableError as exc:
            return self._redirect(self._authorizer.error_redirect(redirect_uri, state, exc.error, exc.description), 302)
        cookies_out: list[CookieToSet] = []
        binding = cookies.get(BINDING_COOKIE)
        if not binding or len(binding) > 128:
            binding = secrets.token_urlsafe(24)
            cookies_out.append(CookieToSet(BINDING_COOKIE, binding))
        tx_id = secrets.token_urlsafe(24)
        tx = _Tx(
            client_id=client.client_id,
            redirect_uri=redirect_uri,
            scopes=list(params.scopes),
            code_challenge=params.code_challenge,
            state=params.state,
            nonce=params.nonce,
            prompt=sorted(params.prompt),
            max_age=params.max_age,
            binding=_digest(binding),
            dpop_jkt=params.dpop_jkt,
        )
        session = await self._session(cookies)
        if session is not None and (
            params.prompt & {"login", "select_account"}
            or (params.max_age is not None and time.time() - session.auth_time > params.max_age)
        ):
            session = None
        if session is None:
            if "none" in params.prompt:
                location = self._authorizer.error_redirect(
                    redirect_uri, params.state, "login_required", "The citizen is not signed in"
                )
                return self._redirect(location, 302, cookies_out)
            await self._save(tx_id, tx)
            return self._page(
                login_page(client_name=client.name, tx=tx_id, action=f"{self._base}/otp"), cookies=cookies_out
            )
        tx.account_id, tx.amr, tx.auth_time = session.account_id, session.amr, session.auth_time
        return await self._finish_or_consent(params, tx_id, tx, client_ip=client_ip, status=302, cookies=cookies_out)

    async def send_code(
        self, form: BrowserPhoneForm, cookies: Mapping[str, str], *, client_ip: str | None
    ) -> BrowserResult:
        """``POST /oauth/authorize/otp``: send the code, show the code page."""
        tx = await self._load(form.tx, cookies)
        params = await self._rebuild(tx) if tx is not None else None
        if tx is None or params is None:
            return self._expired()
        name = params.client.name
        if not _PHONE.fullmatch(form.phone):
            html = login_page(
                client_name=name,
                tx=form.tx,
                action=f"{self._base}/otp",
                error="请输入 11 位手机号 · Enter an 11-digit mobile number",
            )
            return self._page(html, 400)
        try:
            await self._identity.send_otp(form.phone, client_ip=client_ip)
        except RateLimited as exc:
            html = login_page(
                client_name=name, tx=form.tx, action=f"{self._base}/otp", error=exc.detail, phone=form.phone
            )
            return self._page(html, 429)
        except DepartmentError:
            html = login_page(
                client_name=name,
                tx=form.tx,
                action=f"{self._base}/otp",
                error="短信服务暂不可用，请稍后再试 · SMS is unavailable, try again shortly",
                phone=form.phone,
            )
            return self._page(html, 503)
        tx.phone_enc = self._identity.pii.phone.seal(form.phone).hex()
        await self._save(form.tx, tx)
        return self._page(
            otp_page(client_name=name, tx=form.tx, action=f"{self._base}/login", masked_phone=mask_phone(form.phone))
        )

    async def login(self, form: BrowserOtpForm, cookies: Mapping[str, str], *, client_ip: str | None) -> BrowserResult:
        """``POST /oauth/authorize/login``: check the code, sign in, then consent or redirect."""
        tx = await self._load(form.tx, cookies)
        params = await self._rebuild(tx) if tx is not None else None
        if tx is None or params is None or tx.phone_enc is None:
            return self._expired()
        phone = self._identity.pii.phone.open(bytes.fromhex(tx.phone_enc))
        masked = mask_phone(phone)
        if not _OTP.fullmatch(form.otp):
            html = otp_page(
                client_name=params.client.name,
                tx=form.tx,
                action=f"{self._base}/login",
                masked_phone=masked,
                error="请输入 6 位验证码 · Enter the 6-digit code",
            )
            return self._page(html, 400)
        # The app's login: same delays, same auth.login / auth.lockout events.
        try:
            login = await self._identity.login_with_otp(
                phone, form.otp, channel="browser", client_ip=client_ip, client_id=params.client.client_id
            )
        except RateLimited:
            html = login_page(
                client_name=params.client.name,
                tx=form.tx,
                action=f"{self._base}/otp",
                error="尝试次数过多，请稍后再试 · Too many attempts: wait a moment before trying again",
            )
            return self._page(html, 429)
        except Unauthorized as exc:
            outcome = OtpOutcome(exc.extensions.get("reason", OtpOutcome.NO_CODE.value))
            if outcome is OtpOutcome.WRONG:
                html = otp_page(
                    client_name=params.client.name,
                    tx=form.tx,
                    action=f"{self._base}/login",
                    masked_phone=masked,
                    error=_OTP_ERRORS[outcome],
                )
                return self._page(html, 400)
            html = login_page(
                client_name=params.client.name,
                tx=form.tx,
                action=f"{self._base}/otp",
                error=_OTP_ERRORS.get(outcome, _OTP_ERRORS[OtpOutcome.NO_CODE]),
                phone=phone,
            )
            return self._page(html, 400)
        if login.held_back:
            # A possibly recycled number (二次号): no browser session, so no claims of the
            # bound person reach a partner until the identity is proved again in the app.
            html = login_page(
                client_name=params.client.name,
                tx=form.tx,
                action=f"{self._base}/otp",
                error="请先在 OneCity 应用中重新确认身份 · Open the OneCity app and confirm your identity first",
            )
            return self._page(html, 403)
        session = _Session(
            account_id=login.account_id, amr=list(AMR_OF_METHOD["oidc-browser"]), auth_time=int(time.time())
        )
        token = secrets.token_urlsafe(32)
        ttl = self._settings.browser_session_ttl_s
        await self._redis.set(self._session_key(token), msgspec.json.encode(session), ex=ttl)
        tx.account_id, tx.amr, tx.auth_time, tx.phone_enc = session.account_id, session.amr, session.auth_time, None
        return await self._finish_or_consent(
            params, form.tx, tx, client_ip=client_ip, status=303, cookies=[CookieToSet(SSO_COOKIE, token, ttl)]
        )

    async def consent(
        self, form: BrowserConsentForm, cookies: Mapping[str, str], *, client_ip: str | None
    ) -> BrowserResult:
        """``POST /oauth/authorize/consent``: record the decision and go back to the partner."""
        tx = await self._load(form.tx, cookies)
        params = await self._rebuild(tx) if tx is not None else None
        if tx is None or params is None or tx.account_id is None:
            return self._expired()
        # Single use: a second submission of the same page finds nothing.
        if not await self._redis.delete(self._tx_key(form.tx)):
            return self._expired()
        if form.decision == "deny":
            location = await self._authorizer.deny(
                params, account_id=tx.account_id, channel="browser", client_ip=client_ip
            )
            return self._redirect(location, 303)
        share = form.share_full_name == "on" if params.wants_full_name_choice else None
        location = await self._complete(params, tx, share_full_name=share, client_ip=client_ip)
        return self._redirect(location, 303)
