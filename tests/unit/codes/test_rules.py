"""Health rules: the demo citizens, every condition kind, overrides, versions, bad documents."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import msgspec
import pytest

from codes.rules import (
    DEFAULT_RULESET,
    AllOf,
    AnyOf,
    CloseContact,
    Condition,
    HealthFacts,
    NoNegativeTestWithin,
    PositiveTestWithin,
    QuarantineActive,
    RiskAreaVisitWithin,
    Rule,
    RuleSet,
    RuleSetError,
    StatusOverride,
    VaccinationDosesBelow,
    condition_holds,
    encode_ruleset,
    evaluate,
    facts_from_department,
    validate_ruleset,
)

NOW = dt.datetime(2026, 1, 15, 8, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
NO_RISK: dict[str, Any] = {"close_contact": False, "quarantine_until": None, "risk_area_visits": []}
THREE_DOSES: dict[str, Any] = {
    "doses": [
        {"date": "2021-03-01", "vaccine": "CoronaVac", "dose": 1},
        {"date": "2021-03-29", "vaccine": "CoronaVac", "dose": 2},
        {"date": "2021-10-01", "vaccine": "CoronaVac", "dose": 3},
    ]
}


def _iso(moment: dt.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _test(ago: dt.timedelta, result: str, index: int = 0) -> dict[str, Any]:
    return {"id": f"NAT{index}", "sampled_at": _iso(NOW - ago), "kind": "pcr", "result": result, "lab": "City Lab"}


def _facts(**overrides: Any) -> HealthFacts:
    return HealthFacts(as_of=NOW, **overrides)


# --- the demo citizens (DESIGN.md "Demo data"), as JSON from the department ---------------


def test_demo_zhang_san_is_green() -> None:
    tests = {"tests": [_test(DAY, "negative"), _test(8 * DAY, "negative", 1)]}
    decision = evaluate(DEFAULT_RULESET, facts_from_department(tests, THREE_DOSES, NO_RISK, NOW), now=NOW)
    assert (decision.status, decision.reasons, decision.rule_version, decision.overridden) == ("G", (), 1, False)


def test_demo_li_si_is_red() -> None:
    tests = {"tests": [_test(2 * DAY, "positive"), _test(9 * DAY, "negative", 1)]}
    risk = {**NO_RISK, "quarantine_until": _iso(NOW + 12 * DAY)}
    decision = evaluate(DEFAULT_RULESET, facts_from_department(tests, THREE_DOSES, risk, NOW), now=NOW)
    assert decision.status == "R"
    # Every matching reason is listed, the worst status wins.
    assert decision.reasons == ("positive_test", "quarantine", "no_recent_negative_test")


def test_demo_li_si_is_red_without_quarantine_data() -> None:
    tests = {"tests": [_test(2 * DAY, "positive")]}
    decision = evaluate(DEFAULT_RULESET, facts_from_department(tests, THREE_DOSES, NO_RISK, NOW), now=NOW)
    assert decision.status == "R"


def test_demo_wang_wu_is_yellow() -> None:
    tests = {"tests": [_test(10 * DAY, "negative"), _test(17 * DAY, "negative", 1)]}
    risk = {**NO_RISK, "risk_area_visits": [{"area": "Area 7", "at": _iso(NOW - 3 * DAY)}]}
    decision = evaluate(DEFAULT_RULESET, facts_from_department(tests, THREE_DOSES, risk, NOW), now=NOW)
    assert decision.status == "Y"
    assert decision.reasons == ("no_recent_negative_test", "risk_area_visit")


def test_demo_citizens_from_the_simulator_data() -> None:
    """The simulator's own Structs (another shape of the same contract) give the fixed answers."""
    from services.simulators import demo

    for citizen in demo.DEMO_CITIZENS:
        facts = facts_from_department(
            demo.health_tests(citizen.id_number, NOW),
            demo.vaccinations(citizen.id_number),
            demo.health_risk(citizen.id_number, NOW),
            NOW,
        )
        assert evaluate(DEFAULT_RULESET, facts, now=NOW).status == citizen.health_code, citizen.name


# --- facts ------------------------------------------------------------------------------------


def test_facts_from_department_reduces_and_normalises() -> None:
    tests = [
        _test(DAY, "negative"),
        {**_test(3 * DAY, "positive", 1), "sampled_at": "2026-01-12T16:00:00+08:00"},
        _test(2 * DAY, "pending", 2),
    ]
    risk = {
        "close_contact": True,
        "quarantine_until": "2026-01-20T00:00:00",  # naive: read as UTC
        "risk_area_visits": [{"area": "A", "at": _iso(NOW - 5 * DAY)}, {"area": "B", "at": _iso(NOW - DAY)}],
    }
    doses = {"doses": [*THREE_DOSES["doses"], THREE_DOSES["doses"][0]]}  # dose 1 listed twice
    facts = facts_from_department(tests, doses, risk, NOW)
    assert facts.as_of == NOW
    assert facts.negative_tests == (NOW - DAY,)
    assert facts.positive_tests == (dt.datetime(2026, 1, 12, 8, 0, tzinfo=dt.UTC),)
    assert facts.vaccination_doses == 3
    assert facts.close_contact is True
    assert facts.quarantine_until == dt.datetime(2026, 1, 20, tzinfo=dt.UTC)
    assert facts.risk_area_visits == (NOW - DAY, NOW - 5 * DAY)  # newest first


def test_facts_from_department_rejects_wrong_shapes() -> None:
    with pytest.raises(ValueError, match="result"):
        facts_from_department([{**_test(DAY, "negative"), "result": "maybe"}], THREE_DOSES, NO_RISK, NOW)
    with pytest.raises(ValueError, match="close_contact"):
        facts_from_department([], THREE_DOSES, {"quarantine_until": None, "risk_area_visits": []}, NOW)


# --- every condition kind ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "facts", "expected"),
    [
        (PositiveTestWithin(days=14), _facts(positive_tests=(NOW - 14 * DAY,)), True),
        (PositiveTestWithin(days=14), _facts(positive_tests=(NOW - 15 * DAY,)), False),
        (PositiveTestWithin(days=14), _facts(negative_tests=(NOW - DAY,)), False),
        (NoNegativeTestWithin(days=7), _facts(), True),
        (NoNegativeTestWithin(days=7), _facts(negative_tests=(NOW - 8 * DAY,)), True),
        (NoNegativeTestWithin(days=7), _facts(negative_tests=(NOW - 6 * DAY,)), False),
        (NoNegativeTestWithin(days=7), _facts(positive_tests=(NOW - DAY,)), True),
        (QuarantineActive(), _facts(quarantine_until=NOW + DAY), True),
        (QuarantineActive(), _facts(quarantine_until=NOW), False),
        (QuarantineActive(), _facts(quarantine_until=None), False),
        (CloseContact(), _facts(close_contact=True), True),
        (CloseContact(), _facts(), False),
        (RiskAreaVisitWithin(days=14), _facts(risk_area_visits=(NOW - 3 * DAY,)), True),
        (RiskAreaVisitWithin(days=14), _facts(risk_area_visits=(NOW - 20 * DAY,)), False),
        (VaccinationDosesBelow(count=3), _facts(vaccination_doses=2), True),
        (VaccinationDosesBelow(count=3), _facts(vaccination_doses=3), False),
        (AllOf(conditions=(CloseContact(), NoNegativeTestWithin(days=2))), _facts(close_contact=True), True),
        (
            AllOf(conditions=(CloseContact(), NoNegativeTestWithin(days=2))),
            _facts(close_contact=True, negative_tests=(NOW - DAY,)),
            False,
        ),
        (AnyOf(conditions=(CloseContact(), QuarantineActive())), _facts(quarantine_until=NOW + DAY), True),
        (AnyOf(conditions=(CloseContact(), QuarantineActive())), _facts(), False),
    ],
)
def test_condition_kinds(condition: Condition, facts: HealthFacts, expected: bool) -> None:
    assert condition_holds(condition, facts, NOW) is expected


def test_future_dated_records_count_as_recent() -> None:
    assert condition_holds(PositiveTestWithin(days=1), _facts(positive_tests=(NOW + DAY,)), NOW)


def test_every_kind_round_trips_through_json() -> None:
    doc = {
        "version": 7,
        "description": "all kinds",
        "rules": [
            {"id": "p", "status": "R", "reason": "positive_test", "when": {"kind": "positive_test_within", "days": 14}},
            {"id": "q", "status": "R", "reason": "quarantine", "when": {"kind": "quarantine_active"}},
            {"id": "c", "status": "Y", "reason": "close_contact", "when": {"kind": "close_contact"}},
            {"id": "n", "status": "Y", "reason": "no_test", "when": {"kind": "no_negative_test_within", "days": 7}},
            {"id": "r", "status": "Y", "reason": "risk_area", "when": {"kind": "risk_area_visit_within", "days": 14}},
            {
                "id": "v",
                "status": "Y",
                "reason": "unvaccinated",
                "when": {"kind": "vaccination_doses_below", "count": 2},
            },
            {
                "id": "combo",
                "status": "R",
                "reason": "contact_untested",
                "when": {
                    "kind": "all_of",
                    "conditions": [
                        {"kind": "close_contact"},
                        {"kind": "any_of", "conditions": [{"kind": "no_negative_test_within", "days": 3}]},
                    ],
                },
            },
        ],
    }
    ruleset = validate_ruleset(json.dumps(doc))
    assert ruleset.version == 7
    assert isinstance(ruleset.rules[6].when, AllOf)
    assert json.loads(encode_ruleset(ruleset)) == doc
    assert validate_ruleset(doc) == validate_ruleset(encode_ruleset(ruleset)) == ruleset
    # An unvaccinated close contact without a recent test: red from the combined rule.
    decision = evaluate(ruleset, _facts(close_contact=True, negative_tests=(NOW - 5 * DAY,)), now=NOW)
    assert decision.status == "R"
    assert decision.reasons == ("close_contact", "unvaccinated", "contact_untested")
    assert decision.rule_version == 7


def test_default_ruleset_is_valid_and_versioned() -> None:
    assert validate_ruleset(DEFAULT_RULESET) == DEFAULT_RULESET
    assert DEFAULT_RULESET.version == 1
    assert validate_ruleset(encode_ruleset(DEFAULT_RULESET)) == DEFAULT_RULESET


def test_duplicate_reasons_listed_once() -> None:
    ruleset = RuleSet(
        version=2,
        rules=(
            Rule(id="a", status="Y", reason="contact", when=CloseContact()),
            Rule(id="b", status="R", reason="contact", when=CloseContact()),
        ),
    )
    decision = evaluate(ruleset, _facts(close_contact=True), now=NOW)
    assert (decision.status, decision.reasons) == ("R", ("contact",))


# --- overrides --------------------------------------------------------------------------------

GREEN_FACTS = _facts(negative_tests=(NOW - DAY,))
RED_FACTS = _facts(positive_tests=(NOW - DAY,), negative_tests=(NOW - DAY,))


def test_active_override_sets_status_even_milder() -> None:
    override = StatusOverride(status="G", reason="lab error confirmed", until=NOW + DAY)
    decision = evaluate(DEFAULT_RULESET, RED_FACTS, override=override, now=NOW)
    assert decision.status == "G"
    assert decision.overridden
    assert decision.reasons == ("positive_test", "staff_override")


def test_active_override_can_raise_status() -> None:
    override = StatusOverride(status="R", reason="ordered isolation", until=NOW + DAY)
    decision = evaluate(DEFAULT_RULESET, GREEN_FACTS, override=override, now=NOW)
    assert (decision.status, decision.reasons, decision.overridden) == ("R", ("staff_override",), True)


def test_expired_override_is_ignored() -> None:
    override = StatusOverride(status="G", reason="old", until=NOW)
    decision = evaluate(DEFAULT_RULESET, RED_FACTS, override=override, now=NOW)
    assert (decision.status, decision.overridden) == ("R", False)
    assert "staff_override" not in decision.reasons
    assert override.is_active(NOW - dt.timedelta(seconds=1))


def test_naive_now_is_utc() -> None:
    naive = NOW.replace(tzinfo=None)
    assert evaluate(DEFAULT_RULESET, GREEN_FACTS, now=naive) == evaluate(DEFAULT_RULESET, GREEN_FACTS, now=NOW)


# --- bad documents ----------------------------------------------------------------------------

_GOOD_RULE: dict[str, Any] = {"id": "x", "status": "R", "reason": "r", "when": {"kind": "close_contact"}}


@pytest.mark.parametrize(
    ("doc", "fragment"),
    [
        ("{not json", "invalid health rule set"),
        ({"rules": [_GOOD_RULE]}, "version"),
        ({"version": 0, "rules": [_GOOD_RULE]}, "$.version"),
        ({"version": "1", "rules": [_GOOD_RULE]}, "$.version"),
        ({"version": 1, "rules": []}, "$.rules"),
        ({"version": 1, "rules": [_GOOD_RULE], "extra": 1}, "extra"),
        ({"version": 1, "rules": [{**_GOOD_RULE, "status": "G"}]}, "$.rules[0].status"),
        ({"version": 1, "rules": [{**_GOOD_RULE, "reason": "Not A Slug"}]}, "$.rules[0].reason"),
        ({"version": 1, "rules": [{**_GOOD_RULE, "when": {"kind": "astrology"}}]}, "$.rules[0].when.kind"),
        ({"version": 1, "rules": [{**_GOOD_RULE, "when": {"kind": "close_contact", "days": 3}}]}, "days"),
        (
            {"version": 1, "rules": [{**_GOOD_RULE, "when": {"kind": "positive_test_within"}}]},
            "$.rules[0].when",
        ),
        (
            {"version": 1, "rules": [{**_GOOD_RULE, "when": {"kind": "positive_test_within", "days": 0}}]},
            "$.rules[0].when.days",
        ),
        (
            {"version": 1, "rules": [{**_GOOD_RULE, "when": {"kind": "positive_test_within", "days": "14"}}]},
            "$.rules[0].when.days",
        ),
        (
            {"version": 1, "rules": [{**_GOOD_RULE, "when": {"kind": "vaccination_doses_below", "count": 0}}]},
            "$.rules[0].when.count",
        ),
        ({"version": 1, "rules": [{**_GOOD_RULE, "when": {"kind": "all_of", "conditions": []}}]}, "conditions"),
        ({"version": 1, "rules": [_GOOD_RULE, _GOOD_RULE]}, "duplicate rule id 'x'"),
        (
            {
                "version": 1,
                "rules": [
                    {
                        **_GOOD_RULE,
                        "when": {
                            "kind": "all_of",
                            "conditions": [
                                {
                                    "kind": "all_of",
                                    "conditions": [
                                        {
                                            "kind": "all_of",
                                            "conditions": [
                                                {
                                                    "kind": "all_of",
                                                    "conditions": [
                                                        {"kind": "all_of", "conditions": [{"kind": "close_contact"}]}
                                                    ],
                                                }
                                            ],
                                        }
                                    ],
                                }
                            ],
                        },
                    }
                ],
            },
            "nested deeper",
        ),
        ([1, 2], "invalid health rule set"),
    ],
)
def test_bad_documents_rejected(doc: Any, fragment: str) -> None:
    with pytest.raises(RuleSetError) as caught:
        validate_ruleset(doc if isinstance(doc, str) else json.dumps(doc))
    assert fragment in str(caught.value)


def test_bad_mapping_rejected() -> None:
    with pytest.raises(RuleSetError, match=r"\$\.version"):
        validate_ruleset({"version": -3, "rules": [_GOOD_RULE]})


def test_ruleset_json_schema_is_available() -> None:
    # Handy for the admin UI and the docs: the document format as JSON Schema.
    schema = msgspec.json.schema(RuleSet)
    assert "RuleSet" in json.dumps(schema)
