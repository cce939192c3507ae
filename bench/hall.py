"""The service hall under load: department event ingestion data and the bundle completion drill.

``hall_events`` (a scenario in :mod:`bench.scenarios`) loads ``POST /v1/departments/events``
with the health department's own client: :func:`prepare_events` inserts applications that
their department already holds (``submitted``, no case job: nothing else moves them) and
returns one new event per request, in an order where each application's next status arrives
only after all the other applications' previous one, so every event is legal when it comes
(``applied``), as a department reporting its back office's progress would send them.

``python -m bench --bundles N`` (:func:`run_bundle_drill`) starts ``N`` ``newborn`` bundles (出生
一件事, four steps at three departments) at a steady rate while the simulators move every case
along by themselves and report each step back, and measures each bundle's time from its
submission (``created_at``) to ``completed`` (``updated_at`` of the settled bundle), both
written by the server, so polling adds no error.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import sys
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import httpx
import msgspec

from bench.context import BenchContext
from bench.fixtures import Citizen, basic_auth, create_citizens
from core.db import create_pool
from hall import add_working_days, seed_department_clients
from hall.repository import HallRepository

__all__ = [
    "BUNDLE_FLOOR_S",
    "EVENT_PATH",
    "BundleReport",
    "department_token",
    "ensure_department_clients",
    "event_items",
    "hall_event_rows",
    "insert_applications",
    "render_bundles",
    "run_bundle_drill",
    "settle_hall",
]

#: The statuses a department reports for a case that goes the normal way, in order.
EVENT_PATH: Final = ("accepted", "under_review", "approved", "delivered")
#: The simulators' own pace (``onecity simulate``: 2 s between two steps of a case) makes a
#: ``newborn`` bundle take at least this long: the certificate's acceptance (2 s), then the
#: registration's acceptance (2 s), then the insurance and the card's four steps (8 s).
BUNDLE_FLOOR_S: Final = 12.0
#: Event ids of the prepared events start with this (the counter counts only these).
EVENT_ID_PREFIX: Final = "bench-"
_CONCLUDED: Final = ("delivered", "denied", "not_accepted", "withdrawn")
_STEP_DEPARTMENTS: Final = ("health", "hukou", "socsec")
_EVENTS_SCOPE: Final = "applications:events"


async def ensure_department_clients(ctx: BenchContext) -> None:
    """Register the departments' event clients (``dept-<name>`` / ``dept-<name>-secret``, as
    ``onecity dev`` does) unless they exist: the simulators report their cases' progress with
    them, and ``hall_events`` sends its events as ``dept-health``."""
    pool = await create_pool(ctx.database_url, min_size=1, max_size=1)
    try:
        await seed_department_clients(pool, ctx.vault)
    finally:
        await pool.close()


async def department_token(ctx: BenchContext, department: str) -> str:
    """A ``client_credentials`` token of ``dept-<department>`` (scope ``applications:events``).

    Raises:
        RuntimeError: Unless the token endpoint answered 200.
    """
    client_id = f"dept-{department}"
    async with ctx.http() as http:
        response = await http.post(
            "/oauth/token",
            data={"grant_type": "client_credentials", "scope": _EVENTS_SCOPE},
            headers={"Authorization": basic_auth(client_id, f"{client_id}-secret")},
        )
    if response.status_code != 200:
        raise RuntimeError(f"POST /oauth/token for {client_id} answered {response.status_code}: {response.text[:300]}")
    token: str = response.json()["access_token"]
    return token


async def insert_applications(
    ctx: BenchContext, citizens: Sequence[Citizen], count: int, *, matter: str = "vaccination-record-copy"
) -> list[str]:
    """Insert ``count`` ``submitted`` applications of ``matter``, round-robin over ``citizens``;
    their numbers.

    Rows as a submission writes them (the hall's own repository: application and its first
    timeline entry, the form sealed with the run's vault), without the case-submission job:
    the department is taken to hold the case already, and only the benchmark's events move
    these applications on.
    """
    pool = await create_pool(ctx.database_url, min_size=1, max_size=1)
    try:
        repository = HallRepository(pool)
        row = await repository.get_matter(matter)
        if row is None:
            raise RuntimeError(f"matter {matter!r} is not in the catalogue")
        now = dt.datetime.now(dt.UTC)
        due_at = add_working_days(now, row.time_limit_working_days)
        numbers = []
        async with pool.acquire() as conn, conn.transaction():
            for i in range(count):
                citizen = citizens[i % len(citizens)]
                application_id = uuid.uuid4()
                serial = await repository.next_number(conn)
                number = f"BE{now:%Y%m%d}{serial:08d}"
                form = {"name": "测试", "phone": citizen.phone}
                await repository.insert_application(
                    conn,
                    id=application_id,
                    number=number,
                    account_id=uuid.UUID(citizen.account_id),
                    region_code=citizen.id_number[:6],
                    matter_code=row.code,
                    matter_version=row.version,
                    department=row.department,
                    status="submitted",
                    form_enc=ctx.vault.encrypt(msgspec.json.encode(form), context="hall-form"),
                    submitted_at=now,
                    due_at=due_at,
                    updated_at=now,
                )
                await repository.add_history(conn, str(application_id), status="submitted", at=now, source="citizen")
                numbers.append(number)
        await pool.execute("ANALYZE hall_applications, hall_application_history")
    finally:
        await pool.close()
    return numbers


def event_items(numbers: Sequence[str], count: int) -> list[str]:
    """``count`` events (``"<number> <status> <event_id> <at>"``, one per request) for the
    applications ``numbers``: first every application's ``accepted``, then every one's
    ``under_review``, and so on, so an application's next event is sent ``len(numbers)``
    requests after its previous one (long answered: every event is applied, none held)."""
    if len(numbers) * len(EVENT_PATH) < count:
        raise ValueError(f"{len(numbers)} applications cannot take {count} events")
    start = dt.datetime.now(dt.UTC)
    items: list[str] = []
    for step, status in enumerate(EVENT_PATH):
        at = (start + dt.timedelta(seconds=step)).isoformat().replace("+00:00", "Z")
        for number in numbers:
            if len(items) == count:
                return items
            items.append(f"{number} {status} {EVENT_ID_PREFIX}{uuid.uuid4().hex} {at}")
    return items


async def hall_event_rows(ctx: BenchContext) -> dict[str, int]:
    """Timeline rows of the benchmark's own events (every ``applied`` event writes one)."""
    conn = await ctx.connect()
    try:
        rows: int = await conn.fetchval(
            "SELECT count(*) FROM hall_application_history WHERE event_id LIKE $1", EVENT_ID_PREFIX + "%"
        )
    finally:
        await conn.close()
    return {"event rows": rows}


async def settle_hall(ctx: BenchContext, *, timeout_s: float = 300.0) -> bool:
    """Wait until the hall is quiet: no job queued or running, and every application whose
    case a department took has concluded (the simulators report each step 2 s apart).

    A scenario that submitted applications leaves that work behind; the next scenario must not
    measure next to it. Whether it got quiet within ``timeout_s`` (a department refusing cases
    keeps its jobs retrying; the run goes on then, and says so).
    """
    deadline = time.monotonic() + timeout_s
    waiting = False
    conn = await ctx.connect()
    try:
        while True:
            # 'failed' rows are kept for an operator and never run again: not work to wait for.
            # Work due now: the periodic health re-evaluation waits queued for its interval.
            jobs: int = await conn.fetchval(
                "SELECT count(*) FROM pgqueuer WHERE status IN ('queued', 'picked') AND execute_after <= now()"
            )
            open_cases: int = await conn.fetchval(
                "SELECT count(*) FROM hall_applications WHERE case_id IS NOT NULL AND NOT (status = ANY($1::text[]))",
                list(_CONCLUDED),
            )
            if jobs == 0 and open_cases == 0:
                return True
            if not waiting:
                waiting = True
                print(
                    f"bench: waiting for the service hall to settle ({jobs} jobs, {open_cases} open cases)",
                    file=sys.stderr,
                    flush=True,
                )
            if time.monotonic() > deadline:
                print(
                    f"bench: the service hall was not quiet after {timeout_s:.0f} s "
                    f"({jobs} jobs, {open_cases} open cases); going on",
                    file=sys.stderr,
                )
                return False
            await asyncio.sleep(1.0)
    finally:
        await conn.close()


# --- the bundle drill --------------------------------------------------------------------------


@dataclass
class BundleReport:
    """What ``--bundles`` measured.

    Attributes:
        requested: Bundles the drill set out to start.
        rate: Bundles started per second.
        started: Bundles the server took (201).
        refused: Submissions answered otherwise, by status (``0``: no answer).
        completed_s: Seconds from submission to ``completed``, per completed bundle.
        needs_attention: Bundles that ended ``needs_attention``.
        unfinished: Bundles still ``running`` when the drill stopped waiting.
        step_cases: Cases the departments' simulators opened per step application (one each
            when every step was submitted exactly once).
        topology: What the BFF ran against.
        background: The background load, in a few words (or empty).
    """

    requested: int
    rate: float
    started: int = 0
    refused: dict[int, int] = field(default_factory=dict)
    completed_s: list[float] = field(default_factory=list)
    needs_attention: int = 0
    unfinished: int = 0
    step_cases: dict[str, int] = field(default_factory=dict)
    topology: str = "single Redis"
    background: str = ""

    def percentile(self, q: float) -> float:
        """Completion time percentile (nearest rank), seconds."""
        if not self.completed_s:
            return math.nan
        ordered = sorted(self.completed_s)
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]

    @property
    def duplicate_cases(self) -> int:
        """Step applications a department opened more than one case for."""
        return sum(1 for n in self.step_cases.values() if n > 1)

    @property
    def passed(self) -> bool:
        """Every bundle started, completed, and every step was one case."""
        return (
            self.started == self.requested
            and len(self.completed_s) == self.requested
            and self.duplicate_cases == 0
            and len(self.step_cases) == 4 * self.requested
        )


def newborn_form(citizen: Citizen, index: int) -> dict[str, Any]:
    """The one form of a ``newborn`` bundle, filled for ``citizen`` (the parent)."""
    return {
        "parent_name": "测试家长",
        "parent_id_number": citizen.id_number,
        "phone": citizen.phone,
        "child_name": f"测试宝宝{index % 1000}",
        "child_birth_date": (dt.date.today() - dt.timedelta(days=3)).isoformat(),
        "hospital": "市妇幼保健院",
        "relationship": "子" if index % 2 else "女",
    }


async def _submit_all(ctx: BenchContext, citizens: Sequence[Citizen], rate: float, report: BundleReport) -> list[str]:
    """Start one bundle per citizen, open loop at ``rate`` per second; the ids started."""
    ids: list[str] = []

    async def one(http: httpx.AsyncClient, index: int, citizen: Citizen) -> None:
        headers = {"Authorization": f"Bearer {citizen.access_token}", "Idempotency-Key": f"bench-bundle-{index}"}
        try:
            response = await http.post(
                "/v1/me/bundles/newborn", json={"form": newborn_form(citizen, index)}, headers=headers
            )
        except httpx.HTTPError:
            report.refused[0] = report.refused.get(0, 0) + 1
            return
        if response.status_code == 201:
            ids.append(response.json()["id"])
        else:
            report.refused[response.status_code] = report.refused.get(response.status_code, 0) + 1

    async with ctx.http(connections=64) as http:
        loop = asyncio.get_running_loop()
        start = loop.time()
        tasks = []
        for index, citizen in enumerate(citizens):
            delay = start + index / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(http, index, citizen)))
        await asyncio.gather(*tasks)
    report.started = len(ids)
    return ids


async def _wait_settled(ctx: BenchContext, ids: Sequence[str], report: BundleReport, timeout_s: float) -> None:
    """Poll the bundles' rows until none is ``running`` or ``timeout_s`` has passed."""
    deadline = time.monotonic() + timeout_s
    conn = await ctx.connect()
    try:
        while True:
            rows = await conn.fetch(
                "SELECT status, created_at, updated_at FROM hall_bundles WHERE id = ANY($1::uuid[])", list(ids)
            )
            running = sum(1 for r in rows if r["status"] == "running")
            if running == 0 or time.monotonic() > deadline:
                break
            await asyncio.sleep(1.0)
        report.completed_s = [
            (r["updated_at"] - r["created_at"]).total_seconds() for r in rows if r["status"] == "completed"
        ]
        report.needs_attention = sum(1 for r in rows if r["status"] == "needs_attention")
        report.unfinished = running
        numbers = [
            r["number"]
            for r in await conn.fetch(
                "SELECT number FROM hall_applications WHERE bundle_id = ANY($1::uuid[])", list(ids)
            )
        ]
    finally:
        await conn.close()
    cases: Counter[str] = Counter()
    async with httpx.AsyncClient(timeout=10) as http:
        for department in _STEP_DEPARTMENTS:
            response = await http.get(ctx.departments[department] + "/_sim/stats")
            response.raise_for_status()
            cases.update({k: int(v) for k, v in response.json().get("cases", {}).items()})
    report.step_cases = {number: cases.get(number, 0) for number in numbers}


async def _drill(
    ctx: BenchContext, citizens: Sequence[Citizen], *, rate: float, timeout_s: float, report: BundleReport
) -> BundleReport:
    ids = await _submit_all(ctx, citizens, rate, report)
    await _wait_settled(ctx, ids, report, timeout_s)
    return report


async def prepare_bundle_drill(ctx: BenchContext, count: int, *, warm_timeout_s: float = 120.0) -> list[Citizen]:
    """The drill's parents (one citizen per bundle), after one unmeasured bundle has completed.

    That first bundle registers the departments' event clients' tokens and makes each case
    department fetch the BFF's service-token keys (a case arriving during the fetch is refused
    once and retried after the backoff): the measured bundles meet a warm system.

    Raises:
        RuntimeError: When the warm-up bundle did not complete within ``warm_timeout_s``.
    """
    await ensure_department_clients(ctx)
    citizens = await create_citizens(ctx, count + 1, pool=12)
    warm = BundleReport(1, 1.0)
    ids = await _submit_all(ctx, citizens[-1:], 1.0, warm)
    await _wait_settled(ctx, ids, warm, warm_timeout_s)
    if len(warm.completed_s) != 1:
        raise RuntimeError(
            f"the warm-up bundle did not complete in {warm_timeout_s:.0f} s "
            f"(refused {warm.refused}, needs attention {warm.needs_attention}, running {warm.unfinished})"
        )
    return citizens[:-1]


def run_bundle_drill(
    ctx: BenchContext, citizens: Sequence[Citizen], *, rate: float, timeout_s: float, report: BundleReport
) -> BundleReport:
    """Start a bundle per citizen at ``rate`` per second, wait up to ``timeout_s`` after the last
    submission for every bundle to settle, and fill ``report``."""
    return asyncio.run(_drill(ctx, citizens, rate=rate, timeout_s=timeout_s, report=report))


def render_bundles(report: BundleReport) -> str:
    """The drill as Markdown (printed; RESULTS.md is edited by hand)."""
    refused = ", ".join(f"{status or 'no answer'}: {n}" for status, n in sorted(report.refused.items())) or "none"
    lines = [
        f"## Bundle completion: {report.requested} `newborn` bundles at {report.rate:g}/s",
        "",
        f"Topology: {report.topology}." + (f" Background load: {report.background}." if report.background else ""),
        "",
        "| started | completed | needs attention | still running | p50 s | p95 s | max s |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| {report.started} | {len(report.completed_s)} | {report.needs_attention} | {report.unfinished} "
        f"| {report.percentile(0.5):.1f} | {report.percentile(0.95):.1f} | {report.percentile(1.0):.1f} |",
        "",
        f"- time from submission to `completed`, written by the server (`hall_bundles.created_at` → "
        f"`updated_at`); the simulators' own pace (2 s a step) makes {BUNDLE_FLOOR_S:.0f} s the floor",
        f"- submissions refused: {refused}",
        f"- step applications: {len(report.step_cases)}; cases the departments opened for them: "
        f"{sum(report.step_cases.values())}; steps with more than one case: {report.duplicate_cases}",
    ]
    return "\n".join(lines)
