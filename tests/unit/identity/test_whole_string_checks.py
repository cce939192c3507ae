"""Hand-written checks match whole strings: Python's ``$`` also matches before a final newline."""

from __future__ import annotations

import pytest

from core.migrate import _NAME
from identity.oidc.clients import CLIENT_ID_PATTERN
from identity.staff.permissions import region_covers, region_level


@pytest.mark.parametrize("region", ["430102\n", "4301\n"])
def test_a_region_code_with_a_trailing_newline_is_no_region(region: str) -> None:
    assert region_level(region) is None
    assert not region_covers("4301", region)
    assert not region_covers(region, "430102")


def test_well_formed_regions_still_cover() -> None:
    assert region_level("430102") == "district"
    assert region_covers("4301", "430102")


def test_client_ids_and_migration_names_are_whole_strings() -> None:
    assert CLIENT_ID_PATTERN.fullmatch("demo-partner")
    assert not CLIENT_ID_PATTERN.fullmatch("demo-partner\n")
    assert not _NAME.fullmatch("0001_foundation.sql\n")
