"""Unit tests of the codes domain's moving parts: settings, partner cache, scan log grouping,
status decisions and fallbacks (fake departments and storage)."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest

from bff.settings import SettingsError, load_settings
from codes.holders import HolderAccount
from codes.partner_cache import PartnerCache
from codes.payload import CodeType
from codes.repository import StoredOverride, StoredStatus
from codes.rule_versions import RuleBook
from codes.scanlog import ScanLog
from codes.settings import CodesSettings
from codes.status import SharedReads, StatusResolver
from core.audit import AuditEvent
from core.errors import DependencyUnavailable
from identity.partners import PartnerPrincipal
from services.departments.health import HealthRisk, HealthTest, HealthTests, Vaccinations
from services.departments.socsec import SocsecCard
from services.departments.transport import TransportCard
from services.errors import DepartmentError

NOW = dt.datetime.now(dt.UTC)

# --- settings ----------------------------------------------------------------------------------


def test_codes_settings_come_from_the_environment() -> None:
    settings = load_settings({"ONECITY_SCAN_RETENTION_DAYS": "7", "ONECITY_CODES_STATUS_FRESH_S": "3600"})
    assert settings.codes.scan_retention_days == 7
    assert settings.codes.status_fresh_s == 3600
    assert settings.codes.required_level("health") == "L3"
    assert settings.codes.required_level("citizen") == "L2"
    with pytest.raises(SettingsError, match="ONECITY_SCAN_RETENTION_DAYS"):
        load_settings({"ONECITY_SCAN_RETENTION_DAYS": "0"})


# --- partner cache -----------------------------------------------------------------------------


def test_partner_cache_expires_and_separates_scopes(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [100.0]
    monkeypatch.setattr("codes.partner_cache.time.monotonic", lambda: clock[0])
    cache = PartnerCache(ttl_s=5, capacity=2)
    gate = PartnerPrincipal(client_id="gate", scopes=frozenset({"codes:verify"}), jti="j")
    cache.put("codes:verify", "token-a", gate)
    assert cache.get("codes:verify", "token-a") == gate
    assert cache.get("venues:write", "token-a") is None
    clock[0] += 6
    assert cache.get("codes:verify", "token-a") is None
    for token in ("t1", "t2", "t3"):
        cache.put("codes:verify", token, gate)
    assert cache.get("codes:verify", "t1") is None  # least recently used went first
    assert cache.get("codes:verify", "t3") == gate


async def test_partner_cache_checks_a_burst_once_and_never_caches_failures() -> None:
    cache = PartnerCache(ttl_s=5)
    gate = PartnerPrincipal(client_id="gate", scopes=frozenset({"codes:verify"}), jti="j")
    calls = 0

    async def check() -> PartnerPrincipal:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return gate

    results = await asyncio.gather(*(cache.authenticate("codes:verify", "tok", check) for _ in range(50)))
    assert calls == 1 and all(r == gate for r in results)

    async def refuse() -> PartnerPrincipal:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        raise DependencyUnavailable("down")

    outcomes = await asyncio.gather(
        *(cache.authenticate("codes:verify", "bad", refuse) for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(o, DependencyUnavailable) for o in outcomes) and calls == 2
    with pytest.raises(DependencyUnavailable):
        await cache.authenticate("codes:verify", "bad", refuse)
    assert calls == 3


# --- scan log group commit ---------------------------------------------------------------------


class _Repository:
    def __init__(self, *, fail: bool = False, delay: float = 0.01) -> None:
        self.batches: list[list[tuple[Any, ...]]] = []
        self.fail = fail
        self.delay = delay

    async def insert_scans(self, rows: list[tuple[Any, ...]]) -> None:
        await asyncio.sleep(self.delay)
        if self.fail:
            raise OSError("database gone")
        self.batches.append(list(rows))


async def test_scan_log_groups_concurrent_writes() -> None:
    repository = _Repository()
    log = ScanLog(repository, max_batch=50)  # type: ignore[arg-type]
    await asyncio.gather(*(log.write((i,)) for i in range(120)))
    assert sum(len(b) for b in repository.batches) == 120
    assert len(repository.batches) <= 4  # 1 alone, then the rest in batches of at most 50
    assert all(len(b) <= 50 for b in repository.batches)
    assert log.rows == 120 and log.batches == len(repository.batches)
    # A lone write goes at once, in its own batch.
    await log.write(("alone",))
    assert repository.batches[-1] == [("alone",)]


async def test_scan_log_failure_reaches_every_waiter() -> None:
    log = ScanLog(_Repository(fail=True), max_batch=10)  # type: ignore[arg-type]
    results = await asyncio.gather(*(log.write((i,)) for i in range(5)), return_exceptions=True)
    assert all(isinstance(r, DependencyUnavailable) for r in results)


async def test_a_cancelled_waiter_does_not_cancel_its_batch() -> None:
    repository = _Repository(delay=0.05)
    log = ScanLog(repository, max_batch=10)  # type: ignore[arg-type]
    first = asyncio.create_task(log.write(("first",)))
    await asyncio.sleep(0)
    second = asyncio.create_task(log.write(("second",)))
    await asyncio.sleep(0.01)
    second.cancel()
    await first
    await log.close()
    assert [row for batch in repository.batches for row in batch] == [("first",), ("second",)]


# --- status decisions --------------------------------------------------------------------------


class _Health:
    def __init__(self, *, positive: bool = False, fail: bool = False) -> None:
        self.positive, self.fail = positive, fail
        self.calls = 0

    async def tests(self, id_number: str, *, purpose: str) -> HealthTests:
        self.calls += 1
        if self.fail:
            raise DepartmentError("health", "unavailable")
        result = "positive" if self.positive else "negative"
        return HealthTests(
            tests=[HealthTest(id="t", sampled_at=NOW - dt.timedelta(days=1), kind="pcr", result=result, lab="l")]
        )

    async def vaccinations(self, id_number: str, *, purpose: str) -> Vaccinations:
        if self.fail:
            raise DepartmentError("health", "timeout")
        return Vaccinations(doses=[])

    async def risk(self, id_number: str, *, purpose: str) -> HealthRisk:
        if self.fail:
            raise DepartmentError("health", "unavailable")
        return HealthRisk(close_contact=False, quarantine_until=None, risk_area_visits=[])


class _Cards:
    def __init__(self, status: str | None) -> None:
        self.status = status

    async def card(self, id_number: str, *, purpose: str) -> Any:
        if self.status is None:
            raise DepartmentError("transport", "unavailable")
        if self.status in ("active", "blocked"):
            return TransportCard(card_no="1", balance_cents=0, status=self.status)  # type: ignore[arg-type]
        return SocsecCard(card_no="1", status=self.status, issued_city="x", medical_balance_cents=0)  # type: ignore[arg-type]


class _Store:
    """The slice of CodesRepository the resolver and the rule book use."""

    def __init__(self) -> None:
        self.statuses: dict[tuple[str, str], dict[str, Any]] = {}
        self.override: dict[str, Any] | None = None

    async def latest_ruleset(self) -> None:
        return None

    async def get_override(self, account_id: str) -> StoredOverride | None:
        if self.override is None:
            return None
        return StoredOverride(account_id=account_id, set_by="s1", set_at=NOW, **self.override)

    async def last_status(self, account_id: str, code_type: str) -> StoredStatus | None:
        row = self.statuses.get((account_id, code_type))
        return None if row is None else StoredStatus(**row)

    async def save_status(self, **row: Any) -> None:
        self.statuses[(row["account_id"], row["code_type"])] = {
            "status": row["status"],
            "rule_version": row["rule_version"],
            "reasons": list(row["reasons"]),
            "decided_at": row["decided_at"],
        }


HOLDER = HolderAccount(
    account_id="a1", level="L3", masked_name="张*", id_number="110101199003070011", region_code="110101"
)


def _resolver(store: _Store, health: _Health, cards: _Cards | None = None, fresh_s: int = 3600) -> StatusResolver:
    cards = cards or _Cards("active")
    return StatusResolver(
        health=health,
        transport=cards,
        socsec=cards,
        repository=store,  # type: ignore[arg-type]
        rules=RuleBook(store, refresh_s=60),  # type: ignore[arg-type]
        fresh_s=fresh_s,
    )


async def test_health_is_decided_by_the_rules_and_remembered() -> None:
    store = _Store()
    decision = await _resolver(store, _Health(positive=True)).decide(HOLDER, CodeType.HEALTH)
    assert decision.status == "R" and decision.source == "department" and decision.rule_version == 1
    assert "positive_test" in decision.reasons
    assert store.statuses[("a1", "H")]["status"] == "R"


async def test_health_fallbacks() -> None:
    store = _Store()
    down = _Health(fail=True)
    fallback = await _resolver(store, down).decide(HOLDER, CodeType.HEALTH)
    assert (fallback.status, fallback.source, fallback.reasons) == ("Y", "fallback", ("health_data_unavailable",))
    await _resolver(store, _Health()).decide(HOLDER, CodeType.HEALTH)  # G, stored
    last = await _resolver(store, down).decide(HOLDER, CodeType.HEALTH)
    assert (last.status, last.source) == ("G", "last_known")
    store.statuses[("a1", "H")]["decided_at"] = NOW - dt.timedelta(hours=2)
    stale = await _resolver(store, down, fresh_s=3600).decide(HOLDER, CodeType.HEALTH)
    assert stale.status == "Y" and stale.source == "fallback"


async def test_an_active_override_has_the_last_word() -> None:
    store = _Store()
    store.override = {"status": "G", "reason": "false positive", "until": NOW + dt.timedelta(hours=1)}
    decision = await _resolver(store, _Health(positive=True)).decide(HOLDER, CodeType.HEALTH)
    assert decision.status == "G" and decision.overridden and decision.reasons[-1] == "staff_override"
    assert store.statuses[("a1", "H")]["status"] == "R"  # stored without the override
    store.override["until"] = NOW - dt.timedelta(seconds=1)
    assert (await _resolver(store, _Health(positive=True)).decide(HOLDER, CodeType.HEALTH)).status == "R"
    current = await _resolver(store, _Health()).current("a1", CodeType.HEALTH)
    assert current is not None and current.status == "R" and current.source == "last_known"


@pytest.mark.parametrize(
    ("code_type", "card", "status", "reasons"),
    [
        (CodeType.TRANSIT, "active", "A", ()),
        (CodeType.TRANSIT, "blocked", "X", ("card_blocked",)),
        (CodeType.SOCSEC, "active", "A", ()),
        (CodeType.SOCSEC, "suspended", "X", ("card_suspended",)),
    ],
)
async def test_card_statuses(code_type: CodeType, card: str, status: str, reasons: tuple[str, ...]) -> None:
    decision = await _resolver(_Store(), _Health(), _Cards(card)).decide(HOLDER, code_type)
    assert (decision.status, decision.reasons) == (status, reasons)


async def test_cards_without_department_or_memory_are_unavailable() -> None:
    store = _Store()
    with pytest.raises(DependencyUnavailable):
        await _resolver(store, _Health(), _Cards(None)).decide(HOLDER, CodeType.TRANSIT)
    await _resolver(store, _Health(), _Cards("blocked")).decide(HOLDER, CodeType.TRANSIT)
    last = await _resolver(store, _Health(), _Cards(None)).decide(HOLDER, CodeType.TRANSIT)
    assert (last.status, last.source) == ("X", "last_known")


async def test_citizen_codes_are_active_and_need_no_department() -> None:
    health = _Health(fail=True)
    decision = await _resolver(_Store(), health, _Cards(None)).decide(HOLDER, CodeType.CITIZEN)
    assert decision.status == "A" and health.calls == 0


async def test_no_id_number_means_no_department_call() -> None:
    health = _Health()
    holder = HolderAccount(account_id="a2", level="L2", masked_name=None, id_number=None, region_code=None)
    decision = await _resolver(_Store(), health).decide(holder, CodeType.HEALTH)
    assert decision.status == "Y" and health.calls == 0


def test_levels_are_configurable() -> None:
    settings = CodesSettings(citizen_level="L3")
    assert settings.required_level("citizen") == "L3"


class _Events:
    """Takes audit events (the slice of AuditBatcher the resolver uses)."""

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    def add(self, event: AuditEvent) -> None:
        self.events.append(event)


async def _negative_tests() -> HealthTests:
    return HealthTests(
        tests=[HealthTest(id="t", sampled_at=NOW - dt.timedelta(days=1), kind="pcr", result="negative", lab="l")]
    )


async def _no_risk() -> HealthRisk:
    return HealthRisk(close_contact=False, quarantine_until=None, risk_area_visits=[])


async def _blocked_card() -> TransportCard:
    return TransportCard(card_no="1", balance_cents=0, status="blocked")


async def test_shared_reads_decide_instead_of_a_second_read_and_both_purposes_are_recorded() -> None:
    health = _Health(positive=True)  # what a second read would say: the shared reads must win
    events = _Events()
    resolver = StatusResolver(
        health=health,
        transport=_Cards("active"),
        socsec=_Cards("active"),  # type: ignore[arg-type]
        repository=_Store(),  # type: ignore[arg-type]
        rules=RuleBook(_Store(), refresh_s=60),  # type: ignore[arg-type]
        fresh_s=3600,
        audit=events,  # type: ignore[arg-type]
        audit_reads=False,  # the department clients record their own reads
    )
    reads = SharedReads(
        purpose="home-screen", health_tests=_negative_tests, health_risk=_no_risk, transport_card=_blocked_card
    )
    assert (await resolver.decide(HOLDER, CodeType.HEALTH, reads)).status == "G"
    assert health.calls == 0, "tests came from the screen's read"
    assert (await resolver.decide(HOLDER, CodeType.TRANSIT, reads)).reasons == ("card_blocked",)
    assert (await resolver.decide(HOLDER, CodeType.SOCSEC, reads)).status == "A", "not shared: read here"
    recorded = sorted(
        (
            e.action,
            e.subject_id,
            e.details["resource"],
            e.details["purpose"],
            e.details["source"],
            e.details["read_for"],
        )
        for e in events.events
    )
    assert recorded == [
        ("data.read", "a1", "card", "transit_code", "shared", "home-screen"),
        ("data.read", "a1", "risk", "health_code", "shared", "home-screen"),
        ("data.read", "a1", "tests", "health_code", "shared", "home-screen"),
    ]


async def test_a_shared_read_that_failed_falls_back_like_a_department_error() -> None:
    async def failed() -> HealthTests:
        raise DepartmentError("health", "timeout")

    store = _Store()
    reads = SharedReads(purpose="home-screen", health_tests=failed, health_risk=_no_risk)
    decision = await _resolver(store, _Health()).decide(HOLDER, CodeType.HEALTH, reads)
    assert (decision.status, decision.source) == ("Y", "fallback")
