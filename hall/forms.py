"""Checking a submitted form against its matter's schema, and filling in what OneCity knows.

A form is validated completely before anything is stored: the first bad field becomes a 422
problem naming it (``field``), so the app can point at it.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Mapping
from typing import Any, Final

from core.errors import UnprocessableEntity
from core.structs import TEXT_PATTERN
from hall.schemas import FormSchema
from services.idnumber import valid_id_number

__all__ = ["SIMULATE_FIELD", "validate_form"]

#: The dev/test steering field of DESIGN ("simulate": "deny" | "correction"); refused in prod.
SIMULATE_FIELD: Final = "simulate"
_SIMULATIONS: Final = frozenset({"deny", "correction"})
# fullmatch, not match with ``$``: ``$`` also matches before a final newline.
_PHONE: Final = re.compile(r"1[3-9][0-9]{9}")
_LICENCE: Final = re.compile(r"[A-Za-z0-9\u4e00-\u9fff-]{2,40}")
_TEXT: Final = re.compile(TEXT_PATTERN)
_MAX_TEXT: Final = 200


def _refuse(field: str, detail: str) -> UnprocessableEntity:
    return UnprocessableEntity(detail, extensions={"field": field})


def _check(kind: str, field: str, value: str, choices: list[str] | None) -> None:
    if kind == "text":
        if not value.strip() or len(value) > _MAX_TEXT:
            raise _refuse(field, f"{field}: 1-{_MAX_TEXT} characters")
        if not _TEXT.search(value):
            raise _refuse(field, f"{field}: no control characters")
    elif kind == "date":
        try:
            dt.date.fromisoformat(value)
        except ValueError:
            raise _refuse(field, f"{field}: a date as YYYY-MM-DD") from None
        if len(value) != 10:
            raise _refuse(field, f"{field}: a date as YYYY-MM-DD")
    elif kind == "id_number":
        if not valid_id_number(value):
            raise _refuse(field, f"{field}: not a valid ID number (GB 11643)")
    elif kind == "phone":
        if not _PHONE.fullmatch(value):
            raise _refuse(field, f"{field}: a mainland mobile number, 11 digits")
    elif kind == "choice":
        if value not in (choices or []):
            raise _refuse(field, f"{field}: one of the offered choices")
    elif kind == "licence" and not _LICENCE.fullmatch(value):
        raise _refuse(field, f"{field}: not a valid licence number")


def validate_form(schema: FormSchema, form: Mapping[str, Any], *, allow_simulate: bool) -> dict[str, str]:
    """The form, checked: every required field present, every value of its type, no strangers.

    Args:
        schema: The matter's (or bundle's) form schema.
        form: What the citizen sent.
        allow_simulate: Whether the ``simulate`` steering field is allowed (not in prod).

    Raises:
        UnprocessableEntity: 422 with ``field`` naming the first bad field.
    """
    fields = {f.name: f for f in schema.fields}
    cleaned: dict[str, str] = {}
    for name, value in form.items():
        if name == SIMULATE_FIELD and allow_simulate:
            if value not in _SIMULATIONS:
                raise _refuse(name, "simulate: deny or correction")
            cleaned[name] = value
            continue
        if name not in fields:
            raise _refuse(name, f"{name}: no such field in this form")
        if value is None:
            continue
        if not isinstance(value, str):
            raise _refuse(name, f"{name}: must be a string")
        # One spelling of every text fact (the core text type's rule): NFC before any check.
        value = unicodedata.normalize("NFC", value)
        _check(fields[name].type, name, value, fields[name].choices)
        cleaned[name] = value
    for field in schema.fields:
        if field.required and field.name not in cleaned:
            raise _refuse(field.name, f"{field.name}: required")
    return cleaned
