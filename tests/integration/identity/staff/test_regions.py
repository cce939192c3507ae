"""Staff region checks, both directions: inside the region allowed, outside never."""

from __future__ import annotations

import pytest

from core.errors import Forbidden
from identity.staff import Role, StaffPrincipal, can_act_on_citizen, region_covers, region_level


def _staff(region: str, *roles: str) -> StaffPrincipal:
    return StaffPrincipal(staff_id="s", roles=frozenset(roles or ("health_officer",)), region=region)


@pytest.mark.parametrize(
    ("staff_region", "citizen_region", "allowed"),
    [
        ("430102", "430102", True),  # district officer, own district
        ("430102", "430103", False),  # ...a neighbouring district: never
        ("430102", "110101", False),  # ...another city: never
        ("4301", "430102", True),  # city officer covers its districts
        ("4301", "430199", True),
        ("4301", "110101", False),  # ...not another city's
        ("4302", "430102", False),
        ("430102001", "430102", False),  # street officer: finer than the record, fail closed
        ("430102001001", "430102", False),  # community officer: likewise
        ("430102", None, False),  # citizen below real-name level has no region
        ("430102", "", False),
        ("430102", "43010", False),
        ("43010", "430102", False),  # malformed staff region
        ("", "430102", False),
    ],
)
def test_can_act_on_citizen(staff_region: str, citizen_region: str | None, allowed: bool) -> None:
    assert can_act_on_citizen(_staff(staff_region), citizen_region) is allowed
    staff = _staff(staff_region)
    if allowed:
        staff.require_citizen(citizen_region, Role.HEALTH_OFFICER)
    else:
        with pytest.raises(Forbidden):
            staff.require_citizen(citizen_region, Role.HEALTH_OFFICER)


def test_role_is_checked_too() -> None:
    auditor = _staff("430102", "auditor")
    with pytest.raises(Forbidden):
        auditor.require_citizen("430102", Role.HEALTH_OFFICER)
    auditor.require_citizen("430102", Role.AUDITOR, Role.HEALTH_OFFICER)


@pytest.mark.parametrize(
    ("staff_region", "target", "covered"),
    [
        ("4301", "430102001", True),
        ("430102", "430102001001", True),
        ("430102001", "430102001001", True),
        ("430102001", "430102002001", False),
        ("430102001001", "430102001", False),  # a community never covers its street
        ("430102", "4301", False),  # a district never covers its city
    ],
)
def test_region_tree(staff_region: str, target: str, covered: bool) -> None:
    assert region_covers(staff_region, target) is covered


def test_region_levels() -> None:
    assert [region_level(r) for r in ("4301", "430102", "430102001", "430102001001")] == [
        "city",
        "district",
        "street",
        "community",
    ]
    assert region_level("43010") is None and region_level("abcd") is None
