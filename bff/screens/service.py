"""The screens service: the home screen and the single-department screens, over the fan-out.

One deadline per screen (``fanout.deadline_ms``) covers the ID-number look-up, every department
read and the codes summary; the reads run in parallel and each section answers with what it
has by then. A department's trouble never becomes an error of the screen: every screen here
answers 200 with a section whose ``state`` says ``stale`` or ``unavailable`` (documented in
``docs/fanout.md``). The only errors are the citizen's own: not logged in (401), identity level
too low for a single-department screen (401 step-up, RFC 9470), bad query (400).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Collection, Coroutine, Sequence
from typing import Any, TypeVar

from bff.screens.ledger import ClientNames, ledger_query, merge_page, parse_kinds
from bff.screens.repository import DataAccessRepository
from bff.screens.schemas import (
    CodesState,
    ContributionsData,
    ContributionsSection,
    DataAccessPage,
    HealthRecordsData,
    HealthRecordsSection,
    HealthSummary,
    HomeHealthSection,
    HomeScreen,
    HomeSections,
    HomeSocsecSection,
    HomeTransportSection,
    Section,
    SectionState,
    SocsecCardData,
    SocsecCardSection,
    SocsecSummary,
    TransportCardData,
    TransportCardSection,
    TransportSummary,
    TripsData,
    TripsSection,
)
from codes.status import SharedRead, SharedReads
from core.errors import InsufficientLevel
from identity import IdentityService, Principal
from services.errors import department_error
from services.fanout import Fetched, KeyedHasher, Prefetched, ResilientDepartments, audit_subject_of
from services.resilience import Deadline, deadline_scope

__all__ = ["CodesSummary", "ScreenService", "mask_card_no"]

log = logging.getLogger("onecity.screens")

S = TypeVar("S", bound=Section[Any])
V = TypeVar("V")

CodesSummary = Callable[[Principal, SharedReads | None], Awaitable[list[Any]]]
"""Gives the home screen's ``codes``: the code types this citizen can show, decided from the
screen's own department reads where it has them (:class:`codes.status.SharedReads`)."""

HOME_PURPOSE = "home-screen"
_HOME_RESOURCES = (("health", "tests"), ("health", "risk"), ("transport", "card"), ("socsec", "card"))

_RANK: dict[SectionState, int] = {"ok": 0, "stale": 1, "unavailable": 2}


async def _no_client_names(_: Collection[str]) -> dict[str, str]:
    return {}


async def _no_codes(_: Principal, __: SharedReads | None = None) -> list[Any]:
    return []


def _pending_shared(started: asyncio.Future[_HomeReads], eligible: dict[str, bool]) -> SharedReads:
    """The screen's reads as the codes summary sees them, before they have started.

    A department the citizen's level keeps the screen from reading is left to the summary;
    one the screen reads answers with that read's fresh value or its error (no ID number on
    file: ``rejected``, as the summary's own read would be).
    """

    def shared(department: str, pick: Callable[[_HomeReads], asyncio.Task[Fetched[V]] | None]) -> SharedRead[V] | None:
        if not eligible[department]:
            return None

        async def read() -> V:
            # Shielded: the summary may be cut off at the deadline; the sections still need these.
            task = pick(await asyncio.shield(started))
            if task is None:
                raise department_error(department, "rejected")
            return (await asyncio.shield(task)).unwrap()

        return read

    return SharedReads(
        purpose=HOME_PURPOSE,
        health_tests=shared("health", lambda reads: reads.tests),
        health_risk=shared("health", lambda reads: reads.risk),
        transport_card=shared("transport", lambda reads: reads.transport_card),
        socsec_card=shared("socsec", lambda reads: reads.socsec_card),
    )


class _HomeReads:
    """The home screen's department reads, all started at once; ``None`` where locked.

    Their four cache lookups are one ``MGET`` (:meth:`start`), not four round trips.
    """

    __slots__ = ("risk", "socsec_card", "tests", "transport_card")

    def __init__(
        self,
        departments: ResilientDepartments,
        account_id: str,
        id_numbers: dict[str, str | None],
        deadline: Deadline,
        cached: dict[tuple[str, str], Prefetched],
    ) -> None:
        common: dict[str, Any] = {"purpose": HOME_PURPOSE, "account_id": account_id, "deadline": deadline}

        def start(
            read: Callable[..., Coroutine[Any, Any, Fetched[V]]], department: str, resource: str
        ) -> asyncio.Task[Fetched[V]] | None:
            id_number = id_numbers[department]
            if id_number is None:
                return None
            return asyncio.create_task(read(id_number, prefetched=cached.get((department, resource)), **common))

        self.tests = start(departments.health.read_tests, "health", "tests")
        self.risk = start(departments.health.read_risk, "health", "risk")
        self.transport_card = start(departments.transport.read_card, "transport", "card")
        self.socsec_card = start(departments.socsec.read_card, "socsec", "card")

    @classmethod
    async def start(
        cls, departments: ResilientDepartments, account_id: str, id_numbers: dict[str, str | None], deadline: Deadline
    ) -> _HomeReads:
        """Look the four answers up in the cache together, then start the reads."""
        guards = {
            "health": departments.health.guard,
            "transport": departments.transport.guard,
            "socsec": departments.socsec.guard,
        }
        wanted: list[tuple[tuple[str, str], str]] = []
        for department, resource in _HOME_RESOURCES:
            id_number = id_numbers[department]
            key = guards[department].cache_key(resource, id_number) if id_number else None
            if key is not None:
                wanted.append(((department, resource), key))
        # One cache for every department (build_resilient_departments makes one).
        entries = await departments.health.guard.cache.get_many(
            [key for _, key in wanted], timeout_s=deadline.remaining()
        )
        cached = {read: Prefetched(entry) for (read, _), entry in zip(wanted, entries, strict=True)}
        return cls(departments, account_id, id_numbers, deadline, cached)


def mask_card_no(card_no: str) -> str:
    """All but the last four characters hidden: enough to recognise one's own card."""
    visible = 4 if len(card_no) > 6 else 1
    return "*" * (len(card_no) - visible) + card_no[-visible:]


def _value(fetched: Fetched[V]) -> V:
    """The value of a read that is ``ok`` or ``stale`` (only called when the section has data)."""
    if fetched.value is None:
        raise RuntimeError("a section was built from a read without a value")
    return fetched.value


def _combine(section: type[S], parts: Sequence[Fetched[Any]], build: Callable[[], Any]) -> S:
    """One section from several reads: the worst state, the oldest ``as_of``."""
    worst = max((p.state for p in parts), key=_RANK.__getitem__)
    if worst == "unavailable":
        retry = max((p.retry_after_s or 0 for p in parts), default=0) or None
        return section(state="unavailable", retry_after_s=retry)
    stamps = [p.as_of for p in parts if p.as_of is not None]
    return section(state=worst, data=build(), as_of=min(stamps) if stamps else None)


class ScreenService:
    """Builds the screens for one citizen.

    Args:
        departments: The resilient department layer.
        identity: For the ID number of ``L3``+ accounts (it travels only in service tokens).
        repository: The data-access log.
        hasher: Keyed hashing (the audit pseudonym of reads made without an account id).
        codes_summary: The home screen's ``codes``; default none.
        client_names: Partners' display names for the data-access ledger (identity's OIDC
            provider); default none (partners appear by client id only).
    """

    def __init__(
        self,
        *,
        departments: ResilientDepartments,
        identity: IdentityService,
        repository: DataAccessRepository,
        hasher: KeyedHasher,
        codes_summary: CodesSummary | None = None,
        client_names: ClientNames | None = None,
    ) -> None:
        self.departments = departments
        self.identity = identity
        self._repository = repository
        self.hasher = hasher
        self.codes_summary: CodesSummary = codes_summary or _no_codes
        self.client_names: ClientNames = client_names or _no_client_names
        self.settings = departments.settings

    # helpers ----------------------------------------------------------------------------

    def _deadline(self) -> Deadline:
        return Deadline.after(self.settings.deadline_ms / 1000)

    def _level_ok(self, principal: Principal, department: str) -> bool:
        return principal.has_level(self.settings.policy(department).required_level)

    async def _id_number(self, principal: Principal) -> str | None:
        return await self.identity.id_number_of(principal.account_id)

    async def _require(self, principal: Principal, department: str) -> str:
        """The ID number for a single-department screen, or the step-up challenge."""
        principal.require_level(self.settings.policy(department).required_level)
        id_number = await self._id_number(principal)
        if id_number is None:  # L3 by token but no ID number on file: re-verify
            raise InsufficientLevel(self.settings.policy(department).required_level)
        return id_number

    # home -------------------------------------------------------------------------------

    async def home(self, principal: Principal) -> HomeScreen:
        """The home screen: the three departments in parallel, and the codes, by the deadline.

        Each department resource is read once: the codes summary decides the statuses from the
        screen's own reads (:class:`codes.status.SharedReads`) rather than reading again under
        the code's purpose.
        """
        deadline = self._deadline()
        with deadline_scope(deadline):
            eligible = {name: self._level_ok(principal, name) for name in ("health", "transport", "socsec")}
            # The codes summary starts first: its own look-ups (its Redis cache, the holder)
            # overlap the ID-number look-up and the cache MGET, and it waits for the reads only
            # when it needs them.
            started: asyncio.Future[_HomeReads] = asyncio.get_running_loop().create_future()
            codes_task = asyncio.create_task(self._codes(principal, _pending_shared(started, eligible), deadline))
            try:
                id_number = await self._id_number(principal) if any(eligible.values()) else None
                reads = await _HomeReads.start(
                    self.departments,
                    principal.account_id,
                    {name: id_number if ok else None for name, ok in eligible.items()},
                    deadline,
                )
            except BaseException:
                codes_task.cancel()
                raise
            started.set_result(reads)
            health, transport, socsec, (codes, codes_state) = await asyncio.gather(
                self._home_health(reads), self._home_transport(reads), self._home_socsec(reads), codes_task
            )
        return HomeScreen(
            sections=HomeSections(health=health, transport=transport, socsec=socsec),
            codes=codes,
            codes_state=codes_state,
        )

    def _locked(self, section: type[S], department: str) -> S:
        return section(state="unavailable", required_level=self.settings.policy(department).required_level)

    async def _home_health(self, reads: _HomeReads) -> HomeHealthSection:
        if reads.tests is None or reads.risk is None:
            return self._locked(HomeHealthSection, "health")
        tests, risk = await reads.tests, await reads.risk

        def build() -> HealthSummary:
            latest = max(_value(tests).tests, key=lambda t: t.sampled_at, default=None)
            status = _value(risk)
            return HealthSummary(
                latest_test=latest,
                close_contact=status.close_contact,
                quarantine_until=status.quarantine_until,
                risk_area_visits=len(status.risk_area_visits),
            )

        return _combine(HomeHealthSection, [tests, risk], build)

    async def _home_transport(self, reads: _HomeReads) -> HomeTransportSection:
        if reads.transport_card is None:
            return self._locked(HomeTransportSection, "transport")
        card = await reads.transport_card

        def build() -> TransportSummary:
            value = _value(card)
            return TransportSummary(
                card_no_masked=mask_card_no(value.card_no), balance_cents=value.balance_cents, status=value.status
            )

        return _combine(HomeTransportSection, [card], build)

    async def _home_socsec(self, reads: _HomeReads) -> HomeSocsecSection:
        if reads.socsec_card is None:
            return self._locked(HomeSocsecSection, "socsec")
        card = await reads.socsec_card

        def build() -> SocsecSummary:
            value = _value(card)
            return SocsecSummary(
                card_no_masked=mask_card_no(value.card_no),
                status=value.status,
                issued_city=value.issued_city,
                medical_balance_cents=value.medical_balance_cents,
            )

        return _combine(HomeSocsecSection, [card], build)

    async def _codes(
        self, principal: Principal, reads: SharedReads, deadline: Deadline
    ) -> tuple[list[Any], CodesState]:
        # The codes summary is another domain's: bounded by the same deadline, and its failure
        # leaves the list empty rather than failing the screen; ``codes_state`` tells the app
        # which ("no codes" and "late" look alike otherwise).
        try:
            async with asyncio.timeout(deadline.remaining()):
                return await self.codes_summary(principal, reads), "ready"
        except TimeoutError:
            log.warning("codes summary missed the home screen deadline")
            return [], "late"
        except Exception as exc:
            log.error("codes summary failed", extra={"error": exc.__class__.__name__})
            return [], "unavailable"

    # single-department screens ------------------------------------------------------------

    async def health_records(self, principal: Principal) -> HealthRecordsSection:
        """Tests, vaccinations and risk status."""
        deadline = self._deadline()
        with deadline_scope(deadline):
            id_number = await self._require(principal, "health")
            health = self.departments.health
            common: dict[str, Any] = {
                "purpose": "health-records",
                "account_id": principal.account_id,
                "deadline": deadline,
            }
            tests, vaccinations, risk = await asyncio.gather(
                health.read_tests(id_number, **common),
                health.read_vaccinations(id_number, **common),
                health.read_risk(id_number, **common),
            )

        def build() -> HealthRecordsData:
            return HealthRecordsData(
                tests=_value(tests).tests, vaccinations=_value(vaccinations).doses, risk=_value(risk)
            )

        return _combine(HealthRecordsSection, [tests, vaccinations, risk], build)

    async def transport_card(self, principal: Principal) -> TransportCardSection:
        """The transit card."""
        deadline = self._deadline()
        with deadline_scope(deadline):
            id_number = await self._require(principal, "transport")
            card = await self.departments.transport.read_card(
                id_number, purpose="transport-card", account_id=principal.account_id, deadline=deadline
            )

        def build() -> TransportCardData:
            value = _value(card)
            return TransportCardData(card_no=value.card_no, balance_cents=value.balance_cents, status=value.status)

        return _combine(TransportCardSection, [card], build)

    async def transport_trips(self, principal: Principal, *, days: int) -> TripsSection:
        """Rides since midnight UTC ``days`` ago (a stable ``since``, so the cache can hit)."""
        today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        since = today - dt.timedelta(days=days)
        deadline = self._deadline()
        with deadline_scope(deadline):
            id_number = await self._require(principal, "transport")
            trips = await self.departments.transport.read_trips(
                id_number, since, purpose="transport-trips", account_id=principal.account_id, deadline=deadline
            )

        def build() -> TripsData:
            return TripsData(since=since, trips=_value(trips).trips)

        return _combine(TripsSection, [trips], build)

    async def socsec_card(self, principal: Principal) -> SocsecCardSection:
        """The social-security card."""
        deadline = self._deadline()
        with deadline_scope(deadline):
            id_number = await self._require(principal, "socsec")
            card = await self.departments.socsec.read_card(
                id_number, purpose="socsec-card", account_id=principal.account_id, deadline=deadline
            )

        def build() -> SocsecCardData:
            value = _value(card)
            return SocsecCardData(
                card_no=value.card_no,
                status=value.status,
                issued_city=value.issued_city,
                medical_balance_cents=value.medical_balance_cents,
            )

        return _combine(SocsecCardSection, [card], build)

    async def socsec_contributions(self, principal: Principal, *, year: int | None) -> ContributionsSection:
        """Monthly contributions of ``year`` (default: this year)."""
        chosen = year or dt.datetime.now(dt.UTC).year
        deadline = self._deadline()
        with deadline_scope(deadline):
            id_number = await self._require(principal, "socsec")
            months = await self.departments.socsec.read_contributions(
                id_number, chosen, purpose="socsec-contributions", account_id=principal.account_id, deadline=deadline
            )

        def build() -> ContributionsData:
            return ContributionsData(year=chosen, months=_value(months).months)

        return _combine(ContributionsSection, [months], build)

    # data access ------------------------------------------------------------------------

    async def data_access(
        self,
        principal: Principal,
        *,
        kind: str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        cursor: str | None,
        limit: int,
    ) -> DataAccessPage:
        """Every access to this citizen's data, newest first (see :mod:`bff.screens.ledger`).

        Raises:
            BadRequest: an unknown kind, a cursor this endpoint did not hand out, a bad window.
        """
        kinds = parse_kinds(kind)
        subjects = [principal.account_id]
        if "department_read" in kinds:
            id_number = await self._id_number(principal)
            if id_number is not None:
                # Reads made through the plain department Protocols carry a pseudonym instead.
                subjects.append(audit_subject_of(self.hasher, id_number))
        query = ledger_query(kinds, since=since, until=until, cursor=cursor)
        audit = (
            await self._repository.audit_page(
                subjects,
                query.actions,
                since=query.since,
                until=query.until,
                before_at=query.before_at,
                before_id=query.before_id,
                limit=limit + 1,
            )
            if query.actions
            else []
        )
        scans = (
            await self._repository.scan_page(
                principal.account_id,
                since=query.since,
                until=query.until,
                before_at=query.before_at,
                before_key=query.before_key,
                limit=limit + 1,
            )
            if query.scans
            else []
        )
        page = merge_page(audit, scans, limit)
        # Partners appear by the name they are registered under (identity's, asked once a page).
        partners = page.partners
        return page.render(await self.client_names(partners) if partners else {})
