"""Typed settings, built once from ``ONECITY_*`` environment variables.

Nothing here runs at import time: :func:`load_settings` is called by the CLI (or a test)
and its result is passed to :func:`bff.app.create_app`. Every variable is listed in
``ENVIRONMENT`` with the settings field it fills, which is also what the README documents.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from codes.settings import CodesSettings
from core.audit_chain import AuditSettings
from core.crypto import MasterKeyError, parse_master_key
from core.db import DEFAULT_STATEMENT_CACHE_SIZE
from core.settings import (
    Count,
    FractionalSeconds,
    Milliseconds,
    NonNegative,
    Port,
    SettingsError,
    name_variable,
    refuse,
)
from hall.settings import HallSettings
from identity.oidc.settings import OidcSettings
from identity.settings import IdentitySettings
from identity.staff.settings import StaffSettings
from messages.settings import MessagesSettings
from services.departments import DepartmentEndpoints
from services.fanout import FanoutSettings

__all__ = [
    "ENVIRONMENT",
    "DatabaseSettings",
    "PeakSettings",
    "RedisSettings",
    "Secret",
    "ServerSettings",
    "Settings",
    "SettingsError",
    "data_path",
    "load_settings",
    "with_derived",
]


class Secret:
    """A value that must never be printed: its ``repr`` and ``str`` are masked."""

    __slots__ = ("_value",)

    def __init__(self, value: bytes) -> None:
        self._value = value

    def reveal(self) -> bytes:
        """The secret itself; call only where it is used."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


class DatabaseSettings(msgspec.Struct, frozen=True, kw_only=True):
    """PostgreSQL. ``url`` unset means "embedded" to ``onecity dev`` and an error elsewhere."""

    url: str | None = None
    pool_min: NonNegative = 2
    pool_max: Count = 10
    command_timeout_s: FractionalSeconds = 10.0
    #: asyncpg's prepared-statement cache per connection; 0 behind a transaction pooler.
    statement_cache_size: NonNegative = DEFAULT_STATEMENT_CACHE_SIZE
    #: Direct (session-mode) connection for `onecity migrate`; None: ``url``.
    migrate_url: str | None = None
    #: Read replica for heavy reads; None: ``url``.
    read_url: str | None = None

    @property
    def migration_url(self) -> str | None:
        """Where migrations run: the direct URL, else the main one."""
        return self.migrate_url or self.url


class RedisSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Redis. ``url`` unset means "embedded" to ``onecity dev`` and an error elsewhere."""

    url: str | None = None
    max_connections: Count = 64
    #: ``url`` names one seed node of a Redis Cluster (``ONECITY_REDIS_CLUSTER``); the pool
    #: size is then per node.
    cluster: bool = False


class ServerSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The HTTP server and request limits."""

    host: str = "127.0.0.1"
    port: Port = 8000
    workers: NonNegative = 0  # 0: one per CPU core
    max_body_bytes: Count = 64 * 1024
    max_header_bytes: Count = 64 * 1024
    cors_origins: tuple[str, ...] = ("http://localhost:8080", "http://127.0.0.1:8080")
    auth_rate_per_minute: Count = 120
    #: CIDRs of the proxies whose X-Forwarded-For / Forwarded is believed; empty: none.
    trusted_proxies: tuple[str, ...] = ()
    #: Freeze the objects made at start-up out of the garbage collector's reach (``gc.freeze``):
    #: off only where many apps start and stop in one process (the test suite), since frozen
    #: cycles are never collected.
    gc_freeze: bool = True

    def __post_init__(self) -> None:
        for cidr in self.trusted_proxies:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise refuse("trusted_proxies", f"holds {cidr!r}, which is not a CIDR network") from None


class PeakSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Admission control (:mod:`bff.peak`): per-worker budgets and the overload threshold."""

    max_in_flight: Count = 128
    channel_max_in_flight: Count = 96
    loop_lag_ms: Milliseconds = 100
    tier0_latency_ms: Milliseconds = 100
    retry_after_s: Annotated[int, msgspec.Meta(ge=1, le=3600)] = 2


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything OneCity is configured by.

    Attributes:
        env: ``dev`` enables demo conveniences (liveness ``live-`` tokens, printed summary);
            ``prod`` disables them.
        public_url: The externally visible base URL; the OIDC issuer and JWKS URLs derive from it.
        city: Short id of the issuing city, the ``iss`` of codes.
        master_key: Encrypts private keys and PII at rest (``ONECITY_MASTER_KEY``).
        data_dir: Where ``onecity dev`` keeps the embedded PostgreSQL and Redis.
        metrics_token: Bearer token ``GET /metrics`` requires (``ONECITY_METRICS_TOKEN``);
            unset, ``/metrics`` is open, which the app allows only outside ``prod``
            (:meth:`require_metrics_token`).
    """

    env: Literal["dev", "test", "prod"] = "prod"
    public_url: str = "http://127.0.0.1:8000"
    city: str = "cs"
    log_level: str = "INFO"
    data_dir: str = ".onecity"
    master_key: Secret | None = None
    metrics_token: Secret | None = None
    database: DatabaseSettings = DatabaseSettings()
    redis: RedisSettings = RedisSettings()
    server: ServerSettings = ServerSettings()
    departments: DepartmentEndpoints = DepartmentEndpoints()
    identity: IdentitySettings = IdentitySettings()
    fanout: FanoutSettings = msgspec.field(default_factory=FanoutSettings)
    codes: CodesSettings = CodesSettings()
    oidc: OidcSettings = OidcSettings()
    staff: StaffSettings = StaffSettings()
    audit: AuditSettings = AuditSettings()
    hall: HallSettings = HallSettings()
    peak: PeakSettings = PeakSettings()
    messages: MessagesSettings = MessagesSettings()

    def require_master_key(self) -> bytes:
        """The master key, or a :class:`SettingsError` that says how to set one."""
        if self.master_key is None:
            raise SettingsError("ONECITY_MASTER_KEY is not set (32 random bytes, base64url)")
        return self.master_key.reveal()

    def require_metrics_token(self) -> None:
        """Refuse to serve an open ``/metrics`` in production.

        Metrics name routes, error rates and department outages: reconnaissance for an
        attacker, so on a public address they need a credential.

        Raises:
            SettingsError: ``env`` is ``prod`` and ``ONECITY_METRICS_TOKEN`` is unset.
        """
        if self.env == "prod" and self.metrics_token is None:
            raise SettingsError(
                "ONECITY_METRICS_TOKEN is not set: in production /metrics needs a bearer token "
                "(at least 32 characters, e.g. `python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
            )


#: Environment variable → dotted settings path. The README's configuration table mirrors it.
ENVIRONMENT: Mapping[str, str] = {
    "ONECITY_ENV": "env",
    "ONECITY_PUBLIC_URL": "public_url",
    "ONECITY_CITY": "city",
    "ONECITY_LOG_LEVEL": "log_level",
    "ONECITY_DATA_DIR": "data_dir",
    "ONECITY_DATABASE_URL": "database.url",
    "ONECITY_DB_POOL_MIN": "database.pool_min",
    "ONECITY_DB_POOL_MAX": "database.pool_max",
    "ONECITY_DB_COMMAND_TIMEOUT_S": "database.command_timeout_s",
    "ONECITY_DB_STATEMENT_CACHE_SIZE": "database.statement_cache_size",
    "ONECITY_MIGRATE_DATABASE_URL": "database.migrate_url",
    "ONECITY_DATABASE_READ_URL": "database.read_url",
    "ONECITY_REDIS_URL": "redis.url",
    "ONECITY_REDIS_MAX_CONNECTIONS": "redis.max_connections",
    "ONECITY_REDIS_CLUSTER": "redis.cluster",
    "ONECITY_HOST": "server.host",
    "ONECITY_PORT": "server.port",
    "ONECITY_WORKERS": "server.workers",
    "ONECITY_MAX_BODY_BYTES": "server.max_body_bytes",
    "ONECITY_GC_FREEZE": "server.gc_freeze",
    "ONECITY_MAX_HEADER_BYTES": "server.max_header_bytes",
    "ONECITY_CORS_ORIGINS": "server.cors_origins",
    "ONECITY_AUTH_RATE_PER_MINUTE": "server.auth_rate_per_minute",
    "ONECITY_TRUSTED_PROXIES": "server.trusted_proxies",
    "ONECITY_HEALTH_URL": "departments.health",
    "ONECITY_TRANSPORT_URL": "departments.transport",
    "ONECITY_SOCSEC_URL": "departments.socsec",
    "ONECITY_REGISTRY_URL": "departments.registry",
    "ONECITY_LIVENESS_URL": "departments.liveness",
    "ONECITY_SMS_URL": "departments.sms",
    "ONECITY_MINIPROGRAM_URL": "departments.miniprogram",
    "ONECITY_HUKOU_URL": "departments.hukou",
    "ONECITY_EDUCATION_URL": "departments.education",
    "ONECITY_PUSH_URL": "departments.push",
    "ONECITY_ACCESS_TOKEN_TTL_S": "identity.access_token_ttl_s",
    "ONECITY_REFRESH_IDLE_TTL_S": "identity.refresh_idle_ttl_s",
    "ONECITY_SESSION_TTL_S": "identity.session_absolute_ttl_s",
    "ONECITY_OTP_SENDS_PER_IP_PER_HOUR": "identity.otp_sends_per_ip_per_hour",
    "ONECITY_SCREEN_DEADLINE_MS": "fanout.deadline_ms",
    "ONECITY_DEPARTMENT_DEADLINE_MS": "fanout.default_deadline_ms",
    "ONECITY_DEPARTMENT_CALL_TIMEOUT_MS": "fanout.call_timeout_ms",
    "ONECITY_DEPARTMENT_CACHE": "fanout.cache_enabled",
    "ONECITY_DEPARTMENT_RETRY_ATTEMPTS": "fanout.retry.max_attempts",
    "ONECITY_DEPARTMENT_RETRY_BUDGET": "fanout.retry.budget_ratio",
    "ONECITY_BREAKER_FAILURES": "fanout.breaker.failure_threshold",
    "ONECITY_BREAKER_FAILURE_RATE": "fanout.breaker.failure_rate",
    "ONECITY_BREAKER_OPEN_S": "fanout.breaker.open_s",
    "ONECITY_BREAKER_MIN_VOLUME": "fanout.breaker.min_volume",
    "ONECITY_DEPARTMENT_POOL_CONNECTIONS": "fanout.pool.max_connections",
    "ONECITY_DEPARTMENT_POOL_KEEPALIVE": "fanout.pool.max_keepalive",
    "ONECITY_DEPARTMENT_HTTP_CLIENT": "fanout.pool.client",
    "ONECITY_CODES_CLOCK_SKEW_S": "codes.clock_skew_s",
    "ONECITY_CODES_STATUS_FRESH_S": "codes.status_fresh_s",
    "ONECITY_CODES_HOLDER_CACHE_TTL_S": "codes.holder_cache_ttl_s",
    "ONECITY_CODES_VERIFY_PER_SECOND": "codes.verify_per_second",
    "ONECITY_CODES_ISSUE_PER_MINUTE": "codes.issue_per_minute",
    "ONECITY_SCAN_RETENTION_DAYS": "codes.scan_retention_days",
    "ONECITY_CHECKIN_RETENTION_DAYS": "codes.checkin_retention_days",
    "ONECITY_RIDE_RETENTION_DAYS": "codes.ride_retention_days",
    "ONECITY_CODES_RETENTION_INTERVAL_S": "codes.retention_interval_s",
    "ONECITY_DEVICE_CERTIFICATE_S": "codes.device_certificate_s",
    "ONECITY_CODES_SUMMARY_CACHE_S": "codes.summary_cache_s",
    "ONECITY_RIDE_VERIFY_PROCESSES": "codes.ride_verify_processes",
    "ONECITY_CODES_REEVALUATE_INTERVAL_S": "codes.reevaluate_interval_s",
    "ONECITY_CODES_REEVALUATE_WINDOW_S": "codes.reevaluate_window_s",
    "ONECITY_CODES_REEVALUATE_BATCH": "codes.reevaluate_batch",
    "ONECITY_OIDC_CODE_TTL_S": "oidc.code_ttl_s",
    "ONECITY_OIDC_ACCESS_TOKEN_TTL_S": "oidc.access_token_ttl_s",
    "ONECITY_OIDC_CLIENT_TOKEN_TTL_S": "oidc.client_token_ttl_s",
    "ONECITY_OIDC_REFRESH_IDLE_TTL_S": "oidc.refresh_idle_ttl_s",
    "ONECITY_OIDC_GRANT_TTL_S": "oidc.grant_ttl_s",
    "ONECITY_OIDC_CLIENT_CACHE_TTL_S": "oidc.client_cache_ttl_s",
    "ONECITY_STAFF_TOKEN_TTL_S": "staff.token_ttl_s",
    "ONECITY_STAFF_WEBAUTHN_REQUIRED": "staff.webauthn_required",
    "ONECITY_STAFF_WEBAUTHN_RP_ID": "staff.webauthn_rp_id",
    "ONECITY_STAFF_WEBAUTHN_ORIGINS": "staff.webauthn_origins",
    "ONECITY_AUDIT_RETENTION_DAYS": "audit.retention_days",
    "ONECITY_HALL_WORKER": "hall.worker",
    "ONECITY_HALL_WORKER_CONCURRENCY": "hall.worker_concurrency",
    "ONECITY_HALL_RETRY_BASE_S": "hall.retry_base_s",
    "ONECITY_HALL_RETRY_MAX_S": "hall.retry_max_s",
    "ONECITY_HALL_RETRY_BUDGET_S": "hall.retry_budget_s",
    "ONECITY_HALL_HEARTBEAT_S": "hall.heartbeat_s",
    "ONECITY_PEAK_MAX_IN_FLIGHT": "peak.max_in_flight",
    "ONECITY_PEAK_CHANNEL_MAX_IN_FLIGHT": "peak.channel_max_in_flight",
    "ONECITY_PEAK_LOOP_LAG_MS": "peak.loop_lag_ms",
    "ONECITY_PEAK_TIER0_LATENCY_MS": "peak.tier0_latency_ms",
    "ONECITY_PEAK_RETRY_AFTER_S": "peak.retry_after_s",
    "ONECITY_MESSAGES_PAGE_SIZE": "messages.page_size",
    "ONECITY_MESSAGES_RETENTION_DAYS": "messages.retention_days",
    "ONECITY_MESSAGES_KEEPALIVE_S": "messages.keepalive_s",
    "ONECITY_MESSAGES_MAX_STREAMS": "messages.max_streams",
    "ONECITY_MESSAGES_STREAM_LEASE_S": "messages.stream_lease_s",
    "ONECITY_MESSAGES_NOTICE_BATCH": "messages.notice_batch",
}

_LISTS = {"server.cors_origins", "server.trusted_proxies", "staff.webauthn_origins"}


def _nest(flat: Mapping[str, str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path, value in flat.items():
        *parents, leaf = path.split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = [v.strip() for v in value.split(",") if v.strip()] if path in _LISTS else value
    return tree


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build :class:`Settings` from ``environ`` (default ``os.environ``).

    Args:
        environ: The variables to read; only ``ONECITY_*`` names in ``ENVIRONMENT`` count.
        overrides: Top-level fields to set after reading, e.g. ``env="dev"``.

    Raises:
        SettingsError: naming the variable whose value is unusable (never echoing a secret).
    """
    env = os.environ if environ is None else environ
    flat = {path: env[name] for name, path in ENVIRONMENT.items() if env.get(name, "") != ""}
    try:
        settings = msgspec.convert(_nest(flat), Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError(name_variable(str(exc), ENVIRONMENT)) from None
    raw_key = env.get("ONECITY_MASTER_KEY")
    if raw_key:
        try:
            settings = msgspec.structs.replace(settings, master_key=Secret(parse_master_key(raw_key)))
        except MasterKeyError as exc:
            raise SettingsError(str(exc)) from None
    raw_token = env.get("ONECITY_METRICS_TOKEN")
    if raw_token:
        settings = msgspec.structs.replace(settings, metrics_token=Secret(parse_metrics_token(raw_token)))
    if overrides:
        settings = msgspec.structs.replace(settings, **overrides)
    return with_derived(settings)


_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/=")


def parse_metrics_token(raw: str) -> bytes:
    """Validate ``ONECITY_METRICS_TOKEN``: RFC 6750 token characters, at least 32 of them.

    Raises:
        SettingsError: naming the variable, never echoing the value.
    """
    if len(raw) < 32 or not set(raw) <= _TOKEN_CHARS:
        raise SettingsError(
            "ONECITY_METRICS_TOKEN: expected at least 32 characters from [A-Za-z0-9-._~+/=] (a bearer token)"
        )
    return raw.encode()


def with_derived(settings: Settings) -> Settings:
    """Fill the fields that follow from others (token issuer = public URL)."""
    identity = msgspec.structs.replace(settings.identity, issuer=settings.public_url.rstrip("/"))
    return msgspec.structs.replace(settings, identity=identity)


def data_path(settings: Settings) -> Path:
    """The data folder as an absolute path."""
    return Path(settings.data_dir).expanduser().resolve()
