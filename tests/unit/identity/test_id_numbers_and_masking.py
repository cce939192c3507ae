"""GB 11643 check digits and the masks the app shows."""

from __future__ import annotations

import pytest

from identity.masking import mask_id_number, mask_name, mask_phone
from services.idnumber import check_digit, valid_id_number


@pytest.mark.parametrize(
    "id_number",
    [
        "110101199003070011",  # demo citizens (DESIGN.md)
        "110101198512120019",
        "110101197706150019",
        "11010519491231002X",  # check character X (value 10)
    ],
)
def test_valid_numbers(id_number: str) -> None:
    assert valid_id_number(id_number)


@pytest.mark.parametrize(
    ("id_number", "why"),
    [
        ("110101199003070012", "wrong check digit"),
        ("11010519491231002x", "lower-case x"),
        ("110101199002300015", "30 February"),
        ("110101189912310014", "born before 1900"),
        ("11010119900307001", "17 characters"),
        ("1101011990030700111", "19 characters"),
        ("11010119900307001A", "letter other than X"),
        ("１１０１０１１９９００３０７００１１", "full-width digits"),
        ("", "empty"),
    ],
)
def test_invalid_numbers(id_number: str, why: str) -> None:
    assert not valid_id_number(id_number), why


def test_check_digit_covers_every_remainder() -> None:
    # Each of the 11 check characters appears for some body: the whole table is reachable.
    assert {check_digit(f"{n:017d}") for n in range(0, 2000, 7)} == set("10X98765432")


def test_check_digit_refuses_bad_bodies() -> None:
    with pytest.raises(ValueError, match="17 digits"):
        check_digit("1234")


def test_masks() -> None:
    assert mask_phone("13800000001") == "138****0001"
    assert mask_name("张三") == "张*"
    assert mask_name("欧阳娜娜") == "欧***"
    assert mask_id_number("430102199003071234") == "4301**********1234"
