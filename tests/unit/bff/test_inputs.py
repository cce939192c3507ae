"""JSON depth is bounded before decoding (bff.inputs)."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar, post
from litestar.testing import AsyncTestClient

from bff.inputs import LARGE_BODY_BYTES, MAX_JSON_DEPTH, BoundedRequest, too_deep
from bff.problems import exception_handlers


@pytest.mark.parametrize(
    ("body", "deep"),
    [
        (b'{"a": 1}', False),
        (b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH, False),
        (b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1), True),
        (b"[" * 3000 + b"]" * 3000, True),
        (b"[" * 3000, True),  # unbalanced: still refused before the decoder recurses
        (b'{"a": "' + b"[" * 3000 + b'"}', False),  # brackets inside a string do not nest
        (b'{"a": "\\"' + b"[" * 3000 + b'"}', False),  # nor after an escaped quote
        (b"[" + b"{}," * 5000 + b"{}]", False),  # many siblings, shallow
        (b'[{"a": "\\\\"}, ' + b"[" * 3000 + b"]", True),  # an escaped backslash ends no string
        (b'["\\u005b' + b"[" * 40 + b'"]' + b", {}" * 40, False),  # a \u escape inside a string
        (b"[" * 20 + b'"' + b"[" * 13, True),  # an unterminated string's quote closes nothing
    ],
)
def test_too_deep(body: bytes, deep: bool) -> None:
    assert too_deep(body) is deep


@post("/echo", status_code=200)
async def _echo(data: dict[str, Any]) -> dict[str, Any]:
    return {"keys": sorted(data), "items": len(data["items"])}


async def test_a_large_body_is_scanned_and_decoded_like_a_small_one() -> None:
    items = b", ".join(b'{"v": "' + b"[" * 40 + b'"}' for _ in range(3000))  # brackets in strings
    shallow = b'{"items": [' + items + b"]}"
    deep = b'{"items": [' + items + b"]" + b", " + b"[" * 40 + b"]" * 40 + b"}"
    assert len(shallow) > LARGE_BODY_BYTES
    app = Litestar([_echo], request_class=BoundedRequest, exception_handlers=exception_handlers())
    async with AsyncTestClient(app) as client:
        headers = {"Content-Type": "application/json"}
        ok = await client.post("/echo", content=shallow, headers=headers)
        assert ok.status_code == 200 and ok.json() == {"keys": ["items"], "items": 3000}
        refused = await client.post("/echo", content=deep, headers=headers)
        assert refused.status_code == 400
        assert refused.json()["type"].endswith("/json-too-deep")
