"""The msgspec bases and shared constraint aliases every payload is built from.

Requests inherit :class:`Request` (unknown fields are an error, fields are keyword-only);
response bodies, repository rows and value objects inherit :class:`FrozenStruct` (immutable).
Constraints live here once as ``Annotated`` aliases so two endpoints never disagree about what
a phone number is.

Input rules every request obeys (docs/architecture.md, "Request path"):

- **Patterns match the whole string.** msgspec checks a ``pattern`` with ``re.search``, where
  ``$`` also matches before a final ``\\n``: ``"13900000009\\n"`` passed ``^1[3-9][0-9]{9}$``
  and made a second account for the same phone. :func:`whole` anchors a pattern so that it
  means the same in Python and in ECMA-262 (the OpenAPI document's dialect, where ``\\Z`` does
  not exist): ``^(?:…)$(?!\\n)``.
- **Free text** is :func:`text`: bounded, no C0/C1 control characters (NUL, newline, tab, DEL,
  U+0080–U+009F; PostgreSQL cannot store NUL and a newline forges log lines), and normalised
  to Unicode NFC after decoding, so "é" typed on two keyboards is one value. msgspec cannot
  normalise inside ``Meta``; :meth:`Request.__post_init__` does it for the fields marked
  ``nfc``, and re-checks the length afterwards (NFC can lengthen a string).
- **Times** in a request lie between :data:`EARLIEST` and :data:`LATEST`: a year-1 or
  year-9999 timestamp overflowed arithmetic (``until - now``) or PostgreSQL further on.
"""

from __future__ import annotations

import datetime as dt
import typing
import unicodedata
from typing import Annotated, Any

import msgspec

__all__ = [
    "EARLIEST",
    "LATEST",
    "TEXT_PATTERN",
    "FrozenStruct",
    "IdNumber",
    "NonEmptyStr",
    "Phone",
    "Request",
    "ShortStr",
    "Slug",
    "Token",
    "text",
    "whole",
]

EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
"""The earliest time a request may carry."""
LATEST = dt.datetime(2999, 12, 31, 23, 59, 59, tzinfo=dt.UTC)
"""The latest time a request may carry: far from ``datetime.max`` so arithmetic cannot overflow."""


def whole(regex: str) -> str:
    """Anchor ``regex`` so that it must match the entire string.

    ``(?!\\n)`` after ``$`` refuses the one place Python's ``$`` matches early (before a final
    newline); in ECMA-262 it is a no-op, so the OpenAPI document shows the same rule.

    Args:
        regex: The body of the pattern, without anchors.

    Returns:
        ``^(?:regex)$(?!\\n)``.
    """
    return rf"^(?:{regex})$(?!\n)"


TEXT_PATTERN = whole(r"[^\x00-\x1f\x7f-\x9f]*")
"""No C0 or C1 control characters (this includes NUL, tab, CR, LF and DEL)."""


def text(
    max_length: int,
    *,
    min_length: int = 1,
    nfc: bool = True,
    description: str | None = None,
    examples: list[Any] | None = None,
) -> msgspec.Meta:
    """Constraints of a free-text field: bounded, no control characters, NFC when ``nfc``.

    Use as ``Annotated[str, text(128)]``. Keep ``nfc=False`` for opaque values a client must
    get back byte for byte (an OAuth ``state``, a token).

    Args:
        max_length: Longest accepted value, in code points (after NFC).
        min_length: Shortest accepted value.
        nfc: Normalise to Unicode NFC after decoding (only in :class:`Request` bodies).
        description: OpenAPI description.
        examples: OpenAPI examples.
    """
    return msgspec.Meta(
        pattern=TEXT_PATTERN,
        min_length=min_length,
        max_length=max_length,
        description=description,
        examples=examples,
        extra={"nfc": nfc},
    )


class _Checks(msgspec.Struct, frozen=True):
    """What :meth:`Request.__post_init__` does for one class, found once from its annotations."""

    nfc: tuple[tuple[str, int | None], ...]
    times: tuple[str, ...]


_CHECKS: dict[type, _Checks] = {}


def _metas(annotation: Any) -> list[msgspec.Meta]:
    if typing.get_origin(annotation) is Annotated:
        return [m for m in annotation.__metadata__ if isinstance(m, msgspec.Meta)]
    return []


def _strip(annotation: Any) -> list[Any]:
    """The members of ``X | None`` (or ``[X]``), with ``Annotated`` kept."""
    origin = typing.get_origin(annotation)
    if origin is typing.Union or (origin is not None and origin.__name__ == "UnionType"):
        return [a for a in typing.get_args(annotation) if a is not type(None)]
    return [annotation]


def _checks_of(cls: type) -> _Checks:
    hints = typing.get_type_hints(cls, include_extras=True)
    nfc: list[tuple[str, int | None]] = []
    times: list[str] = []
    for name in getattr(cls, "__struct_fields__", ()):
        for member in _strip(hints[name]):
            metas = _metas(member)
            base = typing.get_args(member)[0] if metas else member
            if any((m.extra or {}).get("nfc") for m in metas):
                nfc.append((name, min((m.max_length for m in metas if m.max_length is not None), default=None)))
            if base in (dt.datetime, dt.date):
                times.append(name)
    return _Checks(nfc=tuple(nfc), times=tuple(times))


def _aware(value: dt.datetime | dt.date) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
    return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)


class Request(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every request body: strict, keyword-only, text normalised, times bounded."""

    def __post_init__(self) -> None:
        cls = type(self)
        checks = _CHECKS.get(cls)
        if checks is None:
            checks = _CHECKS[cls] = _checks_of(cls)
        for name, max_length in checks.nfc:
            value = getattr(self, name)
            # ASCII is already NFC; skipping it keeps the common case to one C call.
            if value is None or value.isascii():
                continue
            normal = unicodedata.normalize("NFC", value)
            if max_length is not None and len(normal) > max_length:
                raise ValueError(f"Expected `str` of length <= {max_length} after NFC - at `$.{name}`")
            setattr(self, name, normal)
        for name in checks.times:
            value = getattr(self, name)
            if value is not None and not EARLIEST <= _aware(value) <= LATEST:
                raise ValueError(f"Expected a time between {EARLIEST.year} and {LATEST.year} - at `$.{name}`")


class FrozenStruct(msgspec.Struct, frozen=True, kw_only=True):
    """Base of every immutable payload: response bodies, repository rows and value objects."""


NonEmptyStr = Annotated[str, text(256)]
ShortStr = Annotated[str, text(64)]
Token = Annotated[str, text(8192, nfc=False)]
"""An opaque token or identifier: no control characters, never normalised."""
Slug = Annotated[str, msgspec.Meta(pattern=whole(r"[a-z0-9][a-z0-9_.:-]{0,63}"))]
Phone = Annotated[
    str,
    msgspec.Meta(
        pattern=whole(r"1[3-9][0-9]{9}"),
        description="Mainland China mobile number, 11 digits",
        examples=["13800000001"],
    ),
]
IdNumber = Annotated[
    str,
    msgspec.Meta(
        pattern=whole(r"[0-9]{17}[0-9X]"),
        description="18-character resident ID number (GB 11643); check digit validated separately",
    ),
]
