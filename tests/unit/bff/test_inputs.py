"""JSON depth is bounded before decoding (bff.inputs)."""

from __future__ import annotations

import pytest

from bff.inputs import MAX_JSON_DEPTH, too_deep


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
