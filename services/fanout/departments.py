"""Resilient department clients: the same Protocols as :mod:`services.departments`, guarded.

Each class wraps a plain client (normally the HTTP one) and offers two faces:

- the department's Protocol (``tests(id_number, purpose=...)`` ...), a drop-in for
  :class:`services.departments.Departments`: it returns the answer when there is a fresh-enough
  one and raises :class:`~services.errors.DepartmentError` otherwise, so callers that must not
  act on old data (the health code) are never handed any;
- ``read_*`` methods returning a :class:`~services.fanout.guard.Fetched` with state, ``as_of``
  and (when allowed) a stale value, for the screens.

Failure policy, per department (also in ``docs/fanout.md``):

- health: screens fail open to stale data up to a day old, marked ``stale`` with ``as_of``;
  the Protocol face fails closed (no answer beyond the revalidation window).
- transport and socsec: the same, with the TTLs of :data:`~services.fanout.settings.DEFAULT_TTLS`.
"""

from __future__ import annotations

import datetime as dt

from services.departments import (
    Contributions,
    HealthDepartment,
    HealthRisk,
    HealthTests,
    SocsecCard,
    SocsecDepartment,
    TransportCard,
    TransportDepartment,
    Trips,
    Vaccinations,
)
from services.fanout.guard import Fetched, GuardedDepartment, Prefetched
from services.resilience import Deadline

__all__ = ["ResilientHealthDepartment", "ResilientSocsecDepartment", "ResilientTransportDepartment"]


class ResilientHealthDepartment:
    """:class:`~services.departments.HealthDepartment` with deadline, breaker, retries, cache, audit.

    Failure policy: fail open to stale data on screens (a test result with its date is still
    useful, and the screen says it is old); fail closed on the Protocol face, whose caller (the
    health code) must decide on current data or say it cannot.

    Args:
        inner: The plain client.
        guard: This department's resilient read path.
    """

    __slots__ = ("guard", "inner")

    def __init__(self, inner: HealthDepartment, guard: GuardedDepartment) -> None:
        self.inner = inner
        self.guard = guard

    async def tests(self, id_number: str, *, purpose: str) -> HealthTests:
        """The citizen's test results (fresh enough, or :class:`DepartmentError`)."""
        return (await self.read_tests(id_number, purpose=purpose, allow_stale=False)).unwrap()

    async def vaccinations(self, id_number: str, *, purpose: str) -> Vaccinations:
        """The citizen's vaccine doses (fresh enough, or :class:`DepartmentError`)."""
        return (await self.read_vaccinations(id_number, purpose=purpose, allow_stale=False)).unwrap()

    async def risk(self, id_number: str, *, purpose: str) -> HealthRisk:
        """The citizen's risk status (fresh enough, or :class:`DepartmentError`)."""
        return (await self.read_risk(id_number, purpose=purpose, allow_stale=False)).unwrap()

    async def read_tests(
        self,
        id_number: str,
        *,
        purpose: str,
        account_id: str | None = None,
        deadline: Deadline | None = None,
        allow_stale: bool = True,
        prefetched: Prefetched | None = None,
    ) -> Fetched[HealthTests]:
        """Test results, as a :class:`Fetched`."""
        return await self.guard.read(
            "tests",
            HealthTests,
            lambda: self.inner.tests(id_number, purpose=purpose),
            id_number=id_number,
            purpose=purpose,
            account_id=account_id,
            deadline=deadline,
            allow_stale=allow_stale,
            prefetched=prefetched,
        )

    async def read_vaccinations(
        self,
        id_number: str,
        *,
        purpose: str,
        account_id: str | None = None,
        deadline: Deadline | None = None,
        allow_stale: bool = True,
        prefetched: Prefetched | None = None,
    ) -> Fetched[Vaccinations]:
        """Vaccine doses, as a :class:`Fetched`."""
        return await self.guard.read(
            "vaccinations",
            Vaccinations,
            lambda: self.inner.vaccinations(id_number, purpose=purpose),
            id_number=id_number,
            purpose=purpose,
            account_id=account_id,
            deadline=deadline,
            allow_stale=allow_stale,
            prefetched=prefetched,
        )

    async def read_risk(
        self,
        id_number: str,
        *,
        purpose: str,
        account_id: str | None = None,
        deadline: Deadline | None = None,
        allow_stale: bool = True,
        prefetched: Prefetched | None = None,
    ) -> Fetched[HealthRisk]:
        """Risk status, as a :class:`Fetched`."""
        return await self.guard.read(
            "risk",
            HealthRisk,
            lambda: self.inner.risk(id_number, purpose=purpose),
            id_number=id_number,
            purpose=purpose,
            account_id=account_id,
            deadline=deadline,
            allow_stale=allow_stale,
            prefetched=prefetched,
        )


class ResilientTransportDepartment:
    """:class:`~services.departments.TransportDepartment`, guarded.

    Failure policy: fail open to stale data on screens (the card and balance with their
    ``as_of``: the app says "balance as of ..."); fail closed on the Protocol face. Trips have
    a breaker of their own (a history query that can fail while card look-ups work).

    Args:
        inner: The plain client.
        guard: This department's resilient read path.
    """

    __slots__ = ("guard", "inner")

    def __init__(self, inner: TransportDepartment, guard: GuardedDepartment) -> None:
        self.inner = inner
        self.guard = guard

    async def card(self, id_number: str, *, purpose: str) -> TransportCard:
        """The citizen's transit card (fresh enough, or :class:`DepartmentError`)."""
        return (await self.read_card(id_number, purpose=purpose, allow_stale=False)).unwrap()

    async def trips(self, id_number: str, since: dt.datetime, *, purpose: str) -> Trips:
        """Rides since ``since`` (fresh enough, or :class:`DepartmentError`).

        Cached per exact ``since``: callers that want cache hits round it (the screens use
        midnight UTC).
        """
        return (await self.read_trips(id_number, since, purpose=purpose, allow_stale=False)).unwrap()

    async def read_card(
        self,
        id_number: str,
        *,
        purpose: str,
        account_id: str | None = None,
        deadline: Deadline | None = None,
        allow_stale: bool = True,
        prefetched: Prefetched | None = None,
    ) -> Fetched[TransportCard]:
        """The transit card, as a :class:`Fetched`."""
        return await self.guard.read(
            "card",
            TransportCard,
            lambda: self.inner.card(id_number, purpose=purpose),
            id_number=id_number,
            purpose=purpose,
            account_id=account_id,
            deadline=deadline,
            allow_stale=allow_stale,
            prefetched=prefetched,
        )

    async def read_trips(
        self,
        id_number: str,
        since: dt.datetime,
        *,
        purpose: str,
        account_id: str | None = None,
        deadline: Deadline | None = None,
        allow_stale: bool = True,
        prefetched: Prefetched | None = None,
    ) -> Fetched[Trips]:
        """Rides since ``since``, as a :class:`Fetched`."""
        if since.tzinfo is None:
            raise ValueError("since must be timezone-aware")
        stamp = since.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        return await self.guard.read(
            "trips",
            Trips,
            lambda: self.inner.trips(id_number, since, purpose=purpose),
            id_number=id_number,
            purpose=purpose,
            params=f"since={stamp}",
            account_id=account_id,
            deadline=deadline,
            allow_stale=allow_stale,
            prefetched=prefetched,
        )


class ResilientSocsecDepartment:
    """:class:`~services.departments.SocsecDepartment`, guarded.

    Failure policy: fail open to stale data on screens (card status and contributions change
    rarely; a week-old card is shown marked stale); fail closed on the Protocol face.
    Contributions have a breaker of their own.

    Args:
        inner: The plain client.
        guard: This department's resilient read path.
    """

    __slots__ = ("guard", "inner")

    def __init__(self, inner: SocsecDepartment, guard: GuardedDepartment) -> None:
        self.inner = inner
        self.guard = guard

    async def card(self, id_number: str, *, purpose: str) -> SocsecCard:
        """The citizen's social-security card (fresh enough, or :class:`DepartmentError`)."""
        return (await self.read_card(id_number, purpose=purpose, allow_stale=False)).unwrap()

    async def contributions(self, id_number: str, year: int, *, purpose: str) -> Contributions:
        """Monthly contributions in ``year`` (fresh enough, or :class:`DepartmentError`)."""
        return (await self.read_contributions(id_number, year, purpose=purpose, allow_stale=False)).unwrap()

    async def read_card(
        self,
        id_number: str,
        *,
        purpose: str,
        account_id: str | None = None,
        deadline: Deadline | None = None,
        allow_stale: bool = True,
        prefetched: Prefetched | None = None,
    ) -> Fetched[SocsecCard]:
        """The social-security card, as a :class:`Fetched`."""
        return await self.guard.read(
            "card",
            SocsecCard,
            lambda: self.inner.card(id_number, purpose=purpose),
            id_number=id_number,
            purpose=purpose,
            account_id=account_id,
            deadline=deadline,
            allow_stale=allow_stale,
            prefetched=prefetched,
        )

    async def read_contributions(
        self,
        id_number: str,
        year: int,
        *,
        purpose: str,
        account_id: str | None = None,
        deadline: Deadline | None = None,
        allow_stale: bool = True,
        prefetched: Prefetched | None = None,
    ) -> Fetched[Contributions]:
        """Contributions in ``year``, as a :class:`Fetched`."""
        return await self.guard.read(
            "contributions",
            Contributions,
            lambda: self.inner.contributions(id_number, year, purpose=purpose),
            id_number=id_number,
            purpose=purpose,
            params=f"year={year}",
            account_id=account_id,
            deadline=deadline,
            allow_stale=allow_stale,
            prefetched=prefetched,
        )
