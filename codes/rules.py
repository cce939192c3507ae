"""Health status rules as versioned data, and their evaluation.

The rules that turn a citizen's health data into ``G`` / ``Y`` / ``R`` change with policy, so
they are a JSON document (a :class:`RuleSet`) that an administrator publishes as a new version,
not code. Evaluation is a pure function of the rule set, the facts and the time: every rule
whose condition holds contributes its status and reason, the worst status wins (R > Y > G), and
an active staff override has the last word. The version that decided a code travels in its
``rv`` claim so a disputed status can be traced to the exact rules.

Document format and semantics: ``docs/health-rules.md``. This module is pure (no database):
storing, publishing and loading the active version is :mod:`codes.rule_versions`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal, TypeAlias

import msgspec

from core.structs import FrozenStruct, Slug

__all__ = [
    "DEFAULT_RULESET",
    "MAX_RULE_VERSION",
    "STAFF_OVERRIDE_REASON",
    "AllOf",
    "AnyOf",
    "CloseContact",
    "Condition",
    "Decision",
    "HealthFacts",
    "HealthRiskRecord",
    "HealthStatus",
    "HealthTestRecord",
    "NoNegativeTestWithin",
    "PositiveTestWithin",
    "QuarantineActive",
    "RiskAreaVisitRecord",
    "RiskAreaVisitWithin",
    "Rule",
    "RuleSet",
    "RuleSetError",
    "StatusOverride",
    "VaccinationDoseRecord",
    "VaccinationDosesBelow",
    "VaccinationsRecord",
    "condition_holds",
    "encode_ruleset",
    "evaluate",
    "facts_from_department",
    "validate_ruleset",
]

HealthStatus: TypeAlias = Literal["G", "Y", "R"]

#: Reason added to a decision when a staff override set the status.
STAFF_OVERRIDE_REASON = "staff_override"
_SEVERITY: Mapping[str, int] = {"G": 0, "Y": 1, "R": 2}
_MAX_NESTING = 4  # all_of/any_of depth; deeper documents are almost surely a mistake

Days = Annotated[int, msgspec.Meta(ge=1, le=366, description="Length of a look-back window in days")]


# --- conditions: a tagged union on "kind" -------------------------------------------------


class _Condition(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True, tag_field="kind"):
    """Base of every condition; ``kind`` names the concrete type in JSON."""


class PositiveTestWithin(_Condition, frozen=True, tag="positive_test_within"):
    """A positive test was sampled within the last ``days`` days."""

    days: Days


class NoNegativeTestWithin(_Condition, frozen=True, tag="no_negative_test_within"):
    """No negative test was sampled within the last ``days`` days (pending tests do not count)."""

    days: Days


class QuarantineActive(_Condition, frozen=True, tag="quarantine_active"):
    """A quarantine is ordered and has not ended yet."""


class CloseContact(_Condition, frozen=True, tag="close_contact"):
    """The department flags the citizen as a close contact."""


class RiskAreaVisitWithin(_Condition, frozen=True, tag="risk_area_visit_within"):
    """A stay in a designated risk area within the last ``days`` days."""

    days: Days


class VaccinationDosesBelow(_Condition, frozen=True, tag="vaccination_doses_below"):
    """Fewer than ``count`` vaccine doses are recorded."""

    count: Annotated[int, msgspec.Meta(ge=1, le=10)]


class AllOf(_Condition, frozen=True, tag="all_of"):
    """Every nested condition holds."""

    conditions: Annotated[tuple[Condition, ...], msgspec.Meta(min_length=1, max_length=16)]


class AnyOf(_Condition, frozen=True, tag="any_of"):
    """At least one nested condition holds."""

    conditions: Annotated[tuple[Condition, ...], msgspec.Meta(min_length=1, max_length=16)]


Condition: TypeAlias = (
    PositiveTestWithin
    | NoNegativeTestWithin
    | QuarantineActive
    | CloseContact
    | RiskAreaVisitWithin
    | VaccinationDosesBelow
    | AllOf
    | AnyOf
)


class Rule(FrozenStruct, frozen=True, forbid_unknown_fields=True):
    """One rule: when ``when`` holds, the status is at least ``status`` because of ``reason``."""

    id: Slug
    status: Literal["R", "Y"]
    reason: Slug
    when: Condition


#: Highest rule version a health code's ``rv`` can carry within the payload budget.
MAX_RULE_VERSION = 99


class RuleSet(FrozenStruct, frozen=True, forbid_unknown_fields=True):
    """A published version of the health rules.

    Attributes:
        version: Monotonic version number, carried in the ``rv`` claim of health codes.
        rules: The rules, in the order their reasons are listed.
        description: Free text for the humans who publish and audit it.
    """

    # The code's ``rv`` claim carries it, and a health code must fit the 320-character payload
    # (codes.payload): with the default two-letter ``iss``, versions up to 99 fit. A higher one
    # would make every health code unissuable, so publishing it is refused here.
    version: Annotated[int, msgspec.Meta(ge=1, le=MAX_RULE_VERSION)]
    rules: Annotated[tuple[Rule, ...], msgspec.Meta(min_length=1, max_length=64)]
    description: Annotated[str, msgspec.Meta(max_length=1000)] = ""


class RuleSetError(ValueError):
    """A rule document is not a valid :class:`RuleSet`; the message says where and why."""


#: Version 1: red for a recent positive test or an active quarantine; yellow without a recent
#: negative test, after a risk-area visit, or for a close contact; green otherwise.
DEFAULT_RULESET = RuleSet(
    version=1,
    description="Default rules: R for a positive test within 14 days or an active quarantine; "
    "Y for no negative test within 7 days, a risk-area visit within 14 days, or close contact.",
    rules=(
        Rule(id="positive-test", status="R", reason="positive_test", when=PositiveTestWithin(days=14)),
        Rule(id="quarantine", status="R", reason="quarantine", when=QuarantineActive()),
        Rule(id="no-recent-test", status="Y", reason="no_recent_negative_test", when=NoNegativeTestWithin(days=7)),
        Rule(id="risk-area", status="Y", reason="risk_area_visit", when=RiskAreaVisitWithin(days=14)),
        Rule(id="close-contact", status="Y", reason="close_contact", when=CloseContact()),
    ),
)


def _depth(condition: Condition) -> int:
    if isinstance(condition, AllOf | AnyOf):
        return 1 + max(_depth(c) for c in condition.conditions)
    return 0


def validate_ruleset(doc: bytes | str | Mapping[str, Any] | RuleSet) -> RuleSet:
    """Parse and check a rule document.

    Args:
        doc: JSON text or bytes, an already-parsed JSON object, or a :class:`RuleSet`.

    Returns:
        The validated rule set.

    Raises:
        RuleSetError: on bad JSON, a wrong shape (unknown field or condition kind, bad type or
            range: the message carries the JSON path, e.g. ``$.rules[0].when.days``), duplicate
            rule ids, or conditions nested deeper than 4 levels.
    """
    try:
        if isinstance(doc, RuleSet):
            ruleset = msgspec.convert(msgspec.to_builtins(doc), RuleSet)  # re-check constraints
        elif isinstance(doc, bytes | str):
            ruleset = msgspec.json.decode(doc, type=RuleSet)
        else:
            ruleset = msgspec.convert(doc, RuleSet)
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError too
        raise RuleSetError(f"invalid health rule set: {exc}") from None
    seen: set[str] = set()
    for index, rule in enumerate(ruleset.rules):
        if rule.id in seen:
            raise RuleSetError(f"invalid health rule set: duplicate rule id {rule.id!r} - at `$.rules[{index}].id`")
        seen.add(rule.id)
        if _depth(rule.when) > _MAX_NESTING:
            raise RuleSetError(
                f"invalid health rule set: conditions nested deeper than {_MAX_NESTING} - at `$.rules[{index}].when`"
            )
    return ruleset


def encode_ruleset(ruleset: RuleSet) -> bytes:
    """The JSON document of ``ruleset``, as stored and published."""
    return msgspec.json.encode(ruleset)


# --- facts ----------------------------------------------------------------------------------


class HealthTestRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of the health department's ``GET /v1/me/tests``."""

    id: str
    sampled_at: dt.datetime
    kind: str
    result: Literal["negative", "positive", "pending"]
    lab: str


class VaccinationDoseRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of ``GET /v1/me/vaccinations``."""

    date: dt.date
    vaccine: str
    dose: int


class VaccinationsRecord(msgspec.Struct, frozen=True, kw_only=True):
    """``GET /v1/me/vaccinations``."""

    doses: list[VaccinationDoseRecord]


class RiskAreaVisitRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of ``risk_area_visits`` in ``GET /v1/me/risk``."""

    area: str
    at: dt.datetime


class HealthRiskRecord(msgspec.Struct, frozen=True, kw_only=True):
    """``GET /v1/me/risk``."""

    close_contact: bool
    quarantine_until: dt.datetime | None
    risk_area_visits: list[RiskAreaVisitRecord]


class HealthFacts(FrozenStruct, frozen=True):
    """What the rules look at, reduced from the department's answers.

    Times are timezone-aware UTC. Only times are kept (no lab names, no areas): the rules need
    no more, and a decision stored for audit should carry no more health data than it used.
    """

    as_of: dt.datetime
    positive_tests: tuple[dt.datetime, ...] = ()
    negative_tests: tuple[dt.datetime, ...] = ()
    vaccination_doses: int = 0
    close_contact: bool = False
    quarantine_until: dt.datetime | None = None
    risk_area_visits: tuple[dt.datetime, ...] = ()


def _utc(moment: dt.datetime) -> dt.datetime:
    # The contract says RFC 3339 UTC; a naive value is read as UTC rather than local time.
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def _field(source: Any, name: str) -> Any:
    if isinstance(source, Mapping):
        return source.get(name)
    return getattr(source, name, None)


def facts_from_department(tests: Any, vaccinations: Any, risk: Any, now: dt.datetime) -> HealthFacts:
    """Reduce the health department's three answers to :class:`HealthFacts`.

    Each argument may be the decoded JSON (dicts, strings for times) or any Struct/object with
    the same attributes, such as the department client's Structs.

    Args:
        tests: ``{"tests": [...]}`` or the list of tests itself.
        vaccinations: ``{"doses": [...]}`` or the list of doses itself.
        risk: ``{"close_contact", "quarantine_until", "risk_area_visits"}``.
        now: When the data was fetched (``as_of``).

    Raises:
        msgspec.ValidationError: (a ``ValueError``) if the data does not have the contract's shape.
    """
    test_items = _field(tests, "tests") if _field(tests, "tests") is not None else tests
    dose_items = _field(vaccinations, "doses") if _field(vaccinations, "doses") is not None else vaccinations
    records = msgspec.convert(list(test_items), list[HealthTestRecord], from_attributes=True)
    doses = msgspec.convert(list(dose_items), list[VaccinationDoseRecord], from_attributes=True)
    risk_record = msgspec.convert(risk, HealthRiskRecord, from_attributes=True)

    def times(result: str) -> tuple[dt.datetime, ...]:
        return tuple(sorted((_utc(t.sampled_at) for t in records if t.result == result), reverse=True))

    return HealthFacts(
        as_of=_utc(now),
        positive_tests=times("positive"),
        negative_tests=times("negative"),
        # Count distinct dose numbers: a department listing a dose twice must not add a dose.
        vaccination_doses=len({d.dose for d in doses}),
        close_contact=risk_record.close_contact,
        quarantine_until=None if risk_record.quarantine_until is None else _utc(risk_record.quarantine_until),
        risk_area_visits=tuple(sorted((_utc(v.at) for v in risk_record.risk_area_visits), reverse=True)),
    )


# --- evaluation -------------------------------------------------------------------------------


class StatusOverride(FrozenStruct, frozen=True):
    """A staff decision that replaces the computed status until ``until``.

    Attributes:
        status: The status to show.
        reason: The staff member's free-text reason (audited; not shown to partners).
        until: When the override lapses and the rules decide again.
    """

    status: HealthStatus
    reason: str
    until: dt.datetime

    def is_active(self, now: dt.datetime) -> bool:
        """True while ``now`` is before ``until``."""
        return _utc(now) < _utc(self.until)


class Decision(FrozenStruct, frozen=True):
    """The outcome of :func:`evaluate`.

    Attributes:
        status: ``G``, ``Y`` or ``R``.
        rule_version: The :attr:`RuleSet.version` used (the code's ``rv``).
        reasons: Reasons of every rule that matched, in rule order, then ``staff_override``
            if an override decided the status.
        overridden: True if an active staff override set the status.
    """

    status: HealthStatus
    rule_version: int
    reasons: tuple[str, ...] = ()
    overridden: bool = False


def _within(times: Iterable[dt.datetime], days: int, now: dt.datetime) -> bool:
    # Records dated after `now` (a department clock ahead of ours) count as recent.
    start = now - dt.timedelta(days=days)
    return any(t >= start for t in times)


def condition_holds(condition: Condition, facts: HealthFacts, now: dt.datetime) -> bool:
    """Whether ``condition`` is true for ``facts`` at ``now``."""
    moment = _utc(now)
    match condition:
        case PositiveTestWithin(days=days):
            return _within(facts.positive_tests, days, moment)
        case NoNegativeTestWithin(days=days):
            return not _within(facts.negative_tests, days, moment)
        case QuarantineActive():
            return facts.quarantine_until is not None and facts.quarantine_until > moment
        case CloseContact():
            return facts.close_contact
        case RiskAreaVisitWithin(days=days):
            return _within(facts.risk_area_visits, days, moment)
        case VaccinationDosesBelow(count=count):
            return facts.vaccination_doses < count
        case AllOf(conditions=conditions):
            return all(condition_holds(c, facts, moment) for c in conditions)
        case AnyOf(conditions=conditions):
            return any(condition_holds(c, facts, moment) for c in conditions)
    raise TypeError(f"unknown condition {condition!r}")  # pragma: no cover - the union is closed


def evaluate(
    ruleset: RuleSet,
    facts: HealthFacts,
    *,
    override: StatusOverride | None = None,
    now: dt.datetime | None = None,
) -> Decision:
    """Decide a citizen's health status.

    Every rule whose condition holds contributes its status and reason; the worst status wins
    (R > Y > G) and all matching reasons are listed, deduplicated, in rule order. An override
    that is still active replaces the status (even with a milder one: staff may clear a false
    positive) and adds ``staff_override``; an expired override is ignored.

    Args:
        ruleset: The rules to apply.
        facts: From :func:`facts_from_department`.
        override: The citizen's staff override, if any.
        now: The moment of decision; the system clock if omitted.
    """
    moment = dt.datetime.now(dt.UTC) if now is None else _utc(now)
    status: HealthStatus = "G"
    reasons: list[str] = []
    for rule in ruleset.rules:
        if condition_holds(rule.when, facts, moment):
            if _SEVERITY[rule.status] > _SEVERITY[status]:
                status = rule.status
            if rule.reason not in reasons:
                reasons.append(rule.reason)
    overridden = override is not None and override.is_active(moment)
    if override is not None and overridden:
        status = override.status
        reasons.append(STAFF_OVERRIDE_REASON)
    return Decision(status=status, rule_version=ruleset.version, reasons=tuple(reasons), overridden=overridden)
