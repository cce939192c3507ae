"""Running simulators: as their own process (``serve``) or inside another one (``start_in_process``)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Generator, Mapping
from types import TracebackType
from typing import Final, Protocol

import httpx
import uvicorn
from litestar import Litestar

from services.departments.container import DEFAULT_PORTS
from services.simulators import (
    education,
    health,
    hukou,
    liveness,
    miniprogram,
    push,
    registry,
    sms,
    socsec,
    transport,
)
from services.simulators.base import SimulatorState
from services.simulators.cases import CaseDesk
from services.tokens import JwksSource, UrlJwks

__all__ = [
    "DEFAULT_PORTS",
    "SIMULATORS",
    "RunningServer",
    "SimulatorFactory",
    "case_desk",
    "serve",
    "start_in_process",
    "start_simulators",
]


class SimulatorFactory(Protocol):
    """Builds one simulator app."""

    def __call__(self, jwks: JwksSource, *, dev_mode: bool = True) -> Litestar:
        """Build the app; ``jwks`` supplies the keys its service tokens must be signed with."""
        ...


SIMULATORS: Final[Mapping[str, SimulatorFactory]] = {
    "health": health.create_app,
    "transport": transport.create_app,
    "socsec": socsec.create_app,
    "registry": registry.create_app,
    "liveness": liveness.create_app,
    "sms": sms.create_app,
    "miniprogram": miniprogram.create_app,
    "hukou": hukou.create_app,
    "education": education.create_app,
    "push": push.create_app,
}
"""Every simulator's app factory, by department name."""

_JWKS_SUFFIX: Final = "/.well-known/jwks.json"


def case_desk(app: Litestar) -> CaseDesk | None:
    """The case desk of a simulator app, if its department owns matters (to configure it)."""
    state: SimulatorState = app.state.simulator
    return state.cases


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to its host process.

    ``uvicorn.Server.serve`` installs SIGINT/SIGTERM handlers and restores them on exit; with
    several servers in one process (tests, the dev runner) those installs and restores would
    interleave and lose the host's own handlers.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class RunningServer:
    """An ASGI app served by uvicorn as a task in the current event loop.

    Use :func:`start_in_process` to create one; ``async with`` or :meth:`stop` ends it.
    """

    def __init__(self, server: uvicorn.Server, task: asyncio.Task[None], host: str, port: int) -> None:
        self._server = server
        self.app = server.config.app
        self._task = task
        self.host = host
        self.port = port

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the server."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def stop(self, *, timeout_s: float = 5.0) -> None:
        """Stop accepting, let in-flight requests finish briefly, then end the task."""
        if self._task.done():
            return
        self._server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout=timeout_s)
        except TimeoutError:
            self._server.force_exit = True
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def __aenter__(self) -> RunningServer:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets whose proto
    # says TCP, and without it Nagle + delayed ACK add ~40 ms to every keep-alive request.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        # A fixed port must be reusable at once after a restart (TIME_WAIT sockets).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


async def start_in_process(
    app: Litestar, host: str = "127.0.0.1", port: int = 0, *, graceful_shutdown_s: float = 1.0
) -> RunningServer:
    """Serve ``app`` from the current event loop until :meth:`RunningServer.stop`.

    The socket is bound here, so ``port=0`` picks a free port; ``base_url`` tells which.

    Args:
        app: The ASGI app.
        host: Interface to listen on.
        port: Port to listen on, or 0 for any free one.
        graceful_shutdown_s: How long :meth:`RunningServer.stop` lets in-flight requests run.

    Raises:
        OSError: If the address cannot be bound.
        RuntimeError: If the server fails to start.
    """
    sock = _bind(host, port)
    bound_port: int = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        lifespan="on",
        log_config=None,  # keep the host's logging configuration
        access_log=False,
        timeout_graceful_shutdown=max(1, round(graceful_shutdown_s)),
    )
    server = _EmbeddedServer(config)

    async def run() -> None:
        try:
            await server.serve(sockets=[sock])
        except SystemExit as exc:  # uvicorn exits the process on startup failure; the host process stays
            raise RuntimeError("the server failed to start") from exc
        finally:
            sock.close()

    task = asyncio.create_task(run(), name=f"uvicorn:{host}:{bound_port}")
    while not server.started:
        if task.done():
            task.result()  # raises the startup failure
            raise RuntimeError("the server stopped during startup")
        await asyncio.sleep(0.005)
    return RunningServer(server, task, host, bound_port)


async def start_simulators(
    jwks: JwksSource,
    *,
    host: str = "127.0.0.1",
    ports: Mapping[str, int] | None = None,
    dev_mode: bool = True,
    names: tuple[str, ...] | None = None,
) -> dict[str, RunningServer]:
    """Start several simulators in this process (the dev runner's and tests' shortcut).

    Args:
        jwks: The service-token keys all of them accept.
        host: Interface to listen on.
        ports: Port per name; default :data:`DEFAULT_PORTS` (use 0 for free ports).
        dev_mode: Passed to every factory.
        names: Which simulators; default all.

    Returns:
        The running servers by name; stop each when done.
    """
    chosen = {**DEFAULT_PORTS, **(ports or {})}
    running: dict[str, RunningServer] = {}
    try:
        for name in names or tuple(SIMULATORS):
            app = SIMULATORS[name](jwks, dev_mode=dev_mode)
            running[name] = await start_in_process(app, host, chosen[name])
    except BaseException:
        await asyncio.gather(*(server.stop() for server in running.values()))
        raise
    return running


async def _serve(name: str, host: str, port: int, jwks_url: str, dev_mode: bool, case_step_s: float) -> None:
    async with httpx.AsyncClient(timeout=httpx.Timeout(2.0)) as http:
        app = SIMULATORS[name](UrlJwks(jwks_url, http), dev_mode=dev_mode)
        desk = case_desk(app)
        if desk is not None and jwks_url.endswith(_JWKS_SUFFIX):
            # OneCity's events endpoint lives where its JWKS does.
            desk.configure(onecity_url=jwks_url.removesuffix(_JWKS_SUFFIX), step_delay_s=case_step_s)
        # log_config=None keeps the JSON logging the CLI configured.
        config = uvicorn.Config(app, host=host, port=port, workers=1, access_log=False, lifespan="on", log_config=None)
        await uvicorn.Server(config).serve()


def serve(
    name: str,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    jwks_url: str,
    dev_mode: bool = True,
    case_step_s: float = 2.0,
) -> None:
    """Run one simulator in the foreground, in this process, until interrupted.

    Args:
        name: Which simulator (a key of :data:`SIMULATORS`).
        host: Interface to listen on.
        port: Port; default its :data:`DEFAULT_PORTS` entry.
        jwks_url: The BFF's JWKS URL, where service-token keys are fetched (lazily, so the BFF
            may start later).
        dev_mode: Development shortcuts (liveness ``live-`` tokens).
        case_step_s: Seconds between two steps of a case's life (case-owning departments);
            their events go to the OneCity that publishes ``jwks_url``.

    Raises:
        ValueError: For an unknown ``name``.
    """
    if name not in SIMULATORS:
        raise ValueError(f"unknown simulator {name!r}; choose from {', '.join(SIMULATORS)}")
    asyncio.run(_serve(name, host, DEFAULT_PORTS[name] if port is None else port, jwks_url, dev_mode, case_step_s))
