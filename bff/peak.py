"""Peak mode: admission control by tier and channel, so showing and checking codes survives.

Every request is put in a tier by its path (cheap, before any handler runs):

* tier 0 — showing and verifying codes, and keeping a login alive: ``POST /v1/me/codes/{type}``,
  ``GET /v1/me/codes``, ``POST /v1/codes/verify``, ``GET /v1/codes/keys``, ``POST /v1/auth/refresh``,
  ``POST /oauth/token``;
* tier 1 — screens and applications: ``/v1/me/home``, the department screens
  (``/v1/me/health/…``, ``/v1/me/transport/…``, ``/v1/me/socsec/…``), ``/v1/me/applications…``;
* tier 2 — everything else (images, lists, sign-in, venues, administration).

and in a channel: the ``client_id`` of its bearer token (the citizen app, each mini-program
client, each partner), taken only from a token whose signature checks against the token key
ring (in memory, no database or Redis round trip), so a forged claim cannot put a flood into
somebody else's channel or spread it over made-up ones; no valid token: ``anonymous``.

Each worker admits a request or sheds it at once (503 ``overloaded`` problem JSON with
``Retry-After``; no queue, so a shed request costs microseconds):

* per worker at most ``max_in_flight`` requests run; tier 2 may use half of that, tier 1 four
  fifths, tier 0 all of it — so under load tier 2 sheds first, then tier 1, and tier 0 last;
* once the worker is half busy, per channel at most ``channel_max_in_flight`` run, whatever
  their tier: one partner's (or the anonymous) flood cannot take the slots another channel's
  tier 0 needs (below half, a burst from one channel may use the idle capacity);
* peak mode (``onecity peak on``, a Redis key every worker reads every half second): tier 2 is
  shed outright and tier 1 gets two fifths of the budget;
* automatic, on the worker's queue: the tier 0 requests that call no department (verify,
  keys, refresh, token: "own work") take a few milliseconds when the worker keeps up, and a
  slow department cannot make them slower, so how long they take is how long this worker
  queues. When three own-work requests still in flight have each been running longer than
  ``tier0_latency_ms`` tier 2 is shed, beyond twice that tier 1 too (reason ``queue``; three,
  so that one verification stuck on a slow commit is not taken for a queue). That is read at
  every admission: it trips within ``tier0_latency_ms`` of a queue forming, at the
  first second of a burst, with no average to converge and no answer to wait for. The moving
  average of their durations (over about the last 20 completions) and the event loop's lag
  (a moving average of samples taken twice a second, so one slow callback does not count;
  ``loop_lag_ms``) hold the shedding while the overload lasts (reason ``overload``). Loop lag
  alone misses the common overload: an asyncio worker with a hundred requests in flight
  queues them in many short loop iterations, so its lag stays small while every answer waits
  a second.

Health, metrics, key sets and the schema are never shed: the load balancer and the monitoring
must keep seeing the worker.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import logging
import re
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

import jwt
import msgspec
from prometheus_client import Counter, Gauge

from bff.problems import send_problem
from core.redis import Redis

__all__ = [
    "OVERLOADED_DETAIL",
    "OVERLOADED_TITLE",
    "PEAK_KEY",
    "PEAK_POLL_S",
    "QUEUE_WITNESSES",
    "Admission",
    "peak_status",
    "set_peak",
    "tier_of",
]

log = logging.getLogger("onecity.peak")

#: Title and detail of the 503 ``overloaded`` problem (a balancer's own 503 should say the same).
OVERLOADED_TITLE: Final = "Service overloaded"
OVERLOADED_DETAIL: Final = "OneCity is shedding load to keep codes working; retry after the given delay"
#: Redis key of the peak-mode switch (value: JSON ``{"since": unix seconds}``, optional TTL).
PEAK_KEY: Final = "oc:peak"
#: How often every worker reads the switch (seconds).
PEAK_POLL_S: Final = 0.5
_LAG_ALPHA: Final = 0.3  # weight of the newest lag sample in the moving average
_TIER0_ALPHA: Final = 0.05  # weight of one tier 0 completion (about the last 20 count)
#: Own-work requests that must all have waited beyond the limit before it counts as a queue.
QUEUE_WITNESSES: Final = 3

ADMISSIONS: Final = Counter(
    "onecity_admission",
    "Requests admitted or shed by the admission control, by tier, channel and reason",
    ["tier", "channel", "decision", "reason"],
)
PEAK_MODE: Final = Gauge(
    "onecity_peak_mode", "1 while peak mode is on (as this worker last read it)", multiprocess_mode="livemax"
)
LOOP_LAG: Final = Gauge(
    "onecity_event_loop_lag_seconds",
    "Event-loop lag, moving average (the worst live worker)",
    multiprocess_mode="livemax",
)
IN_FLIGHT: Final = Gauge(
    "onecity_in_flight_requests", "Requests being served, by tier", ["tier"], multiprocess_mode="livesum"
)

# Tier 0 requests served from our own stores only: their duration measures this worker's queue.
_OWN_WORK: Final = re.compile(r"^(?:/v1/codes/verify|/v1/codes/keys|/v1/auth/refresh|/oauth/token)/?$")
_TIER0: Final = re.compile(
    r"^(?:/v1/me/codes(?:/[^/]+)?|/v1/codes/verify|/v1/codes/keys|/v1/auth/refresh|/oauth/token)/?$"
)
_TIER1: Final = re.compile(r"^/v1/me/(?:home|health/|transport/|socsec/|applications)")
_EXEMPT: Final = re.compile(r"^/(?:health/|metrics|\.well-known/|schema)")
# Long-lived streams: admitted (or shed) like any tier 2 request when they open, but not held
# in the in-flight budget while they wait for messages; a thousand idle streams would
# otherwise leave no slot for the requests that do work.
_STREAMS: Final = re.compile(r"^/v1/me/events/?$")
_CLIENT_ID: Final = re.compile(r"^[a-z0-9._-]{2,64}$")
_MAX_CHANNEL_LABELS: Final = 32
#: Verified bearer tokens remembered per worker with the channel they name (FIFO beyond this).
_MAX_REMEMBERED_TOKENS: Final = 8192
# Shares of the per-worker budget each tier may fill: normal, then in peak mode.
_SHARES: Final = {0: 1.0, 1: 0.8, 2: 0.5}
_PEAK_SHARES: Final = {0: 1.0, 1: 0.4, 2: 0.0}


def tier_of(method: str, path: str) -> int | None:
    """The tier of a request (0 most important), or ``None`` for never-shed operations paths."""
    if method == "OPTIONS" or _EXEMPT.match(path):
        return None
    if _TIER0.match(path):
        # Only showing and fetching codes are tier 0 under /v1/me/codes (GET list, POST issue).
        return 0 if method in ("GET", "POST") else 2
    if _TIER1.match(path):
        return 1
    return 2


def _b64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


class Admission:
    """Per-worker admission control; :meth:`middleware` is the ASGI middleware factory.

    Args:
        max_in_flight: Requests this worker serves at once (tier 0 may use all of it).
        channel_max_in_flight: Requests one channel may have in flight in this worker.
        loop_lag_ms: Event-loop lag above which tier 2 is shed (tier 1 above twice it).
        tier0_latency_ms: How long the third-oldest own-work tier 0 request in flight may
            have been running, or their moving average may take, before tier 2 is shed
            (tier 1 above twice it).
        retry_after_s: The ``Retry-After`` of a shed request.
        redis: Where the peak-mode switch lives.
        clock: Seconds, monotonic; when requests start and end (tests step it by hand).
    """

    def __init__(
        self,
        *,
        max_in_flight: int,
        channel_max_in_flight: int,
        loop_lag_ms: int,
        retry_after_s: int,
        redis: Redis,
        tier0_latency_ms: int = 100,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._max = max_in_flight
        self._channel_max = channel_max_in_flight
        self._lag_s = loop_lag_ms / 1000
        self._tier0_limit_s = tier0_latency_ms / 1000
        self._retry_after = str(retry_after_s)
        self._redis = redis
        self._clock = clock
        self.in_flight = 0
        self._by_channel: dict[str, int] = {}
        self._labels: set[str] = set()
        # token -> client_id of tokens whose signature this worker checked once. A citizen's
        # or partner's token comes back on every request; checking its Ed25519 signature again
        # each time cost 5-11 % of the BFF's CPU on the code and home paths (py-spy, RESULTS.md).
        # The key is the whole token, signature included, so a forged token never matches.
        self._channels: dict[str, str] = {}
        self.peak = False
        self.lag_s = 0.0
        #: Moving average of tier 0 request durations (seconds) and completions since the last poll.
        self.tier0_s = 0.0
        self._tier0_done = 0
        # Start times of the own-work requests in flight, oldest first (insertion order; an
        # OrderedDict finds its first entry in constant time however many left before it).
        self._own_work_started: OrderedDict[int, float] = OrderedDict()
        self._tickets = itertools.count()

    # -- state from Redis and the event loop ---------------------------------------------------

    async def watch(self) -> None:
        """Background task: read the peak switch and measure event-loop lag, twice a second."""
        loop = asyncio.get_running_loop()
        unreadable = False
        while True:
            started = loop.time()
            await asyncio.sleep(PEAK_POLL_S)
            # Smoothed: one slow callback (a big render, a hash) is not overload; a loop that
            # keeps lagging for a few seconds is.
            sample = max(0.0, loop.time() - started - PEAK_POLL_S)
            self.lag_s += _LAG_ALPHA * (sample - self.lag_s)
            LOOP_LAG.set(self.lag_s)
            self.fade_tier0()
            try:
                self.peak = bool(await self._redis.exists(PEAK_KEY))
                unreadable = False
            except Exception:
                # Redis down: keep the last known switch position; say so once per outage.
                if not unreadable:
                    log.warning("peak switch unreadable; keeping peak=%s", self.peak)
                unreadable = True
            PEAK_MODE.set(1 if self.peak else 0)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Run :meth:`watch` for the app's lifetime (read the switch once first)."""
        with contextlib.suppress(Exception):
            self.peak = bool(await self._redis.exists(PEAK_KEY))
        task = asyncio.create_task(self.watch(), name="peak-watch")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def fade_tier0(self) -> None:
        """Once per poll: with no tier 0 answer since the last one the measured delay is old
        news; halve it, so the worker does not keep shedding on the memory of an overload."""
        if not self._tier0_done:
            self.tier0_s *= 0.5
        self._tier0_done = 0

    def tier0_done(self, seconds: float) -> None:
        """Count one finished tier 0 request into the moving average of their durations."""
        self.tier0_s += _TIER0_ALPHA * (seconds - self.tier0_s)
        self._tier0_done += 1

    def own_work_started(self, now: float) -> int:
        """An own-work tier 0 request starts (``now``: :func:`time.perf_counter`); its ticket."""
        ticket = next(self._tickets)
        self._own_work_started[ticket] = now
        return ticket

    def own_work_done(self, ticket: int, now: float) -> None:
        """The request of ``ticket`` finished: no longer in flight, its duration averaged."""
        started = self._own_work_started.pop(ticket)
        self.tier0_done(now - started)

    def queue_delay_s(self, now: float) -> float:
        """How long the :data:`QUEUE_WITNESSES`-th oldest own-work request in flight has been
        running (0 with fewer in flight): the least this worker's queue has held each of them."""
        if len(self._own_work_started) < QUEUE_WITNESSES:
            return 0.0
        oldest = iter(self._own_work_started.values())
        for _ in range(QUEUE_WITNESSES - 1):
            next(oldest)
        return now - next(oldest)

    # -- the decision --------------------------------------------------------------------------

    def shed_reason(self, tier: int, channel: str, now: float) -> str | None:
        """Why a request of ``tier`` from ``channel`` is shed at ``now``, or ``None`` to admit it."""
        if self.peak and tier == 2:
            return "peak"
        if tier >= 1:
            factor = 2 if tier == 1 else 1
            if self.queue_delay_s(now) > self._tier0_limit_s * factor:
                return "queue"
            if self.lag_s > self._lag_s * factor or self.tier0_s > self._tier0_limit_s * factor:
                return "overload"
        share = (_PEAK_SHARES if self.peak else _SHARES)[tier]
        if self.in_flight >= max(1, int(self._max * share)):
            return "budget"
        # Work-conserving: a channel may use what nobody else needs while the worker is less
        # than half busy; beyond that each channel is held to its own share.
        if self.in_flight * 2 >= self._max and self._by_channel.get(channel, 0) >= self._channel_max:
            return "channel"
        return None

    def channel_of(self, scope: dict[str, Any]) -> str:
        """The ``client_id`` of a correctly signed bearer token, else ``anonymous``."""
        auth = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
        scheme, _, token = auth.decode("latin-1").partition(" ")
        if scheme.lower() not in ("bearer", "dpop") or token.count(".") != 2 or len(token) > 4096:
            return "anonymous"
        known = self._channels.get(token)
        if known is not None:
            return known
        try:
            header = msgspec.json.decode(_b64(token.split(".", 1)[0]))
            kid = header.get("kid") if isinstance(header, dict) else None
            resources = scope["app"].state.resources
            key = resources.keys.ring.public_key(kid, "token") if isinstance(kid, str) else None
            if key is None:
                return "anonymous"
            # Signature only: expiry, audience and revocation are the handler's business.
            claims = jwt.decode(token, key, algorithms=["EdDSA"], options={"verify_aud": False, "verify_exp": False})
            client_id = claims.get("client_id")
        except Exception:
            # Any malformed or badly signed token is simply not a channel (the handler says 401).
            return "anonymous"
        if not isinstance(client_id, str) or not _CLIENT_ID.fullmatch(client_id):
            return "anonymous"
        if len(self._channels) >= _MAX_REMEMBERED_TOKENS:
            # Badly signed tokens are never remembered, so a flood of them cannot push the
            # real ones out; the oldest good one goes first.
            del self._channels[next(iter(self._channels))]
        self._channels[token] = client_id
        return client_id

    def _label(self, channel: str) -> str:
        # Metric labels stay bounded whatever clients exist: the first few channels seen by
        # this worker keep their name, later ones are counted as "other".
        if channel in self._labels:
            return channel
        if len(self._labels) < _MAX_CHANNEL_LABELS:
            self._labels.add(channel)
            return channel
        return "other"

    def middleware(self, app: Any) -> Any:
        """ASGI middleware factory for Litestar's ``middleware=[...]``."""
        admission = self
        retry_after = self._retry_after.encode()
        clock = self._clock

        async def admit(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            tier = tier_of(scope["method"], scope["path"])
            if tier is None:
                await app(scope, receive, send)
                return
            channel = admission.channel_of(scope)
            label = admission._label(channel)
            started = clock()
            reason = admission.shed_reason(tier, channel, started)
            if reason is not None:
                ADMISSIONS.labels(str(tier), label, "shed", reason).inc()
                await _shed(scope, send, tier, retry_after)
                return
            ADMISSIONS.labels(str(tier), label, "admitted", "").inc()
            if _STREAMS.match(scope["path"]):
                await app(scope, receive, send)
                return
            admission.in_flight += 1
            admission._by_channel[channel] = admission._by_channel.get(channel, 0) + 1
            gauge = IN_FLIGHT.labels(str(tier))
            gauge.inc()
            own_work = tier == 0 and _OWN_WORK.match(scope["path"]) is not None
            ticket = admission.own_work_started(started) if own_work else None
            try:
                await app(scope, receive, send)
            finally:
                gauge.dec()
                if ticket is not None:
                    admission.own_work_done(ticket, clock())
                admission.in_flight -= 1
                left = admission._by_channel[channel] - 1
                if left:
                    admission._by_channel[channel] = left
                else:
                    del admission._by_channel[channel]

        return admit


async def _shed(scope: Any, send: Any, tier: int, retry_after: bytes) -> None:
    await send_problem(
        scope,
        send,
        status=503,
        slug="overloaded",
        title=OVERLOADED_TITLE,
        detail=OVERLOADED_DETAIL,
        headers=[(b"retry-after", retry_after), (b"cache-control", b"no-store")],
        extensions={"tier": tier},
    )


async def set_peak(redis: Redis, on: bool, *, for_s: int | None = None) -> None:
    """Turn peak mode on (optionally for ``for_s`` seconds only) or off, for every worker."""
    if on:
        await redis.set(PEAK_KEY, msgspec.json.encode({"since": int(time.time())}), ex=for_s or None)
    else:
        await redis.delete(PEAK_KEY)


async def peak_status(redis: Redis) -> dict[str, Any]:
    """``{"peak": bool, "since": unix seconds | None, "expires_in_s": int | None}``."""
    raw = await redis.get(PEAK_KEY)
    if raw is None:
        return {"peak": False, "since": None, "expires_in_s": None}
    ttl = await redis.ttl(PEAK_KEY)
    since = msgspec.json.decode(raw).get("since")
    return {"peak": True, "since": since, "expires_in_s": ttl if ttl and ttl > 0 else None}
