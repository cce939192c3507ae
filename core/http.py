"""HTTP conventions shared by every domain's controllers (the one Litestar-aware module of core).

Controllers list the errors they can answer with ``responses=error_responses(401, 429)`` so
the OpenAPI document describes every error body truthfully as problem JSON.
"""

from __future__ import annotations

from litestar.openapi import ResponseSpec

from core.problem import PROBLEM_MEDIA_TYPE, ProblemDocument

__all__ = ["BEARER", "error_responses"]

#: OpenAPI security requirement for endpoints that need a bearer access token.
BEARER: list[dict[str, list[str]]] = [{"bearer": []}]

_DESCRIPTIONS = {
    400: "Invalid request (the problem names the field)",
    401: "Missing, invalid or expired credentials, or a higher identity level is required",
    403: "Not allowed",
    404: "Not found",
    409: "Conflicts with the current state",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Request content refused",
    429: "Too many requests (see Retry-After)",
    503: "A dependency is unavailable (see Retry-After)",
}


def error_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI response specs for the given error statuses, plus 400 and 503 always."""
    wanted = sorted({400, 415, 503, *statuses})
    return {
        status: ResponseSpec(
            data_container=ProblemDocument,
            description=_DESCRIPTIONS.get(status, "Error"),
            media_type=PROBLEM_MEDIA_TYPE,
        )
        for status in wanted
    }
