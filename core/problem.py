"""RFC 9457 problem documents: the body of every error response.

The schema lives here, below every domain, so controllers can declare their error
responses in OpenAPI and the app can render them from one definition.
"""

from __future__ import annotations

import msgspec

__all__ = ["PROBLEM_MEDIA_TYPE", "TYPE_BASE", "FieldError", "ProblemDocument"]

PROBLEM_MEDIA_TYPE = "application/problem+json"
#: Problem ``type`` URIs are this base plus a stable slug, e.g. ``.../rate-limited``.
TYPE_BASE = "https://onecity.example/problems/"


class FieldError(msgspec.Struct, frozen=True, kw_only=True):
    """One invalid input: where it is and what is wrong with it."""

    field: str
    message: str
    source: str | None = None


class ProblemDocument(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """RFC 9457 problem details, as every error response body."""

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    field: str | None = None
    errors: list[FieldError] | None = None
    request_id: str | None = None
    required_level: str | None = None
    checks: dict[str, str] | None = None
