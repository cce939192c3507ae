"""A connection pool per fanned-out department, on aiohttp's transport under the httpx API.

Why a pool per department: httpx's pool (httpcore 1.0) walks every pooled connection, and for
each of them counts the idle ones again, every time a request starts or ends: the cost per
request grows with the square of the connections in the pool (encode/httpx#3215). One pool
shared by every department holds the connections of all of them, so a burst of home screens
makes that pool large and the client burns CPU on bookkeeping. A pool per department keeps each
small, and a department that hangs can only exhaust its own connections.

Why aiohttp underneath (``PoolSettings.client``, default ``aiohttp``): the department clients
keep httpx as their API, but httpcore's HTTP/1.1 machinery (h11, its pool, anyio) costs several
times the CPU per call of aiohttp's C parser and pool; the numbers, with HTTP/2 and the pool
settings beside them, are in ``docs/benchmarks.md`` ("Department HTTP client"), measured by
``python -m bench.http_client``. ``httpx_aiohttp.AiohttpTransport`` is the bridge; it turns
aiohttp's errors into httpx's, but files refused connections and dropped ones under
``ConnectTimeout``, so :class:`_DepartmentTransport` maps them to what httpx's own transport
raises (``ConnectError``, ``RemoteProtocolError``): the department clients' error kinds
(``unavailable``, ``dropped``, ``timeout``) stay the same whichever transport runs.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Annotated, Literal

import aiohttp
import httpx
import msgspec
from httpx_aiohttp import AiohttpTransport

from services.departments import DepartmentEndpoints, Departments, build_departments
from services.tls import department_tls_context
from services.tokens import ServiceTokenMinter

__all__ = ["FANOUT_DEPARTMENTS", "DepartmentPools", "PoolSettings"]

FANOUT_DEPARTMENTS = ("health", "transport", "socsec")


class PoolSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Connection limits of each department's pool."""

    max_connections: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 100
    max_keepalive: Annotated[int, msgspec.Meta(ge=0, le=10_000)] = 20
    keepalive_expiry_s: Annotated[float, msgspec.Meta(ge=0.0)] = 30.0
    connect_timeout_s: Annotated[float, msgspec.Meta(gt=0.0)] = 1.0
    #: What carries the httpx requests: aiohttp's pool and parser, or httpx's own (httpcore).
    client: Literal["aiohttp", "httpcore"] = "aiohttp"


def _transport_error(exc: httpx.TransportError, request: httpx.Request) -> httpx.TransportError:
    """The error httpx's own transport would have raised for the aiohttp error behind ``exc``."""
    cause = exc.__cause__
    # Messages are fixed strings: aiohttp's can carry the URL.
    if isinstance(cause, asyncio.TimeoutError):  # aiohttp's timeouts (ServerTimeoutError...)
        return httpx.ReadTimeout("timed out", request=request)
    if isinstance(cause, aiohttp.ClientConnectorError):  # refused, unreachable, DNS
        return httpx.ConnectError("cannot connect", request=request)
    if isinstance(cause, aiohttp.ClientConnectionError | aiohttp.ClientPayloadError):
        return httpx.RemoteProtocolError("connection dropped", request=request)
    return exc


class _MappedStream(httpx.AsyncByteStream):
    """A response body whose read errors are mapped like the request's."""

    def __init__(self, inner: httpx.AsyncByteStream, request: httpx.Request) -> None:
        self._inner = inner
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._inner:
                yield chunk
        except httpx.TransportError as exc:
            raise _transport_error(exc, self._request) from None

    async def aclose(self) -> None:
        await self._inner.aclose()


class _DepartmentTransport(AiohttpTransport):
    """``AiohttpTransport`` raising the errors httpx's own transport raises (module docstring)."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = await super().handle_async_request(request)
        except httpx.TransportError as exc:
            raise _transport_error(exc, request) from None
        if isinstance(response.stream, httpx.AsyncByteStream):
            response.stream = _MappedStream(response.stream, request)
        return response


class DepartmentPools:
    """One ``httpx.AsyncClient`` per fanned-out department; close with :meth:`aclose`.

    Args:
        endpoints: Where the departments live.
        minter: Mints the service tokens.
        settings: Pool limits.
    """

    def __init__(
        self, endpoints: DepartmentEndpoints, minter: ServiceTokenMinter, settings: PoolSettings | None = None
    ) -> None:
        chosen = settings or PoolSettings()
        self.endpoints = endpoints
        self.minter = minter
        limits = httpx.Limits(
            max_connections=chosen.max_connections,
            max_keepalive_connections=chosen.max_keepalive,
            keepalive_expiry=chosen.keepalive_expiry_s,
        )

        def client() -> httpx.AsyncClient:
            tls = department_tls_context()
            transport = _DepartmentTransport(verify=tls, limits=limits) if chosen.client == "aiohttp" else None
            # The read timeout is a backstop only: the fan-out bounds every attempt itself.
            return httpx.AsyncClient(
                timeout=httpx.Timeout(5.0, connect=chosen.connect_timeout_s),
                limits=limits,
                follow_redirects=False,
                verify=tls,
                transport=transport,
            )

        self.clients = {name: client() for name in FANOUT_DEPARTMENTS}

    def wrap(self, base: Departments) -> Departments:
        """``base`` with health, transport and socsec clients on their own pools."""
        own = {name: build_departments(self.endpoints, http, self.minter) for name, http in self.clients.items()}
        return dataclasses.replace(
            base, health=own["health"].health, transport=own["transport"].transport, socsec=own["socsec"].socsec
        )

    async def aclose(self) -> None:
        """Close every pool."""
        await asyncio.gather(*(client.aclose() for client in self.clients.values()))
