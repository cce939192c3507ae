"""Litestar guards of staff endpoints: who may call a route, decided before its handler runs.

Put the role a route needs on the route (or its controller) with :func:`staff_roles`, so
the rule is visible where the route is declared and checked before any dependency or body
is processed. Region checks stay in the services: they need the target's region.

:func:`auditors_read_only` is registered once on the app: whatever state-changing endpoint
anyone adds under ``/v1/admin/``, an auditor gets 403 ``auditor-read-only`` from it.
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.types import Guard

from core.errors import Forbidden, Unauthorized
from identity.staff.errors import AuditorReadOnly
from identity.staff.permissions import Role, staff_principal_of

__all__ = ["ADMIN_PREFIX", "auditors_read_only", "staff_roles"]

#: Where the staff (administration) API lives.
ADMIN_PREFIX = "/v1/admin/"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def staff_roles(*roles: Role) -> Guard:
    """A guard: 401 without a live staff token, 403 ``forbidden`` unless one of ``roles``."""
    allowed = frozenset(r.value for r in roles)

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal = await staff_principal_of(connection)
        if not principal.roles & allowed:
            raise Forbidden("Your role does not allow this")

    guard.__qualname__ = guard.__name__ = f"staff_roles({', '.join(sorted(allowed))})"
    return guard


async def auditors_read_only(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """App-wide guard: an auditor's request that would change state under ``/v1/admin/`` is
    refused with 403 ``auditor-read-only`` before its handler runs.

    Requests that are not staff requests pass untouched: the route's own authentication
    answers them (401), this guard only refuses.
    """
    scope = connection.scope
    method = scope.get("method")
    if method is None or method in _SAFE_METHODS or not scope["path"].startswith(ADMIN_PREFIX):
        return
    try:
        principal = await staff_principal_of(connection)
    except Unauthorized:
        return
    if Role.AUDITOR.value in principal.roles:
        raise AuditorReadOnly()
