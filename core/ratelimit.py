"""An atomic per-address request ceiling shared by every process through Redis.

Litestar's ``RateLimitMiddleware`` reads the history of an address (GET), decides, then writes
it back (SET): two processes (or one process and another instance) deciding at the same time
both see room, so under concurrency more requests pass than the limit (7 of 20 against a limit
of 5 were measured). :class:`AtomicRateLimitMiddleware` keeps Litestar's configuration,
exclusions, identifier and response headers, and replaces the decision by one Lua script on
one key (``INCR`` + ``EXPIRE`` on the first hit of a window): exactly ``limit`` requests per
window pass, whatever the number of processes. The key is a single key (one Redis Cluster
slot); a refused request is counted too, but it never extends the window.

Use it through Litestar's own config::

    RateLimitConfig(rate_limit=("minute", 120), middleware_class=AtomicRateLimitMiddleware)

The Redis client is the process's shared one (``app.state.resources.redis``, set by the
lifespan). A Redis outage is a 503 problem (as for every other Redis use), never "no limit".
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from litestar.exceptions import TooManyRequestsException
from litestar.middleware.rate_limit import DURATION_VALUES, CacheObject, RateLimitMiddleware

if TYPE_CHECKING:
    from litestar.connection import Request
    from litestar.types import Receive, Scope, Send

    from core.redis import Redis

__all__ = ["AtomicRateLimitMiddleware", "hit"]

# KEYS: counter. ARGV: window seconds. Returns {count in this window, seconds until it resets}.
_HIT = """
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('TTL', KEYS[1])
if ttl < 0 then
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1]))
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
"""


async def hit(redis: Redis, key: str, *, window_s: int) -> tuple[int, int]:
    """Count one request against ``key``; ``(count in the current window, seconds left)``."""
    count, ttl = await redis.eval(_HIT, 1, key, window_s)
    return int(count), max(1, int(ttl))


class AtomicRateLimitMiddleware(RateLimitMiddleware):
    """Litestar's rate limiter with an atomic Redis counter (see the module docstring)."""

    #: Key prefix; the address follows, so one address is one key.
    namespace = "oc:rl:"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Count the request; 429 with ``Retry-After`` past the limit, else pass it on with
        the ``RateLimit-*`` headers."""
        app = scope["litestar_app"]
        request: Request[Any, Any, Any] = app.request_class(scope)
        if await self.should_check_request(request=request):
            window = DURATION_VALUES[self.unit]
            redis = app.state.resources.redis
            count, ttl = await hit(redis, self.namespace + self.cache_key_from_request(request), window_s=window)
            # Litestar's header builder works on a history list: give it one of that length.
            cache_object = CacheObject(history=[0] * min(count, self.max_requests), reset=int(time.time()) + ttl)
            if count > self.max_requests:
                headers = self.create_response_headers(cache_object=cache_object)
                headers["Retry-After"] = str(ttl)
                raise TooManyRequestsException(headers=headers)
            if self.config.set_rate_limit_headers:
                send = self.create_send_wrapper(send=send, cache_object=cache_object)
        await self.app(scope, receive, send)
