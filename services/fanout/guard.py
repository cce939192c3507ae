"""The resilient read path of one department: cache, coalescing, breaker, retries, deadline, audit.

:meth:`GuardedDepartment.read` is the one place where the resilience pieces meet. For one read
on behalf of a citizen:

1. Look in the cache (fail open). A ``FRESH`` entry is the answer; a ``REVALIDATE`` one is the
   answer too, and a background refresh starts (coalesced, so one per key at a time).
2. Otherwise join or start the upstream call for this key (coalescing) and wait for it until
   the deadline. The call itself (:meth:`GuardedDepartment._call_upstream`) asks the breaker
   for a permit, runs attempts each bounded by ``min(call timeout, deadline left)``, retries
   only retryable failures (idempotent GETs only: this class only reads), with jittered backoff
   and only if the department's retry budget has a token, and on success stores the answer.
3. If that fails (or the deadline passes first): a ``STALE`` entry becomes a ``stale`` answer
   when the caller allows it, otherwise the answer is ``unavailable``.
4. Record the read in the audit log (batched) and the metrics.

What counts against the breaker: timeouts, unreachable, dropped connections, unexpected
statuses and malformed bodies. A 4xx (``rejected``) does not: the department is working and
said no; it is neither retried nor cached. Nor does a timeout of our own making: an attempt the
screen's deadline cut short, or one whose timer fired late because this process was overloaded
(:meth:`GuardedDepartment._our_timeout`); such an attempt is not retried either.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, Literal, Protocol, TypeVar

import msgspec

from core.audit import AuditEvent
from services.errors import DepartmentError, DepartmentErrorKind, department_error
from services.fanout.settings import DepartmentPolicy, FanoutSettings
from services.resilience import (
    BreakerState,
    CacheEntry,
    CircuitBreaker,
    Coalescer,
    Deadline,
    Freshness,
    RetryBudget,
    SwrCache,
    backoff_delay,
    current_deadline,
)
from services.resilience import metrics as m

__all__ = [
    "AUDIT_ACTION",
    "AuditSink",
    "Fetched",
    "GuardedDepartment",
    "KeyedHasher",
    "Prefetched",
    "ReadState",
    "audit_subject_of",
]

log = logging.getLogger("onecity.fanout")

T = TypeVar("T")

ReadState = Literal["ok", "stale", "unavailable"]
Source = Literal["department", "cache", "none"]

AUDIT_ACTION = "data.read"
"""The ``audit_log.action`` of a department read on behalf of a citizen."""

_SHARED_BREAKER = "all"  # endpoint label of the breaker a department's resources share by default


class KeyedHasher(Protocol):
    """Keyed, deterministic hashing (:class:`core.crypto.Vault` is one)."""

    def keyed_hash(self, value: bytes | str, *, domain: str) -> bytes:
        """A keyed digest of ``value``, separated by ``domain``."""
        ...


class AuditSink(Protocol):
    """Takes audit events without blocking (:class:`core.audit.AuditBatcher` is one)."""

    def add(self, event: AuditEvent) -> None:
        """Queue ``event``."""
        ...


def audit_subject_of(hasher: KeyedHasher, id_number: str) -> str:
    """The ``audit_log.subject_id`` of a read when the caller did not name the account.

    Reads through the plain department Protocols know only the ID number; it never goes into
    the log in clear, so such rows carry this keyed pseudonym, and the citizen's data-access
    view looks for both their account id and this.
    """
    return "idn:" + hasher.keyed_hash(id_number, domain="audit-subject").hex()[:32]


@dataclass(frozen=True, slots=True)
class Fetched(Generic[T]):
    """The outcome of one resilient read.

    Attributes:
        state: ``ok`` (fresh enough), ``stale`` (an older cached answer, the department failed),
            ``unavailable`` (nothing to show).
        value: The department's answer, unless ``unavailable``.
        as_of: When the department gave that answer.
        source: Where the value came from this time.
        error: What went wrong upstream, if something did (also for ``stale``).
        retry_after_s: For ``unavailable``: when trying again may help.
    """

    department: str
    state: ReadState
    value: T | None = None
    as_of: datetime | None = None
    source: Source = "none"
    error: DepartmentErrorKind | None = None
    retry_after_s: int | None = None

    def unwrap(self) -> T:
        """The value of an ``ok`` read.

        Raises:
            DepartmentError: For ``stale`` or ``unavailable`` (with the upstream error's kind).
        """
        if self.state == "ok" and self.value is not None:
            return self.value
        raise department_error(self.department, self.error or "unavailable")


@dataclass(frozen=True, slots=True)
class Prefetched:
    """The cache lookup of a read, made by the caller together with others (one ``MGET``).

    Attributes:
        entry: What the cache held (``None``: a miss, or Redis trouble).
    """

    entry: CacheEntry | None


class _Failure(Exception):
    """Internal: the upstream call failed with ``error``; carries a breaker hint."""

    def __init__(self, error: DepartmentError, retry_after_s: float = 0.0) -> None:
        super().__init__(error.kind)
        self.error = error
        self.retry_after_s = retry_after_s


class GuardedDepartment:
    """Resilient reads from one department; one instance per department per app.

    Args:
        name: The department (``health``, ``transport``, ``socsec``).
        settings: The fan-out settings.
        cache: The shared fail-open cache.
        hasher: Keys cache entries and audit pseudonyms by a keyed hash of the ID number.
        audit: Where read records go (``None``: not recorded; tests only).
        clock: Monotonic clock.
    """

    def __init__(
        self,
        name: str,
        *,
        settings: FanoutSettings,
        cache: SwrCache,
        hasher: KeyedHasher,
        audit: AuditSink | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.settings = settings
        self.policy: DepartmentPolicy = settings.policy(name)
        self._cache = cache if settings.cache_enabled else SwrCache(None)
        self._hasher = hasher
        self._audit = audit
        self._clock = clock
        self._budget = RetryBudget(settings.retry)
        self._breakers: dict[str, CircuitBreaker] = {}
        self._flights: Coalescer[tuple[Any, float]] = Coalescer()
        self._background: set[asyncio.Task[None]] = set()
        self._call_timeout_s = (self.policy.call_timeout_ms or settings.call_timeout_ms) / 1000
        self._min_attempt_s = settings.min_attempt_ms / 1000

    # public -------------------------------------------------------------------------------

    def breaker(self, resource: str) -> CircuitBreaker:
        """The breaker guarding ``resource`` (the department's shared one unless configured)."""
        group = resource if resource in self.policy.endpoint_breakers else _SHARED_BREAKER
        breaker = self._breakers.get(group)
        if breaker is None:
            gauge = m.BREAKER_STATE.labels(self.name, group)
            gauge.set(BreakerState.CLOSED)

            def on_transition(old: BreakerState, new: BreakerState) -> None:
                gauge.set(new)
                m.BREAKER_TRANSITIONS.labels(self.name, group, old.name.lower(), new.name.lower()).inc()
                log.warning(
                    "department breaker %s",
                    new.name.lower(),
                    extra={"department": self.name, "endpoint": group, "from_state": old.name.lower()},
                )

            breaker = self._breakers[group] = CircuitBreaker(
                self.settings.breaker, clock=self._clock, on_transition=on_transition
            )
        return breaker

    @property
    def cache(self) -> SwrCache:
        """The cache this department's reads use."""
        return self._cache

    def cache_key(self, resource: str, id_number: str, params: str = "") -> str | None:
        """The cache key of a read, or ``None`` when ``resource`` is not cached."""
        if self.policy.ttls.get(resource) is None or not self._cache.enabled:
            return None
        subject = self._hasher.keyed_hash(id_number, domain="fanout-cache").hex()[:32]
        return f"oc:fan:{self.name}:{resource}:{subject}" + (f":{params}" if params else "")

    async def read(
        self,
        resource: str,
        response_type: type[T],
        call: Callable[[], Awaitable[T]],
        *,
        id_number: str,
        purpose: str,
        params: str = "",
        account_id: str | None = None,
        deadline: Deadline | None = None,
        allow_stale: bool = True,
        prefetched: Prefetched | None = None,
    ) -> Fetched[T]:
        """Read ``resource`` for the citizen ``id_number`` through every resilience layer.

        Args:
            resource: The resource name (``tests``, ``card``, ...): cache TTLs, breaker, labels.
            response_type: The department's answer Struct (to decode cached JSON).
            call: Makes one upstream attempt (the plain department client's method).
            id_number: Whose data; only hashed into keys, never stored or logged.
            purpose: Why (also in the service token); recorded in the audit row.
            params: The resource's parameters in a stable form, part of the cache key.
            account_id: The citizen's account, for the audit row; ``None`` records a pseudonym.
            deadline: When the answer is due; default the current scope's, else
                ``default_deadline_ms`` from now.
            allow_stale: Whether an old cached answer may stand in for a failed call.
            prefetched: The cache lookup, if the caller made it (:meth:`cache_key`).

        Never raises a department failure: it is in the returned :class:`Fetched`.
        """
        deadline = (
            deadline
            or current_deadline()
            or Deadline.after(self.settings.default_deadline_ms / 1000, clock=self._clock)
        )
        subject = self._hasher.keyed_hash(id_number, domain="fanout-cache").hex()[:32]
        key = f"oc:fan:{self.name}:{resource}:{subject}" + (f":{params}" if params else "")
        ttl = self.policy.ttls.get(resource)
        entry: CacheEntry | None = None
        freshness = Freshness.EXPIRED
        if ttl is not None:
            if prefetched is not None:
                entry = prefetched.entry
            else:
                entry = await self._cache.get(key, timeout_s=deadline.remaining())
            if entry is not None:
                freshness = ttl.classify(time.time() - entry.as_of)
            m.CACHE_LOOKUPS.labels(self.name, resource, freshness.value if entry else "miss").inc()
        fetched: Fetched[T]
        if entry is not None and freshness in (Freshness.FRESH, Freshness.REVALIDATE):
            value = self._decode(entry, response_type)
            if value is not None:
                if freshness is Freshness.REVALIDATE:
                    self._revalidate(resource, key, call, purpose)
                fetched = Fetched(self.name, "ok", value, _stamp(entry.as_of), "cache")
                return self._finish(fetched, resource, purpose, account_id, id_number)
        task, joined = self._flights.run(
            (key, purpose), lambda: self._call_upstream(resource, key, call, deadline), name=f"fanout:{self.name}"
        )
        if joined:
            m.COALESCED.labels(self.name, resource).inc()
        fetched = await self._await(task, resource, deadline, entry, response_type, allow_stale)
        return self._finish(fetched, resource, purpose, account_id, id_number)

    async def aclose(self) -> None:
        """Cancel upstream calls and background refreshes still running (shutdown)."""
        await self._flights.cancel_all()
        for task in list(self._background):
            task.cancel()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    # the upstream call ------------------------------------------------------------------

    async def _call_upstream(
        self, resource: str, key: str, call: Callable[[], Awaitable[Any]], deadline: Deadline
    ) -> tuple[Any, float]:
        """Attempts with retries inside ``deadline``; returns ``(value, as_of)`` or raises ``_Failure``."""
        breaker = self.breaker(resource)
        self._budget.deposit()
        attempt = 0
        while True:
            permit = breaker.acquire()
            if permit is None:
                m.DEPARTMENT_CALLS.labels(self.name, resource, "short_circuited").inc()
                raise _Failure(department_error(self.name, "unavailable"), breaker.retry_after())
            timeout = deadline.capped(self._call_timeout_s)
            if timeout < max(self._min_attempt_s, 0.001):
                permit.release()
                raise _Failure(department_error(self.name, "timeout"))
            started = time.monotonic()
            try:
                async with asyncio.timeout(timeout):
                    value = await call()
            except TimeoutError:
                error: DepartmentError = department_error(self.name, "timeout")
                if self._our_timeout(timeout, started):
                    permit.release()
                    m.DEPARTMENT_CALLS.labels(self.name, resource, "deadline").inc()
                    raise _Failure(error) from None
            except DepartmentError as exc:
                error = exc
            except BaseException:
                permit.release()  # cancelled from outside (shutdown): no verdict on the department
                raise
            else:
                permit.success()
                m.DEPARTMENT_CALLS.labels(self.name, resource, "success").inc()
                as_of = time.time()
                self._store(resource, key, value, as_of)
                return value, as_of
            m.DEPARTMENT_CALLS.labels(self.name, resource, error.kind).inc()
            if error.kind == "rejected":
                permit.success()  # the department is up and answered; it just said no
                raise _Failure(error)
            permit.failure()
            attempt += 1
            if not error.retryable or attempt >= self.settings.retry.max_attempts:
                raise _Failure(error, breaker.retry_after())
            delay = backoff_delay(attempt, self.settings.retry)
            if deadline.remaining() < delay + self._min_attempt_s:
                raise _Failure(error, breaker.retry_after())
            if not self._budget.try_spend():
                m.RETRIES.labels(self.name, "budget_exhausted").inc()
                raise _Failure(error, breaker.retry_after())
            m.RETRIES.labels(self.name, "attempted").inc()
            await asyncio.sleep(delay)

    def _our_timeout(self, timeout: float, started: float) -> bool:
        """Whether a timed-out attempt says more about this process than about the department.

        In two cases the timeout is this process's own, and no verdict goes to the breaker: the
        screen's deadline cut the attempt below the call timeout (the department never had its
        full time), or the timeout fired late by more than the shortest attempt
        (``min_attempt_ms``), i.e. this process's event loop was too busy to read an answer that
        may well have arrived (under overload, counting these opened the breakers while the
        departments answered in 20 ms).
        """
        if timeout < self._call_timeout_s:
            return True
        return time.monotonic() - started - timeout > max(self._min_attempt_s, 0.001)

    async def _await(
        self,
        task: asyncio.Task[tuple[Any, float]],
        resource: str,
        deadline: Deadline,
        entry: CacheEntry | None,
        response_type: type[T],
        allow_stale: bool,
    ) -> Fetched[T]:
        # Wait without cancelling: the task may be shared with other callers (coalescing).
        done, _ = await asyncio.wait({task}, timeout=deadline.remaining())
        error: DepartmentErrorKind
        retry_after = 0.0
        if not done:
            error = "timeout"
        elif task.cancelled():
            error = "unavailable"
        else:
            exc = task.exception()
            if exc is None:
                value, as_of = task.result()
                return Fetched(self.name, "ok", value, _stamp(as_of), "department")
            if not isinstance(exc, _Failure):
                # A bug in a client, not a department failure; still never the screen's failure.
                log.error("unexpected error in a department read", extra={"department": self.name}, exc_info=exc)
                error = "bad_status"
            else:
                error, retry_after = exc.error.kind, exc.retry_after_s
        ttl = self.policy.ttls.get(resource)
        age = time.time() - entry.as_of if entry is not None else 0.0
        if allow_stale and entry is not None and ttl is not None and ttl.classify(age) is not Freshness.EXPIRED:
            value = self._decode(entry, response_type)
            if value is not None:
                return Fetched(self.name, "stale", value, _stamp(entry.as_of), "cache", error)
        hint = max(1, round(retry_after)) if retry_after else 2
        return Fetched(self.name, "unavailable", error=error, retry_after_s=hint)

    # background work --------------------------------------------------------------------

    def _revalidate(self, resource: str, key: str, call: Callable[[], Awaitable[Any]], purpose: str) -> None:
        """Refresh an entry that is still served, without anyone waiting (stale-while-revalidate)."""
        deadline = Deadline.after(self.settings.default_deadline_ms / 1000, clock=self._clock)
        self._flights.run(
            (key, purpose), lambda: self._call_upstream(resource, key, call, deadline), name=f"revalidate:{self.name}"
        )

    def _store(self, resource: str, key: str, value: Any, as_of: float) -> None:
        ttl = self.policy.ttls.get(resource)
        if ttl is None or not self._cache.enabled:
            return
        entry = CacheEntry(as_of=as_of, data=msgspec.Raw(msgspec.json.encode(value)))
        # Not awaited by the read: a slow Redis must not delay the answer it is caching.
        task = asyncio.create_task(self._cache.put(key, entry, keep_s=ttl.keep_s), name="fanout-cache-put")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # helpers ----------------------------------------------------------------------------

    def _decode(self, entry: CacheEntry, response_type: type[T]) -> T | None:
        try:
            return msgspec.json.decode(entry.data, type=response_type)
        except msgspec.DecodeError:
            return None  # cached by a version with another shape: treat as a miss

    def _finish(
        self, fetched: Fetched[T], resource: str, purpose: str, account_id: str | None, id_number: str
    ) -> Fetched[T]:
        m.SECTION_STATES.labels(self.name, resource, fetched.state).inc()
        if self._audit is not None:
            details: dict[str, Any] = {
                "department": self.name,
                "resource": resource,
                "purpose": purpose,
                "state": fetched.state,
                "source": fetched.source,
            }
            if fetched.error is not None:
                details["error"] = fetched.error
            self._audit.add(
                AuditEvent(
                    action=AUDIT_ACTION,
                    outcome="failure" if fetched.state == "unavailable" else "success",
                    actor_type="system",
                    actor_id="onecity",
                    subject_id=account_id or audit_subject_of(self._hasher, id_number),
                    details=details,
                    at=datetime.now(UTC),
                )
            )
        return fetched


def _stamp(unix: float) -> datetime:
    return datetime.fromtimestamp(unix, UTC)
