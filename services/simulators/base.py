"""What every department simulator shares: token checking, faults, stats and problem documents.

A simulator is a small Litestar app built by :func:`build_simulator` from its contract route
handlers. Those handlers sit behind

- a guard that accepts only a valid service token for this department's ``aud`` and hands the
  handler the verified token as the ``token`` dependency (the citizen is ``token.subject``,
  never something from the URL), answering 401 ``application/problem+json`` otherwise; and
- :class:`FaultMiddleware`, which counts each contract request and then applies the injected
  faults (latency, 503s, hanging, malformed bodies, dropped connections).

The control routes ``/_sim/faults`` and ``/_sim/stats`` sit outside both: no token, no faults.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any, Final

import msgspec
from litestar import Litestar, Request, Response, Router, delete, get, post
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.di import Provide
from litestar.enums import ScopeType
from litestar.exceptions import HTTPException
from litestar.handlers import BaseRouteHandler
from litestar.middleware import ASGIMiddleware
from litestar.params import JSONBody
from litestar.types import ASGIApp, ControllerRouterHandler, Receive, ReceiveMessage, Scope, Send

from services.tokens import InvalidServiceToken, JwksSource, ServiceTokenVerifier, VerifiedServiceToken

if TYPE_CHECKING:
    from services.simulators.cases import CaseDesk

__all__ = [
    "PROBLEM_JSON",
    "FaultMiddleware",
    "FaultState",
    "FaultUpdate",
    "Problem",
    "SimulatorError",
    "SimulatorState",
    "Stats",
    "build_simulator",
]

PROBLEM_JSON: Final = "application/problem+json"
_MALFORMED_BODY: Final = b'{"truncated": [1, 2, {"note": "this is not valid JS'  # cut off mid-document
_DROP_PROMISED_LENGTH: Final = 4096


class Problem(msgspec.Struct, frozen=True, kw_only=True):
    """An RFC 9457 problem document."""

    type: str
    title: str
    status: int
    detail: str


class SimulatorError(Exception):
    """An error a simulator answers with a problem document.

    Args:
        status: The HTTP status.
        slug: The stable problem ``type``.
        title: Short summary of the problem type.
        detail: This occurrence; never a token, phone or ID number.
    """

    def __init__(self, status: int, slug: str, title: str, detail: str | None = None) -> None:
        super().__init__(detail or title)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail or title

    def problem(self) -> Problem:
        """The problem document for this error."""
        return Problem(type=self.slug, title=self.title, status=self.status, detail=self.detail)


class FaultState(msgspec.Struct, frozen=True, kw_only=True):
    """The faults currently injected into a simulator's contract routes."""

    latency_ms: int = 0
    error_rate: float = 0.0
    hang: bool = False
    malformed: bool = False
    drop: bool = False


class FaultUpdate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """``POST /_sim/faults``: fields left out (or null) keep their current value."""

    latency_ms: Annotated[int, msgspec.Meta(ge=0, le=600_000)] | None = None
    error_rate: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] | None = None
    hang: bool | None = None
    malformed: bool | None = None
    drop: bool | None = None


class Stats(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """``GET /_sim/stats``: contract requests received, by ``"METHOD /path"``; for a
    case-owning department also the cases taken per application number and what became of
    the events it reported (``sent``, ``given_up``, ``in_flight_max``)."""

    requests: dict[str, int]
    cases: dict[str, int] | None = None
    events: dict[str, int] | None = None


class SimulatorState:
    """The mutable state of one simulator: faults, stats, the token verifier.

    Args:
        department: The department's name, which is the ``aud`` its tokens must carry.
        jwks: Where the BFF's service-token keys come from.
        dev_mode: Whether development shortcuts are on (e.g. the liveness ``live-`` tokens).
    """

    def __init__(self, department: str, jwks: JwksSource, *, dev_mode: bool = True) -> None:
        self.department = department
        self.verifier = ServiceTokenVerifier(department, jwks)
        self.dev_mode = dev_mode
        self.faults = FaultState()
        self.stats: Counter[str] = Counter()
        self._release = asyncio.Event()  # set when hanging requests may go on
        self._random = random.Random()  # noqa: S311 - only decides which requests fail
        self.cases: CaseDesk | None = None  # set by the departments that own matters

    # Litestar deep-copies middleware, guards and app state while registering routes; the
    # control routes, the middleware and the guard must all keep seeing this one object.
    def __copy__(self) -> SimulatorState:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> SimulatorState:
        return self

    def update_faults(self, update: FaultUpdate) -> FaultState:
        """Apply ``update``; turning ``hang`` off releases hanging requests."""
        changes = {name: value for name, value in msgspec.structs.asdict(update).items() if value is not None}
        self.faults = msgspec.structs.replace(self.faults, **changes)
        if not self.faults.hang:
            self._release_hanging()
        return self.faults

    def clear_faults(self) -> FaultState:
        """Remove every fault and release hanging requests."""
        self.faults = FaultState()
        self._release_hanging()
        return self.faults

    def _release_hanging(self) -> None:
        # Wake everyone waiting on the current event, and give future hangs a fresh one.
        self._release.set()
        self._release = asyncio.Event()

    def fails_now(self) -> bool:
        """Whether this request should get the ``error_rate`` 503."""
        rate = self.faults.error_rate
        return rate > 0 and self._random.random() < rate

    async def hang(self, receive: Receive) -> Receive | None:
        """Wait until hanging is released or the client gives up.

        Returns:
            A ``receive`` that replays what was read meanwhile, or ``None`` if the client left.
        """
        release = self._release
        buffered: list[ReceiveMessage] = []

        async def until_disconnect() -> None:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                buffered.append(message)

        watcher = asyncio.ensure_future(until_disconnect())
        released = asyncio.ensure_future(release.wait())
        try:
            await asyncio.wait({watcher, released}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watcher.cancel()
            released.cancel()
        if watcher.done() and not watcher.cancelled():
            return None

        async def replay() -> ReceiveMessage:
            if buffered:
                return buffered.pop(0)
            return await receive()

        return replay

    async def authenticate(self, connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        """Guard: require a service token for this department; stash the verified token."""
        try:
            token = await self.verifier.verify(connection.headers.get("authorization"))
        except InvalidServiceToken as exc:
            raise SimulatorError(401, "unauthorized", "Service token refused", exc.reason) from None
        connection.state.service_token = token


async def _send_raw(send: Send, status: int, body: bytes, content_type: str, *, length: int | None = None) -> None:
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body) if length is None else length).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    # With `length` larger than the body, more_body=True and an early return make the ASGI
    # server close the connection mid-response: that is how `drop` works.
    await send({"type": "http.response.body", "body": body, "more_body": length is not None})


class FaultMiddleware(ASGIMiddleware):
    """Counts contract requests and applies the simulator's injected faults to them.

    Args:
        state: The simulator whose faults and stats to use.
    """

    scopes = (ScopeType.HTTP,)

    def __init__(self, state: SimulatorState) -> None:
        self.state = state

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        """Count, then delay / hang / drop / fail / garble, or pass the request on."""
        state = self.state
        method = scope["method"] if scope["type"] == ScopeType.HTTP else "WS"
        state.stats[f"{method} {scope['path_template']}"] += 1
        if state.faults.latency_ms:
            await asyncio.sleep(state.faults.latency_ms / 1000)
        if state.faults.hang:
            replay = await state.hang(receive)
            if replay is None:
                return  # the client gave up; nobody is left to answer
            receive = replay
        faults = state.faults  # re-read: hanging may have ended because the faults changed
        if faults.drop:
            await _send_raw(send, 200, b'{"partial": ', "application/json", length=_DROP_PROMISED_LENGTH)
            return
        if state.fails_now():
            problem = Problem(type="unavailable", title="Service unavailable", status=503, detail="Injected fault")
            await _send_raw(send, 503, msgspec.json.encode(problem), PROBLEM_JSON)
            return
        if faults.malformed:
            await _send_raw(send, 200, _MALFORMED_BODY, "application/json")
            return
        await next_app(scope, receive, send)


def _problem_response(problem: Problem) -> Response[Problem]:
    headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'} if problem.status == 401 else None
    return Response(problem, status_code=problem.status, media_type=PROBLEM_JSON, headers=headers)


def _on_simulator_error(_: Request[Any, Any, Any], exc: SimulatorError) -> Response[Problem]:
    return _problem_response(exc.problem())


def _on_http_exception(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Problem]:
    # Litestar's own errors (validation 400, 404, 405) in the same problem shape.
    slug = {400: "bad-request", 404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "error")
    title = {400: "Bad request", 404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "Error")
    return _problem_response(Problem(type=slug, title=title, status=exc.status_code, detail=str(exc.detail)))


def _on_unexpected(_: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    return _problem_response(Problem(type="internal", title="Internal error", status=500, detail=type(exc).__name__))


def _service_token(request: Request[Any, Any, Any]) -> VerifiedServiceToken:
    token: VerifiedServiceToken = request.state.service_token
    return token


def _control_handlers(state: SimulatorState) -> list[ControllerRouterHandler]:
    """The ``/_sim`` routes; built per app because a handler belongs to one app."""

    @get("/_sim/faults", sync_to_thread=False)
    def read_faults() -> FaultState:
        return state.faults

    @post("/_sim/faults", status_code=200, sync_to_thread=False)
    def set_faults(data: JSONBody[FaultUpdate]) -> FaultState:
        return state.update_faults(data)

    @delete("/_sim/faults", status_code=200, sync_to_thread=False)
    def clear_faults() -> FaultState:
        return state.clear_faults()

    @get("/_sim/stats", sync_to_thread=False)
    def read_stats() -> Stats:
        if state.cases is None:
            return Stats(requests=dict(state.stats))
        return Stats(requests=dict(state.stats), cases=dict(state.cases.received), events=dict(state.cases.reports))

    @delete("/_sim/stats", status_code=200, sync_to_thread=False)
    def reset_stats() -> Stats:
        state.stats.clear()
        if state.cases is not None:
            state.cases.reset()
        return Stats(requests={}) if state.cases is None else Stats(requests={}, cases={}, events={})

    return [read_faults, set_faults, clear_faults, read_stats, reset_stats]


def build_simulator(
    state: SimulatorState,
    route_handlers: Sequence[ControllerRouterHandler],
    control_handlers: Sequence[ControllerRouterHandler] = (),
) -> Litestar:
    """Assemble a simulator app.

    Args:
        state: The simulator's state (department, verifier, faults, stats).
        route_handlers: The contract routes. Each may take ``token: NamedDependency[VerifiedServiceToken]``.
        control_handlers: The simulator's own ``/_sim`` routes besides faults and stats (no
            service token, like those).
    """
    contract = Router(
        path="/",
        route_handlers=list(route_handlers),
        guards=[state.authenticate],
        middleware=[FaultMiddleware(state)],
        dependencies={"token": Provide(_service_token, sync_to_thread=False)},
    )
    desk = state.cases
    return Litestar(
        route_handlers=[contract, *_control_handlers(state), *control_handlers],
        on_shutdown=[] if desk is None else [desk.aclose],
        exception_handlers={
            SimulatorError: _on_simulator_error,
            HTTPException: _on_http_exception,
            Exception: _on_unexpected,
        },
        state=State({"simulator": state}),
        openapi_config=None,
        logging_config=None,  # leave the host's logging alone; the simulators log nothing themselves
    )
