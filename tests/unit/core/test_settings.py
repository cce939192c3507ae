"""The settings convention: shared bounds, and refusals rewritten to name the variable."""

from __future__ import annotations

import msgspec
import pytest

from core.settings import Count, Seconds, name_variable, refuse

ENVIRONMENT = {"ONECITY_X_TTL_S": "x.ttl_s", "ONECITY_X_MAX": "x.max", "ONECITY_X_MIN": "x.min"}


class _X(msgspec.Struct, frozen=True, kw_only=True):
    ttl_s: Seconds = 60
    min: Count = 1
    max: Count = 10

    def __post_init__(self) -> None:
        if self.max < self.min:
            raise refuse("max", "must be at least ONECITY_X_MIN")


class _Root(msgspec.Struct, frozen=True, kw_only=True):
    x: _X = _X()


def _refusal(values: dict[str, object]) -> str:
    with pytest.raises(msgspec.ValidationError) as info:
        msgspec.convert({"x": values}, _Root, strict=False)
    return name_variable(str(info.value), ENVIRONMENT)


def test_a_bound_names_the_variable_of_the_field() -> None:
    assert _refusal({"ttl_s": "-1"}) == "ONECITY_X_TTL_S: Expected `int` >= 1"
    assert _refusal({"max": "0"}) == "ONECITY_X_MAX: Expected `int` >= 1"


def test_a_rule_across_fields_names_the_variable_of_the_field_it_blames() -> None:
    assert _refusal({"min": "5", "max": "4"}) == "ONECITY_X_MAX must be at least ONECITY_X_MIN"


def test_a_message_without_a_known_path_is_left_as_it_is() -> None:
    assert name_variable("Expected `int` - at `$.y.z`", ENVIRONMENT) == "Expected `int` - at `$.y.z`"
    assert name_variable("Object missing required field `a`", ENVIRONMENT) == "Object missing required field `a`"
