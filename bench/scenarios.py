"""The scenario registry: one :class:`Scenario` per measured endpoint, all in this file.

A scenario is a name, what it measures, the request line, the Lua that builds each request
(on top of ``lua/prelude.lua``, which hands out prepared items with ``next_item()``), and
optionally an async ``prepare`` that makes the data those requests need (one line per
request, written to a file wrk reads). To add one, write a :class:`Scenario` below and
:func:`register` it; ``python -m bench --scenarios NAME`` then runs it. docs/benchmarks.md
walks through an example.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

from bench.context import BenchContext
from bench.fixtures import create_sessions, issue_otps, phone_number, send_otp

__all__ = ["BASELINE", "SCENARIOS", "Prepare", "Reference", "Scenario", "register"]

Prepare = Callable[[BenchContext, int], Coroutine[Any, Any, list[str]]]
"""``prepare(ctx, count)``: make ``count`` items (one request's data each) and return them."""


@dataclass(frozen=True, slots=True)
class Reference:
    """A published throughput figure to compare the per-core result with.

    Attributes:
        per_core_rps: Requests per second per (v)CPU.
        source: What was measured there, in a few words (it is shown next to the number).
    """

    per_core_rps: float
    source: str


@dataclass(frozen=True, slots=True)
class Scenario:
    """One measured request.

    Attributes:
        name: Identifier for ``--scenarios`` and the results table.
        description: What one request does, for the results table.
        method: HTTP method.
        path: Request path.
        lua: wrk Lua run after the prelude; define ``request()`` (usually with
            ``next_item()``) when requests differ, or leave empty for one static request.
        content_type: ``Content-Type`` of the request body, if any.
        prepare: Runs before the load, unmeasured: makes the items ``next_item()`` hands out
            (an empty list: no data) and can warm what the first requests would otherwise pay
            for (say, a department fetching the BFF's keys).
        items_per_second: Items to prepare per second of load: above the rate this machine can
            reach, since running out means reusing single-use data (reported, counted as errors).
            0: ``prepare`` is called with a count of 0.
        reference: Figure to compare the per-core throughput with.
        cleanup: Undo what ``prepare`` changed outside the data (e.g. simulator faults).
    """

    name: str
    description: str
    method: str
    path: str
    lua: str = ""
    content_type: str | None = None
    prepare: Prepare | None = None
    items_per_second: int = 0
    reference: Reference | None = None
    cleanup: Callable[[BenchContext], Coroutine[Any, Any, None]] | None = None

    def item_count(self, duration_s: int, connections: int) -> int:
        """How many items to prepare for a run of ``duration_s`` seconds."""
        if self.prepare is None or self.items_per_second == 0:
            return 0
        return self.items_per_second * duration_s + 4 * connections


_REGISTRY: dict[str, Scenario] = {}
SCENARIOS: Mapping[str, Scenario] = _REGISTRY
"""Every scenario by name, in the order they run."""

BASELINE = "trivial"
"""The scenario every other one is compared with; it always runs."""


def register(scenario: Scenario) -> Scenario:
    """Add ``scenario`` to :data:`SCENARIOS` (names are unique)."""
    if scenario.name in _REGISTRY:
        raise ValueError(f"scenario {scenario.name!r} is registered twice")
    _REGISTRY[scenario.name] = scenario
    return scenario


# --- trivial: the floor the framework, server and client set ------------------------------

register(
    Scenario(
        name="trivial",
        description="GET /health/live: no I/O; the framework + server + wrk ceiling",
        method="GET",
        path="/health/live",
    )
)


# --- refresh: one UPDATE..INSERT statement, an Ed25519 signature, one AES-GCM decryption ---


async def _prepare_refresh(ctx: BenchContext, count: int) -> list[str]:
    return await create_sessions(ctx, count, phone_prefix="17")


register(
    Scenario(
        name="refresh",
        description="POST /v1/auth/refresh: rotate a single-use refresh token, sign a new access token",
        method="POST",
        path="/v1/auth/refresh",
        content_type="application/json",
        lua="""
function request()
   return wrk.format(nil, nil, nil, '{"refresh_token":"' .. next_item() .. '"}')
end
""",
        prepare=_prepare_refresh,
        items_per_second=2500,
        reference=Reference(120, "Keycloak sizing: refresh-token grants per vCPU"),
    )
)


# --- otp_login: check the code in Redis, upsert the account, start a session ---------------


async def _prepare_otp_login(ctx: BenchContext, count: int) -> list[str]:
    return [f"{phone} {code}" for phone, code in await issue_otps(ctx, count, phone_prefix="15")]


register(
    Scenario(
        name="otp_login",
        description="POST /v1/auth/login: consume a live OTP, create account + session + refresh token",
        method="POST",
        path="/v1/auth/login",
        content_type="application/json",
        lua="""
function request()
   local phone, code = next_item():match("^(%d+) (%d+)$")
   return wrk.format(nil, nil, nil, '{"phone":"' .. phone .. '","otp":"' .. code
      .. '","device":{"id":"bench-' .. phone .. '","name":"Bench phone","platform":"ios"}}')
end
""",
        prepare=_prepare_otp_login,
        items_per_second=2000,
        reference=Reference(15, "Keycloak sizing: password logins per vCPU, password hashing included"),
    )
)


# --- otp_send: limits in Redis, a service token and a call to the SMS simulator -------------


async def _prepare_otp_send(ctx: BenchContext, count: int) -> list[str]:
    # The SMS simulator fetches the BFF's service-token keys on its first call, and answers
    # 401 for 2 s if that fetch times out: under full load it would, and the run would
    # measure a cold start. One request now makes it fetch them while the BFF is idle.
    await send_otp(ctx, phone_number("14", 0))
    return []


register(
    Scenario(
        name="otp_send",
        description="POST /v1/auth/otp: per-phone/IP limits, store the code, send it via the SMS simulator",
        method="POST",
        path="/v1/auth/otp",
        content_type="application/json",
        # A new phone per request: one phone may ask once a minute. "13" + the thread's digit
        # + an 8-digit counter is 11 digits and never meets the other scenarios' phones.
        lua="""
local sent = 0
function request()
   sent = sent + 1
   return wrk.format(nil, nil, nil, '{"phone":"13' .. (id - 1) .. string.format("%08d", sent) .. '"}')
end
""",
        prepare=_prepare_otp_send,
    )
)
