"""Operations endpoints: liveness, readiness and the published token/service keys."""

from __future__ import annotations

import asyncio
import hmac
from typing import Any

from litestar import Controller, Request, Response, get
from litestar.datastructures import State
from litestar.enums import MediaType
from litestar.openapi import ResponseSpec
from litestar.plugins.prometheus import PrometheusController

from bff.problems import problem_response
from core.errors import Unauthorized
from core.problem import ProblemDocument
from core.redis import Redis, cluster_state
from core.structs import FrozenStruct

__all__ = ["JwksController", "MetricsController", "OpsController"]

_CHECK_TIMEOUT_S = 1.0


class Liveness(FrozenStruct, frozen=True):
    """The process is up."""

    status: str = "live"


class Readiness(FrozenStruct, frozen=True):
    """This process can serve: each dependency's state."""

    status: str
    checks: dict[str, str]


class Jwks(FrozenStruct, frozen=True):
    """A JSON Web Key Set (RFC 7517)."""

    keys: list[dict[str, str]]


async def _check(coro: Any) -> str:
    try:
        await asyncio.wait_for(coro, timeout=_CHECK_TIMEOUT_S)
    except Exception:
        return "down"
    return "ok"


async def _check_redis(redis: Redis) -> str:
    """``ok``, or why Redis cannot serve: a single node must answer PING; a Cluster must say
    ``cluster_state:ok`` and every master must answer PING."""
    try:
        return await asyncio.wait_for(cluster_state(redis), timeout=_CHECK_TIMEOUT_S)
    except Exception:
        return "down"


class OpsController(Controller):
    """Liveness and readiness for the load balancer and the orchestrator."""

    path = "/health"
    tags = ["operations"]

    @get("/live", summary="Liveness: the process answers", cache=False)
    async def live(self) -> Liveness:
        """Always 200 while the event loop runs."""
        return Liveness()

    @get(
        "/ready",
        summary="Readiness: PostgreSQL and Redis reachable",
        responses={503: ResponseSpec(ProblemDocument, description="PostgreSQL or Redis unreachable")},
    )
    async def ready(self, request: Request[Any, Any, Any], state: State) -> Response[Any]:
        """200 when PostgreSQL and Redis both answer within a second (with a Redis Cluster:
        ``cluster_state:ok`` and every master answering), else 503 problem JSON."""
        resources = state.resources
        postgres, redis = await asyncio.gather(
            _check(resources.pool.fetchval("SELECT 1")), _check_redis(resources.redis)
        )
        checks = {"postgres": postgres, "redis": redis}
        if postgres == "ok" and redis == "ok":
            return Response(Readiness(status="ready", checks=checks))
        down = ", ".join(name for name, value in checks.items() if value != "ok")
        return problem_response(
            request,
            status=503,
            slug="unavailable",
            title="Not ready",
            detail=f"Unreachable: {down}",
            headers={"Retry-After": "2"},
            extensions={"checks": checks},
        )


class JwksController(Controller):
    """Public keys of the token and service signing keys."""

    path = "/.well-known"
    tags = ["keys"]

    @get(
        "/jwks.json",
        summary="JWKS of the token and service signing keys",
        cache_control=None,
        media_type="application/jwk-set+json",
    )
    async def jwks(self, request: Request[Any, Any, Any], state: State) -> Response[Jwks]:
        """Every key that verifies now or will sign soon (rotation overlap)."""
        ring = state.resources.keys.ring
        return Response(
            Jwks(keys=ring.jwks(("token", "service"))["keys"]),
            headers={"Cache-Control": "public, max-age=300"},
            media_type="application/jwk-set+json",
        )


class MetricsController(PrometheusController):
    """``/metrics``: Prometheus's text exposition format (documented as text, not JSON).

    With ``ONECITY_METRICS_TOKEN`` set (required in ``prod``) the scraper sends it as a bearer
    token; without one (dev, test) the endpoint is open.
    """

    tags = ["operations"]

    @get(
        media_type=MediaType.TEXT,
        summary="Prometheus metrics (text exposition format)",
        security=[{"bearer": []}],
        responses={401: ResponseSpec(ProblemDocument, description="Missing or wrong metrics token")},
    )
    async def get(self, request: Request[Any, Any, Any], state: State) -> Response[Any]:
        """Request counts and latencies by route template, department calls, breakers, pools.

        Raises:
            Unauthorized: A metrics token is configured and the request does not carry it.
        """
        token = state.settings.metrics_token
        if token is not None:
            scheme, _, presented = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(presented.strip().encode(), token.reveal()):
                raise Unauthorized("This endpoint needs the metrics bearer token")
        response: Response[Any] = await PrometheusController.get.fn(self)
        return response
