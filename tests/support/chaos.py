"""Faults under load: a deployment on servers the test owns, a small load generator, a
readiness probe, and what they observed (errors by status, recovery times, acknowledged
effects to look for afterwards).

The load is a few asyncio workers doing what citizens and gates do: OTP logins, refreshes,
``GET /v1/me``, code issuing and one-time verifications (``consume``), and the home screen.
Every answer is recorded with its start time, so the test can say which errors happened
during the outage, which after, and when each kind of request first succeeded again.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import random
import secrets
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from core.db import Pool, create_pool
from core.migrate import apply_migrations
from services.departments.sms import SmsGateway
from tests.support.citizens import bearer, latest_otp
from tests.support.processes import ServerProcess, server_process

__all__ = [
    "Citizen",
    "Deployment",
    "LoadRun",
    "Outcome",
    "ReadinessProbe",
    "claims_of",
    "deployment",
    "jti_of",
    "keep_stderr",
    "prepare_database",
]

DEVICE = {"id": "chaos-device", "name": "Chaos phone", "platform": "android"}
#: Any single request taking longer than this is a hang (the client gives up a bit later).
HANG_BOUND_S = 15.0
#: Limits raised so that the load measures outages, not the login limits.
LOAD_ENV = {
    "ONECITY_AUTH_RATE_PER_MINUTE": "1000000",
    "ONECITY_OTP_SENDS_PER_IP_PER_HOUR": "1000000",
    "ONECITY_CODES_ISSUE_PER_MINUTE": "100000",
    "ONECITY_LOG_LEVEL": "WARNING",
}


def claims_of(jwt: str) -> dict[str, Any]:
    """The claims of a JWT, unverified (the test reads its own tokens' ``sid`` and ``sub``)."""
    part = jwt.split(".")[1]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


def jti_of(payload: str) -> str:
    """The ``jti`` of an ``OC1:`` code payload, unverified."""
    return str(claims_of(payload.removeprefix("OC1:"))["jti"])


# deployment ------------------------------------------------------------------------------------


async def prepare_database(admin_url: str, name: str, *, keys_from: Pool) -> str:
    """Create database ``name`` on the server of ``admin_url``, migrate it and copy the signing
    keys of the test session into it; return its URL.

    Copying the keys (encrypted under the same master key) makes the deployment sign with the
    keys the session's department simulators trust, and verify the partner and staff tokens the
    test mints with the session's key store.
    """
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    pool = await create_pool(url, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            await apply_migrations(conn)
            rows = await keys_from.fetch("SELECT * FROM signing_keys")
            await conn.copy_records_to_table(
                "signing_keys", records=[tuple(r.values()) for r in rows], columns=list(rows[0].keys())
            )
    finally:
        await pool.close()
    return url


@dataclass
class Deployment:
    """A running ``onecity serve`` (its URL and process), its database, and its log file."""

    server: ServerProcess
    database_url: str
    log: Path

    def log_lines(self) -> list[dict[str, Any]]:
        """The server's JSON log lines so far (others, e.g. granian's, skipped)."""
        lines = []
        for raw in self.log.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                entry = json.loads(raw)
                if isinstance(entry, dict):
                    lines.append(entry)
        return lines

    def unhandled_errors(self) -> list[dict[str, Any]]:
        """Log lines of requests that ended as a 500."""
        return [e for e in self.log_lines() if e.get("msg") == "unhandled error"]


def _drain(stream: Any, target: Path) -> None:
    with target.open("ab") as out:
        # read1: whatever the pipe has now (read() would wait for a full buffer).
        for chunk in iter(lambda: stream.read1(65536), b""):
            out.write(chunk)
            out.flush()


def keep_stderr(server: ServerProcess, log: Path) -> None:
    """Copy the server's stderr to ``log`` from a thread, until the process ends.

    The stderr of :func:`tests.support.processes.server_process` is a pipe: unread, a burst of
    warnings would fill it and block the server (looking like a hang).
    """
    assert server.process.stderr is not None
    threading.Thread(target=_drain, args=(server.process.stderr, log), daemon=True).start()


@contextlib.asynccontextmanager
async def deployment(
    *,
    database_url: str,
    redis_url: str,
    master_key: bytes,
    departments: Mapping[str, str],
    log: Path,
    workers: int = 2,
    extra_env: Mapping[str, str] | None = None,
) -> AsyncIterator[Deployment]:
    """``onecity serve`` on the given servers, its stderr copied to ``log``."""
    async with server_process(
        database_url=database_url,
        redis_url=redis_url,
        master_key=master_key,
        departments=departments,
        workers=workers,
        extra_env={**LOAD_ENV, **dict(extra_env or {})},
    ) as server:
        keep_stderr(server, log)
        yield Deployment(server=server, database_url=database_url, log=log)


# observations ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """One request of the load: which, when (seconds since the run started), how long, answer."""

    op: str
    started: float
    elapsed: float
    status: int | None  # None: no HTTP answer (connection error or client timeout)
    problem: bool = True  # for a 5xx: problem+json with Retry-After
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and self.status < 400


def _is_problem_with_retry(response: httpx.Response) -> bool:
    content_type: str = response.headers.get("content-type", "")
    retry_after: str = response.headers.get("retry-after", "")
    return content_type.startswith("application/problem+json") and retry_after.isdigit()


@dataclass
class Citizen:
    """A signed-in citizen of the load, with the newest tokens the server acknowledged."""

    phone: str
    account_id: str
    session_id: str
    access: str
    refresh: str
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    #: A refresh got no HTTP answer: the old token may have been spent (no grace window).
    in_doubt: bool = False
    #: Ended on purpose by the test.
    ended: bool = False


class LoadRun:
    """Concurrent workers against one server, recording every answer.

    Args:
        client: Talks to the server under test.
        sms: Reads the one-time codes from the SMS simulator's outbox.
        partner: Headers of a partner token with ``codes:verify``.
        phone_prefix: Three digits starting the phones of this run's new citizens.
    """

    def __init__(
        self, client: httpx.AsyncClient, sms: SmsGateway, partner: Mapping[str, str], *, phone_prefix: str
    ) -> None:
        self.client = client
        self.sms = sms
        self.partner = dict(partner)
        self.t0 = time.monotonic()
        self.outcomes: list[Outcome] = []
        self.citizens: list[Citizen] = []
        self._phones = (f"{phone_prefix}{n:08d}" for n in range(10**8))
        self._random = random.Random(7)
        # Acknowledged effects, to look for after the fault.
        self.acked_logins: list[tuple[str, str]] = []  # (session id, account id)
        self.acked_scans: list[str] = []  # jti
        self.acked_refreshes = 0
        self.pending_codes: list[tuple[str, str]] = []  # (payload, jti) issued, not yet verified
        #: Verifications answered 503: the gate was told to retry them.
        self.refused_scans: list[tuple[str, str]] = []
        #: Refresh tokens answered 401 although no earlier refresh of them went unanswered.
        self.lost_refresh: list[str] = []
        #: Logins answered 401 ``no_code``: their OTP lived only in a Redis that was emptied.
        self.otp_lost = 0
        self.unexpected: list[str] = []

    def now(self) -> float:
        return time.monotonic() - self.t0

    # recording --------------------------------------------------------------------------------

    async def call(self, op: str, method: str, url: str, **kwargs: Any) -> httpx.Response | None:
        """Send one request and record its outcome; ``None`` when no answer came."""
        started = self.now()
        try:
            response = await self.client.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            self.outcomes.append(Outcome(op, started, self.now() - started, None, False, exc.__class__.__name__))
            return None
        problem = response.status_code < 500 or _is_problem_with_retry(response)
        self.outcomes.append(Outcome(op, started, self.now() - started, response.status_code, problem))
        return response

    # operations -------------------------------------------------------------------------------

    async def login(self, phone: str | None = None) -> Citizen | None:
        """OTP and login for a new (or given) phone; the citizen when the login was answered."""
        phone = phone or next(self._phones)
        sent = await self.call("otp", "POST", "/v1/auth/otp", json={"phone": phone})
        if sent is None or sent.status_code != 202:
            return None
        code = await latest_otp(self.sms, phone)
        response = await self.call(
            "login", "POST", "/v1/auth/login", json={"phone": phone, "otp": code, "device": DEVICE}
        )
        if response is None or response.status_code != 200:
            if response is not None and response.status_code == 401:
                if response.json().get("reason") == "no_code":
                    self.otp_lost += 1
                else:
                    self.unexpected.append(f"login 401 {response.json().get('reason')}")
            return None
        body = response.json()
        claims = claims_of(body["access_token"])
        citizen = Citizen(phone, claims["sub"], claims["sid"], body["access_token"], body["refresh_token"])
        self.citizens.append(citizen)
        self.acked_logins.append((citizen.session_id, citizen.account_id))
        return citizen

    def _someone(self) -> Citizen | None:
        live = [c for c in self.citizens if not c.ended and not c.in_doubt]
        return self._random.choice(live) if live else None

    async def refresh(self, citizen: Citizen) -> None:
        async with citizen.lock:
            response = await self.call("refresh", "POST", "/v1/auth/refresh", json={"refresh_token": citizen.refresh})
            if response is None:
                citizen.in_doubt = True
            elif response.status_code == 200:
                body = response.json()
                citizen.access, citizen.refresh = body["access_token"], body["refresh_token"]
                self.acked_refreshes += 1
            elif response.status_code == 401:
                self.lost_refresh.append(citizen.session_id)
                citizen.ended = True

    async def me(self, citizen: Citizen) -> None:
        response = await self.call("me", "GET", "/v1/me", headers=bearer(citizen.access))
        if response is not None and response.status_code == 401:
            self.unexpected.append(f"/v1/me 401 for a live session: {response.json().get('detail')}")

    async def issue(self, citizen: Citizen) -> None:
        response = await self.call("issue", "POST", "/v1/me/codes/citizen", headers=bearer(citizen.access))
        if response is not None and response.status_code == 200:
            payload = response.json()["payload"]
            self.pending_codes.append((payload, jti_of(payload)))

    async def verify(self, payload: str, jti: str) -> None:
        response = await self.call(
            "verify", "POST", "/v1/codes/verify", json={"payload": payload, "consume": True}, headers=self.partner
        )
        if response is None or response.status_code >= 500:
            self.refused_scans.append((payload, jti))
        elif response.status_code == 200:
            body = response.json()
            if body["valid"]:
                self.acked_scans.append(jti)
            else:
                self.unexpected.append(f"verify of a fresh code: valid=false ({body.get('reason')})")

    async def home(self, citizen: Citizen) -> httpx.Response | None:
        return await self.call("home", "GET", "/v1/me/home", headers=bearer(citizen.access))

    async def mixed_step(self) -> None:
        """One request (or one OTP + login) of the citizen mix."""
        citizen = self._someone()
        roll = self._random.random()
        if citizen is None or roll < 0.15:
            await self.login()
        elif roll < 0.35:
            await self.refresh(citizen)
        elif roll < 0.55:
            await self.me(citizen)
        elif roll < 0.75 or not self.pending_codes:
            await self.issue(citizen)
        else:
            payload, jti = self.pending_codes.pop(0)
            await self.verify(payload, jti)

    # running ----------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def running(
        self, step: Callable[[], Awaitable[None]], *, workers: int = 6, pause_s: float = 0.005
    ) -> AsyncIterator[None]:
        """Run ``step`` in a loop on ``workers`` tasks until the block ends."""
        stop = asyncio.Event()

        async def worker() -> None:
            while not stop.is_set():
                try:
                    await step()
                except Exception as exc:  # a bug in the load itself must show, not hide
                    self.unexpected.append(f"load step raised {exc.__class__.__name__}: {exc}")
                await asyncio.sleep(pause_s)

        tasks = [asyncio.create_task(worker()) for _ in range(workers)]
        try:
            yield
        finally:
            stop.set()
            await asyncio.gather(*tasks)

    async def until(self, condition: Callable[[], bool], *, timeout_s: float, poll_s: float = 0.05) -> bool:
        """Wait (the load running) until ``condition()`` holds; whether it did in time."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if condition():
                return True
            await asyncio.sleep(poll_s)
        return condition()

    # analysis ---------------------------------------------------------------------------------

    def first_success(self, op: str, after: float) -> float | None:
        """When (run seconds) the first request of ``op`` started after ``after`` succeeded."""
        times = [o.started + o.elapsed for o in self.outcomes if o.op == op and o.started >= after and o.ok]
        return min(times) if times else None

    def recovered(self, ops: Iterable[str], after: float) -> bool:
        return all(self.first_success(op, after) is not None for op in ops)

    def statuses(self, since: float = 0.0, until: float = float("inf")) -> Counter[str]:
        """``"op status"`` counts of the requests started in ``[since, until)``."""
        return Counter(
            f"{o.op} {o.status if o.status is not None else 'no-answer'}"
            for o in self.outcomes
            if since <= o.started < until
        )

    def errors(self, since: float = 0.0, until: float = float("inf")) -> Counter[str]:
        """Like :meth:`statuses`, for answers that were not a success."""
        return Counter(
            f"{o.op} {o.status if o.status is not None else 'no-answer'}"
            for o in self.outcomes
            if since <= o.started < until and not o.ok
        )

    def errors_before(self, moment: float) -> Counter[str]:
        """Failed requests that had their answer before ``moment`` (the steady state)."""
        return Counter(
            f"{o.op} {o.status if o.status is not None else 'no-answer'}"
            for o in self.outcomes
            if o.started + o.elapsed < moment and not o.ok
        )

    def server_errors(self) -> list[Outcome]:
        """Answers that break the outage contract: a 5xx other than 503 problem JSON with
        ``Retry-After``, no answer at all, or an answer slower than :data:`HANG_BOUND_S`."""
        return [
            o
            for o in self.outcomes
            if o.status is None or (o.status >= 500 and (o.status != 503 or not o.problem)) or o.elapsed > HANG_BOUND_S
        ]

    def slowest(self) -> float:
        return max((o.elapsed for o in self.outcomes), default=0.0)


class ReadinessProbe:
    """Polls ``/health/ready`` (as a load balancer would) and records the answers."""

    def __init__(self, client: httpx.AsyncClient, t0: float, *, every_s: float = 0.1) -> None:
        self.client = client
        self.t0 = t0
        self.every = every_s
        self.samples: list[tuple[float, int | None, dict[str, Any]]] = []

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        stop = asyncio.Event()

        async def poll() -> None:
            while not stop.is_set():
                at = time.monotonic() - self.t0
                try:
                    response = await self.client.get("/health/ready", timeout=5)
                    body = response.json() if response.content else {}
                    self.samples.append((at, response.status_code, body))
                except httpx.HTTPError:
                    self.samples.append((at, None, {}))
                await asyncio.sleep(self.every)

        task = asyncio.create_task(poll())
        try:
            yield
        finally:
            stop.set()
            await task

    def first(self, status: int, after: float) -> float | None:
        """When (run seconds) ``/health/ready`` first answered ``status`` after ``after``."""
        return next((at for at, got, _ in self.samples if at >= after and got == status), None)

    def saw(self, status: int, since: float = 0.0) -> bool:
        return any(got == status for at, got, _ in self.samples if at >= since)

    def not_ready_bodies(self) -> list[dict[str, Any]]:
        return [body for _, got, body in self.samples if got == 503]


def new_phone_prefix() -> str:
    """Three digits ``13x``/``15x`` for a run's phones (the SMS simulator is shared)."""
    return f"1{secrets.choice('3579')}{secrets.randbelow(10)}"
