"""RFC 9457 problem documents: the body of every error response.

The schema lives here, below every domain, so controllers can declare their error
responses in OpenAPI and the app can render them from one definition: every problem body
OneCity sends is made by :func:`problem_document` (``bff.problems`` sends it, as a Litestar
response or straight from ASGI middleware).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

__all__ = ["PROBLEM_MEDIA_TYPE", "TYPE_BASE", "FieldError", "ProblemDocument", "problem_document"]

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


def problem_document(
    *,
    status: int,
    slug: str,
    title: str,
    detail: str | None = None,
    instance: str | None = None,
    request_id: str | None = None,
    extensions: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The members of one problem document, unset ones left out.

    Args:
        status: The HTTP status, repeated in the body.
        slug: The stable problem type; ``type`` is :data:`TYPE_BASE` plus it.
        title: The problem type's short summary.
        detail: This occurrence's explanation (sent to the client: no secrets, no PII).
        instance: The request path.
        request_id: The request's id, as in ``X-Request-ID``.
        extensions: Extra members (RFC 9457 section 3.2); never replaces a standard one.

    Returns:
        A mapping ready to encode as ``application/problem+json``.
    """
    document = ProblemDocument(
        type=TYPE_BASE + slug,
        title=title,
        status=status,
        detail=detail,
        instance=instance,
        request_id=request_id,
    )
    body = {key: value for key, value in msgspec.structs.asdict(document).items() if value is not None}
    for key, value in (extensions or {}).items():
        if value is not None and key not in body:
            body[key] = value
    return body
