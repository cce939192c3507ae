"""The case contract of the departments that own matters (``health``, ``socsec``, ``hukou``,
``education``): submit a case, resubmit a corrected form.

Both calls carry an ``Idempotency-Key``, so OneCity's job queue may retry them freely: the
department answers the same ``case_id`` to the same key and never opens a second case.
"""

from __future__ import annotations

from typing import Any, Final, Protocol

import msgspec

from services.departments.base import DepartmentHttp, Payload

__all__ = ["CASE_DEPARTMENTS", "CaseDepartment", "CaseReceipt", "HttpCaseDepartment"]

CASE_DEPARTMENTS: Final = ("health", "socsec", "hukou", "education")
"""The departments that own matters and take cases."""


class CaseReceipt(Payload, frozen=True, kw_only=True):
    """202 answer of ``POST /v1/cases`` and of a resubmission."""

    case_id: str


class _CaseBody(msgspec.Struct, frozen=True, kw_only=True):
    application_number: str
    matter: str
    form: dict[str, Any]
    materials: list[Any]


class _ResubmissionBody(msgspec.Struct, frozen=True, kw_only=True):
    form: dict[str, Any]


class CaseDepartment(Protocol):
    """What OneCity needs from a matter-owning department."""

    department: str

    async def submit_case(
        self,
        id_number: str,
        *,
        application_number: str,
        matter: str,
        form: dict[str, Any],
        idempotency_key: str,
        materials: list[Any] | None = None,
    ) -> CaseReceipt:
        """Open (or find again, by ``idempotency_key``) the case of one application."""
        ...

    async def resubmit(
        self, id_number: str, *, case_id: str, form: dict[str, Any], idempotency_key: str
    ) -> CaseReceipt:
        """Send a corrected form for ``case_id``."""
        ...


class HttpCaseDepartment:
    """:class:`CaseDepartment` over HTTP.

    Args:
        http: The department's transport (base URL, shared client, token minter).
    """

    __slots__ = ("_http", "department")

    def __init__(self, http: DepartmentHttp) -> None:
        self._http = http
        self.department = http.department

    async def submit_case(
        self,
        id_number: str,
        *,
        application_number: str,
        matter: str,
        form: dict[str, Any],
        idempotency_key: str,
        materials: list[Any] | None = None,
    ) -> CaseReceipt:
        """``POST /v1/cases``; the applicant is the token's subject."""
        body = _CaseBody(application_number=application_number, matter=matter, form=form, materials=materials or [])
        return await self._http.post(
            "/v1/cases",
            body,
            CaseReceipt,
            subject=id_number,
            scope="cases:submit",
            purpose="application",
            headers={"Idempotency-Key": idempotency_key},
        )

    async def resubmit(
        self, id_number: str, *, case_id: str, form: dict[str, Any], idempotency_key: str
    ) -> CaseReceipt:
        """``POST /v1/cases/{case_id}/resubmission``."""
        return await self._http.post(
            f"/v1/cases/{case_id}/resubmission",
            _ResubmissionBody(form=form),
            CaseReceipt,
            subject=id_number,
            scope="cases:submit",
            purpose="application",
            headers={"Idempotency-Key": idempotency_key},
        )
