"""The application factory: one Litestar app assembled from the domains.

``create_app(settings)`` is the only entry point. It reads no environment and opens
nothing until the server starts it; its lifespan opens the pools and clients
(:mod:`bff.resources`) and closes them on shutdown.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, Request, Router
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware.rate_limit import RateLimitConfig
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.prometheus import PrometheusConfig

from bff.apidocs import OfflineSwaggerPlugin, docs_router
from bff.content_type import ContentTypeMiddleware
from bff.domains import attach_domains, start_hall_worker
from bff.inputs import BoundedRequest
from bff.metrics import cleanup_dead_workers
from bff.observability import RequestContextMiddleware
from bff.ops import JwksController, MetricsController, OpsController
from bff.peak import Admission
from bff.problems import exception_handlers
from bff.resources import close_resources, open_resources
from bff.screens import SCREENS_DEPENDENCIES, ScreensController
from bff.settings import Settings
from codes import (
    CODES_DEPENDENCIES,
    CodesAdminController,
    CodesPartnerController,
    MyCodesController,
    PartnerVenuesController,
)
from core.http import VariadicTupleSchemaPlugin
from core.proxies import ClientAddresses
from core.ratelimit import AtomicRateLimitMiddleware
from core.redis import create_redis
from hall import HALL_CONTROLLERS, HALL_DEPENDENCIES
from identity import AuthController, MeController, provide_confirmed_principal, provide_identity
from identity.dependencies import client_ip
from identity.oidc import AuthorizeController, ConsentController, DiscoveryController, OAuthController
from identity.staff import StaffAdminController, StaffAuthController, auditors_read_only
from messages import MESSAGES_CONTROLLERS, MESSAGES_DEPENDENCIES

__all__ = ["create_app"]

VERSION = "0.1.0"


def _limit_key(request: Request[Any, Any, Any]) -> str:
    return client_ip(request) or "unknown"


def create_app(settings: Settings) -> Litestar:
    """Build the OneCity BFF for ``settings``.

    Args:
        settings: Built once by :func:`bff.settings.load_settings` (or by a test).

    Returns:
        A Litestar app whose lifespan opens and closes every shared resource.

    Raises:
        SettingsError: In ``prod`` without ``ONECITY_METRICS_TOKEN``.
    """

    settings.require_metrics_token()
    # The Redis client exists before start-up (the lifespan hands it to open_resources); it
    # connects lazily, on the first command, inside the server's event loop.
    redis = create_redis(
        settings.redis.url or "redis://127.0.0.1:6379/0",
        max_connections=settings.redis.max_connections,
        cluster=settings.redis.cluster,
    )

    # Admission control by tier and channel (peak mode); its switch is read from Redis.
    admission = Admission(
        max_in_flight=settings.peak.max_in_flight,
        channel_max_in_flight=settings.peak.channel_max_in_flight,
        loop_lag_ms=settings.peak.loop_lag_ms,
        tier0_latency_ms=settings.peak.tier0_latency_ms,
        retry_after_s=settings.peak.retry_after_s,
        redis=redis,
    )

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        # A respawned worker: forget the live gauges of the worker it replaces.
        cleanup_dead_workers()
        resources = await open_resources(settings, redis)
        app.state.resources = resources
        attach_domains(app.state, resources)
        hall_worker = await start_hall_worker(app.state, resources)
        app.state.hall_worker = hall_worker
        app.state.admission = admission
        # Everything made so far (modules, the app, pools, caches) lives as long as the
        # worker: move it out of the collector's reach, so a full collection walks only what
        # requests made since. Unfrozen, one walked ~100,000 objects and stopped the event
        # loop for 70-95 ms under load (every request waiting that long).
        if settings.server.gc_freeze:
            gc.freeze()
        try:
            async with admission.running():
                yield
        finally:
            if hall_worker is not None:
                await hall_worker.stop()
            # Scans still being group-committed finish before the pool closes (their callers
            # are answered); the audit batcher is flushed by close_resources.
            await app.state.codes.scan_log.close()
            await app.state.codes.rides.close()  # the ride-log worker processes
            await app.state.messages.close()
            await close_resources(resources)

    # group_path: label metrics by route template, so ids in paths don't explode cardinality.
    prometheus = PrometheusConfig(app_name="onecity", prefix="onecity", group_path=True, exclude=["/metrics"])
    return Litestar(
        route_handlers=[
            OpsController,
            JwksController,
            MetricsController,
            # Per-address ceiling on the login endpoints (Litestar's limiter config with an
            # atomic Redis counter shared by every process, core.ratelimit); the finer
            # per-phone limits live in identity.otp.
            Router(
                path="/",
                route_handlers=[AuthController],
                middleware=[
                    RateLimitConfig(
                        rate_limit=("minute", settings.server.auth_rate_per_minute),
                        # Only where guessing or abuse is possible (codes sent, codes tried).
                        # A refresh or logout presents a 256-bit secret nobody can guess, and
                        # the limiter's Redis round trip would add to their cost.
                        exclude=[r"^/v1/auth/(refresh|logout)$"],
                        # Per client, not per load balancer: the address from trusted hops.
                        identifier_for_request=_limit_key,
                        middleware_class=AtomicRateLimitMiddleware,
                    ).middleware
                ],
            ),
            MeController,
            ScreensController,
            DiscoveryController,
            OAuthController,
            AuthorizeController,
            ConsentController,
            StaffAuthController,
            StaffAdminController,
            MyCodesController,
            CodesPartnerController,
            CodesAdminController,
            PartnerVenuesController,
            *HALL_CONTROLLERS,
            *MESSAGES_CONTROLLERS,
        ],
        dependencies={
            "identity": Provide(provide_identity, sync_to_thread=False),
            # Deny by default: a session held back as a possibly recycled number gets 403
            # identity-reverification-required everywhere (codes, screens, partner approval)
            # except identity's own /v1/me and /v1/auth routes, which provide_principal.
            "principal": Provide(provide_confirmed_principal),
            **SCREENS_DEPENDENCIES,
            **CODES_DEPENDENCIES,
            **HALL_DEPENDENCIES,
            **MESSAGES_DEPENDENCIES,
        },
        lifespan=[lifespan],
        # Separation of duties: no state-changing /v1/admin/ endpoint, present or future,
        # serves an auditor (403 auditor-read-only).
        guards=[auditors_read_only],
        plugins=[VariadicTupleSchemaPlugin()],
        # client_ip() reads the resolver from here: the one place trusted proxies are known.
        state=State({"settings": settings, "client_addresses": ClientAddresses(settings.server.trusted_proxies)}),
        exception_handlers=exception_handlers(),
        middleware=[
            RequestContextMiddleware,
            prometheus.middleware,
            admission.middleware,
            ContentTypeMiddleware,
        ],
        cors_config=CORSConfig(
            allow_origins=list(settings.server.cors_origins),
            allow_methods=["GET", "POST", "PUT", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID", "Idempotency-Key"],
            expose_headers=["X-Request-ID", "Retry-After", "RateLimit-Policy", "RateLimit"],
            max_age=600,
        ),
        openapi_config=OpenAPIConfig(
            title="OneCity",
            version=VERSION,
            description="Backend-for-frontend of the city's one-entry citizen app.",
            # Served from the package (no CDN: intranets have none), under a strict CSP.
            openapi_router=docs_router("/schema"),
            render_plugins=[OfflineSwaggerPlugin("/schema")],
            components=Components(
                security_schemes={
                    "bearer": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT"),
                }
            ),
        ),
        request_max_body_size=settings.server.max_body_bytes,
        request_class=BoundedRequest,
        debug=False,
        # Logging is configured once by the CLI (JSON lines); Litestar must not replace it.
        logging_config=None,
    )
