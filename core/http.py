"""HTTP conventions shared by every domain's controllers (the one Litestar-aware module of core).

Controllers list the errors they can answer with ``responses=error_responses(401, 429)`` so
the OpenAPI document describes every error body truthfully as problem JSON. Image endpoints
declare ``operation_class=ImageOperation`` (PNG or SVG). :class:`VariadicTupleSchemaPlugin`
corrects Litestar's schema of length-constrained ``tuple[X, ...]`` fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar.openapi import ResponseSpec
from litestar.openapi.spec import OpenAPIResponse, OpenAPIType, Operation, Reference, Schema
from litestar.plugins import OpenAPISchemaPlugin
from litestar.typing import FieldDefinition

from core.problem import PROBLEM_MEDIA_TYPE, ProblemDocument

__all__ = ["BEARER", "ImageOperation", "VariadicTupleSchemaPlugin", "error_responses"]

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


@dataclass
class ImageOperation(Operation):
    """The operation of an image endpoint: its 200 answer is PNG or SVG, as ``?format=`` asks
    (a route handler documents one media type only)."""

    def __post_init__(self) -> None:
        ok = (self.responses or {}).get("200")
        if isinstance(ok, OpenAPIResponse) and ok.content:
            media = next(iter(ok.content.values()))
            ok.content = {"image/png": media, "image/svg+xml": media}


class VariadicTupleSchemaPlugin(OpenAPISchemaPlugin):
    """``Annotated[tuple[X, ...], msgspec.Meta(min_length=..., max_length=...)]`` as an array of ``X``.

    Litestar documents the items of such a length-constrained variadic tuple as
    ``oneOf: [X, {}]`` (the ``...`` becomes an empty schema). The empty schema matches anything,
    so no valid array satisfies ``oneOf``, and the document describes the body wrongly.
    """

    def is_plugin_supported_field(self, field_definition: FieldDefinition) -> bool:
        args = field_definition.args
        return (
            field_definition.origin is tuple
            and len(args) == 2
            and args[1] is Ellipsis
            and field_definition.kwarg_definition is not None
        )

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: Any) -> Schema:
        item = FieldDefinition.from_annotation(field_definition.args[0])
        items: Schema | Reference = schema_creator.not_generating_examples.for_field_definition(item)
        kwargs = field_definition.kwarg_definition
        return Schema(
            type=OpenAPIType.ARRAY,
            items=items,
            min_items=getattr(kwargs, "min_items", None),
            max_items=getattr(kwargs, "max_items", None),
        )
