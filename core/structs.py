"""The msgspec bases and shared constraint aliases every payload is built from.

Requests inherit :class:`Request` (unknown fields are an error, fields are keyword-only);
responses and values inherit :class:`Response` (frozen). Constraints live here once as
``Annotated`` aliases so two endpoints never disagree about what a phone number is.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

__all__ = [
    "IdNumber",
    "NonEmptyStr",
    "Phone",
    "Request",
    "Response",
    "ShortStr",
    "Slug",
]


class Request(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every request body: strict, keyword-only."""


class Response(msgspec.Struct, frozen=True, kw_only=True):
    """Base of every response body and value object: immutable."""


NonEmptyStr = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
ShortStr = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Slug = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_.:-]{0,63}$")]
Phone = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^1[3-9][0-9]{9}$", description="Mainland China mobile number, 11 digits", examples=["13800000001"]
    ),
]
IdNumber = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[0-9]{17}[0-9X]$",
        description="18-character resident ID number (GB 11643); check digit validated separately",
    ),
]
