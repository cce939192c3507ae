"""GB 11643 resident ID numbers: check digit and validity.

Lives outside the simulators (which import Litestar) so that identity code can validate an ID
number before it ever reaches the registry, without pulling in a web framework.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Final

__all__ = ["birth_date", "check_digit", "valid_id_number"]

_WEIGHTS: Final = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK_CHARS: Final = "10X98765432"
_SHAPE: Final = re.compile(r"[0-9]{17}[0-9X]")


def check_digit(first17: str) -> str:
    """The GB 11643 check character for the first 17 digits of an ID number.

    Args:
        first17: Exactly 17 ASCII digits.

    Raises:
        ValueError: If ``first17`` is not 17 ASCII digits.
    """
    if len(first17) != 17 or not first17.isascii() or not first17.isdigit():
        raise ValueError("expected 17 digits")
    total = sum(int(char) * weight for char, weight in zip(first17, _WEIGHTS, strict=True))
    return _CHECK_CHARS[total % 11]


def birth_date(id_number: str) -> dt.date | None:
    """The birth date encoded in characters 7-14, or ``None`` if it is not a real date."""
    try:
        return dt.date(int(id_number[6:10]), int(id_number[10:12]), int(id_number[12:14]))
    except ValueError:
        return None


def valid_id_number(value: str) -> bool:
    """Whether ``value`` is a well-formed 18-character ID number with a correct check digit.

    Checks the shape (17 digits and a digit or ``X``), a real birth date from 1900 on, and the
    ISO 7064 MOD 11-2 check character. Whether such a person exists is the registry's business.
    """
    if not _SHAPE.fullmatch(value):
        return False
    born = birth_date(value)
    if born is None or born.year < 1900:
        return False
    return check_digit(value[:17]) == value[17]
