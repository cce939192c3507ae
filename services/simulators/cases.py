"""The case contract every matter-owning department simulator shares (DESIGN, "Cases").

``POST /v1/cases`` takes a case once per ``Idempotency-Key`` (the same key again answers the
same ``case_id``, never a second case); ``POST /v1/cases/{case_id}/resubmission`` takes a
corrected form. Then the simulator moves the case through its life on its own, the way a real
department's back office would, and reports each step to OneCity's
``POST /v1/departments/events`` with a ``client_credentials`` token of its own client
(``dept-<name>`` / ``dept-<name>-secret``, scope ``applications:events``).

Like a real department's outbound integration, the desk sends at most
:attr:`CaseDesk.report_concurrency` events at once over a client with as many connections; the
other cases' events wait their turn (each case's own events stay in order). Without that bound a
burst of cases had every case's report queued inside httpx's connection pool, whose queue
handling costs time proportional to its length on every request: the simulator spent its whole
event loop there, answered its own ``POST /v1/cases`` in tens of seconds, and OneCity's case
submissions timed out and backed off (bench/RESULTS.md, "after ``hall_submit``").

The path a case takes: ``accepted → under_review → approved → delivered``; a form with
``"simulate": "deny"`` ends ``denied`` after review, one with ``"simulate": "correction"`` asks
for a correction first and goes the normal way after the resubmission.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated, Any, Final

import httpx
import msgspec
from litestar import Request, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, PathParameter
from litestar.types import ControllerRouterHandler

from services.simulators.base import SimulatorError, SimulatorState
from services.tokens import VerifiedServiceToken

__all__ = ["CaseDesk", "CaseReceipt", "case_handlers", "with_cases"]

_NORMAL: Final = ("accepted", "under_review", "approved", "delivered")
_DENY: Final = ("accepted", "under_review", "denied")
_CORRECTION: Final = ("accepted", "correction_requested")
_AFTER_RESUBMISSION: Final = ("accepted", "under_review", "approved", "delivered")
_MAX_KEY_CHARS: Final = 200
#: Events one desk sends at once (and the connections of its events client).
REPORT_CONCURRENCY: Final = 8
#: Tries of one event before the desk gives it up (0.2 s backoff, doubling, at most 10 s).
_REPORT_TRIES: Final = 12


class CaseBody(msgspec.Struct, frozen=True, kw_only=True):
    """``POST /v1/cases``."""

    application_number: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    matter: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    form: dict[str, Any] = msgspec.field(default_factory=dict)
    materials: list[Any] = msgspec.field(default_factory=list)


class ResubmissionBody(msgspec.Struct, frozen=True, kw_only=True):
    """``POST /v1/cases/{case_id}/resubmission``."""

    form: dict[str, Any] = msgspec.field(default_factory=dict)


class CaseReceipt(msgspec.Struct, frozen=True, kw_only=True):
    """202 answer: the department's case id."""

    case_id: str


@dataclass
class _Case:
    case_id: str
    application_number: str
    matter: str
    form: dict[str, Any]
    statuses: list[str] = field(default_factory=list)


class CaseDesk:
    """The cases of one department simulator, and the loop that progresses them.

    Args:
        department: The department's name (its client is ``dept-<department>``).

    Attributes:
        onecity_url: OneCity's base URL, where events go; ``None`` keeps cases where they are.
        step_delay_s: Pause between two steps of a case's life.
        auto_progress: Whether cases move on their own (tests that send events themselves turn
            it off).
        report_concurrency: Events sent at once; the rest wait for a free slot.
        reports: What happened to the events: ``sent`` (OneCity answered for good),
            ``given_up`` (every try failed), ``in_flight_max`` (most sent at once).
    """

    def __init__(self, department: str) -> None:
        self.department = department
        self.onecity_url: str | None = None
        self.step_delay_s = 2.0
        self.auto_progress = True
        self.cases_by_key: dict[str, _Case] = {}
        self.cases_by_id: dict[str, _Case] = {}
        self.resubmissions: dict[str, str] = {}
        self.received: Counter[str] = Counter()
        self.report_concurrency = REPORT_CONCURRENCY
        self.reports: Counter[str] = Counter()
        self._in_flight = 0
        self._slots: asyncio.Semaphore | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._token: tuple[str, float] | None = None
        self._http: httpx.AsyncClient | None = None

    # Litestar deep-copies app state and dependencies; everyone must keep seeing this desk.
    def __copy__(self) -> CaseDesk:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> CaseDesk:
        return self

    def configure(
        self, *, onecity_url: str | None = None, step_delay_s: float | None = None, auto_progress: bool | None = None
    ) -> None:
        """Change where events go and how fast cases move (tests, the dev runner)."""
        if onecity_url is not None:
            self.onecity_url = onecity_url.rstrip("/")
            self._token = None
        if step_delay_s is not None:
            self.step_delay_s = step_delay_s
        if auto_progress is not None:
            self.auto_progress = auto_progress

    def reset(self) -> None:
        """Forget every case (``DELETE /_sim/stats``)."""
        self.cases_by_key.clear()
        self.cases_by_id.clear()
        self.resubmissions.clear()
        self.received.clear()
        self.reports.clear()

    def open_case(self, key: str, body: CaseBody) -> CaseReceipt:
        """Take a case once per idempotency key."""
        existing = self.cases_by_key.get(key)
        if existing is not None:
            return CaseReceipt(case_id=existing.case_id)
        case = _Case(
            case_id=f"{self.department}-{uuid.uuid4().hex[:16]}",
            application_number=body.application_number,
            matter=body.matter,
            form=dict(body.form),
        )
        self.cases_by_key[key] = case
        self.cases_by_id[case.case_id] = case
        self.received[body.application_number] += 1
        simulate = body.form.get("simulate")
        path = _DENY if simulate == "deny" else _CORRECTION if simulate == "correction" else _NORMAL
        self._progress(case, path)
        return CaseReceipt(case_id=case.case_id)

    def resubmit(self, key: str, case_id: str, body: ResubmissionBody) -> CaseReceipt:
        """Take a corrected form once per idempotency key; the case then goes the normal way."""
        case = self.cases_by_id.get(case_id)
        if case is None:
            raise SimulatorError(404, "unknown-case", "No such case")
        if key in self.resubmissions:
            return CaseReceipt(case_id=case_id)
        self.resubmissions[key] = case_id
        case.form = dict(body.form)
        self._progress(case, _AFTER_RESUBMISSION)
        return CaseReceipt(case_id=case_id)

    def _progress(self, case: _Case, path: tuple[str, ...]) -> None:
        if not self.auto_progress or self.onecity_url is None:
            return
        task = asyncio.get_running_loop().create_task(self._walk(case, path))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _walk(self, case: _Case, path: tuple[str, ...]) -> None:
        for status in path:
            await asyncio.sleep(self.step_delay_s)
            case.statuses.append(status)
            await self._report(case.application_number, status)

    async def _report(self, application_number: str, status: str) -> None:
        """Send one event, retrying with backoff for a while (same ``event_id`` every time)."""
        event = {
            "event_id": f"{self.department}-{uuid.uuid4().hex}",
            "application_number": application_number,
            "status": status,
            "at": dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z"),
        }
        delay = 0.2
        for _ in range(_REPORT_TRIES):
            async with self._slot():
                with contextlib.suppress(httpx.HTTPError):
                    http = self._client()
                    token = await self._access_token(http)
                    response = await http.post(
                        f"{self.onecity_url}/v1/departments/events",
                        json=event,
                        headers={"Authorization": f"Bearer {token}"},
                    )
                    if response.status_code in (202, 409, 403, 404):
                        self.reports["sent"] += 1
                        return  # taken, or refused for good: retrying would not change the answer
                    if response.status_code == 401:
                        self._token = None
            await asyncio.sleep(delay)  # backing off holds no slot
            delay = min(delay * 2, 10.0)
        self.reports["given_up"] += 1

    @contextlib.asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        """One of the :attr:`report_concurrency` sending slots, for one try of one event."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.report_concurrency)
        async with self._slots:
            self._in_flight += 1
            self.reports["in_flight_max"] = max(self.reports["in_flight_max"], self._in_flight)
            try:
                yield
            finally:
                self._in_flight -= 1

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            # As many connections as sending slots: no request ever queues inside the pool.
            connections = self.report_concurrency
            self._http = httpx.AsyncClient(
                timeout=httpx.Timeout(10.0, connect=2.0),
                limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
            )
        return self._http

    async def _access_token(self, http: httpx.AsyncClient) -> str:
        if self._token is not None and self._token[1] > time.monotonic():
            return self._token[0]
        client_id = f"dept-{self.department}"
        response = await http.post(
            f"{self.onecity_url}/oauth/token",
            data={"grant_type": "client_credentials", "scope": "applications:events"},
            auth=(client_id, f"{client_id}-secret"),
        )
        response.raise_for_status()
        body = response.json()
        token = str(body["access_token"])
        self._token = (token, time.monotonic() + max(5, int(body.get("expires_in", 60)) - 30))
        return token

    async def aclose(self) -> None:
        """Stop progressing cases and close the events client."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        self._slots = None  # the next event loop gets its own


def _idempotency_key(request: Request[Any, Any, Any]) -> str:
    key = request.headers.get("idempotency-key", "").strip()
    if not key or len(key) > _MAX_KEY_CHARS:
        raise SimulatorError(400, "idempotency-key-required", "Idempotency-Key header required")
    return key


def case_handlers(desk: CaseDesk) -> list[ControllerRouterHandler]:
    """The contract routes of the case contract, bound to ``desk``."""

    @post("/v1/cases", status_code=202, sync_to_thread=False)
    def open_case(
        request: Request[Any, Any, Any], data: JSONBody[CaseBody], token: NamedDependency[VerifiedServiceToken]
    ) -> CaseReceipt:
        del token  # the applicant is the token's subject; the guard has verified it
        return desk.open_case(_idempotency_key(request), data)

    @post("/v1/cases/{case_id:str}/resubmission", status_code=202, sync_to_thread=False)
    def resubmission(
        request: Request[Any, Any, Any],
        case_id: Annotated[str, PathParameter(max_length=80)],
        data: JSONBody[ResubmissionBody],
        token: NamedDependency[VerifiedServiceToken],
    ) -> CaseReceipt:
        del token
        return desk.resubmit(_idempotency_key(request), case_id, data)

    return [open_case, resubmission]


def with_cases(state: SimulatorState) -> list[ControllerRouterHandler]:
    """Give ``state`` a case desk and return the case routes to register with the others."""
    desk = CaseDesk(state.department)
    state.cases = desk
    return case_handlers(desk)
