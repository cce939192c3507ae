"""Bounds on a request body that hold before anything decodes it.

The size is Litestar's ``request_max_body_size`` (413). The nesting depth is checked here:
msgspec decodes recursively, and 3,000 nested brackets raised ``RecursionError`` (a 500)
before any schema was consulted. No OneCity schema nests deeper than a handful of levels,
so :data:`MAX_JSON_DEPTH` leaves ample room and a deeper body is a 400 ``json-too-deep``.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from litestar import Request

from core.errors import JsonTooDeep

__all__ = ["LARGE_BODY_BYTES", "MAX_JSON_DEPTH", "BoundedRequest", "too_deep"]

MAX_JSON_DEPTH = 32
#: A body larger than this gives the event loop back between reading, scanning and decoding it.
LARGE_BODY_BYTES = 64 * 1024
_ESCAPE = re.compile(rb"\\.", re.DOTALL)
_QUOTED = re.compile(rb'"[^"]*"')
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'[]{}"')


def too_deep(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``body``'s arrays and objects nest more than ``limit`` levels.

    The strings go first (a ``[`` inside one does not nest) and only the brackets are walked,
    stopping as soon as the limit is passed. The strings are removed in passes that each run in
    C over the whole body: escapes (an escaped quote ends no string), then every byte but
    brackets and quotes; a body with no more than ``limit`` opening brackets left cannot nest
    deeper, so the common case ends there. Otherwise what lies between quotes goes too. One
    regular expression matching JSON strings with their escapes held the event loop 119 ms
    for a 1 MiB ride log (timeit, shared 2-core host); these passes take about 1 ms.

    Args:
        body: The raw JSON text (it need not be valid: malformed JSON is msgspec's to refuse).
        limit: The deepest nesting allowed.
    """
    if b"\\" in body:
        body = _ESCAPE.sub(b"", body)
    structure = body.translate(None, _NOT_STRUCTURE)
    if structure.count(b"[") + structure.count(b"{") <= limit:
        return False
    depth = 0
    for byte in _QUOTED.sub(b"", structure):
        if byte in b"[{":
            depth += 1
            if depth > limit:
                return True
        elif byte != 0x22:  # a quote left unterminated (malformed JSON): not a bracket
            depth -= 1
    return False


def _is_json(content_type: str) -> bool:
    return content_type == "application/json" or content_type.endswith("+json")


class BoundedRequest(Request[Any, Any, Any]):
    """Litestar's request, refusing a JSON body nested beyond :data:`MAX_JSON_DEPTH`.

    A large body (a ride log is up to 2 MiB) costs the event loop a few milliseconds in each
    of reading, the depth scan and decoding: each gets a step of its own (other requests run in
    between), so no one step holds the loop for all of them.
    """

    _depth_checked = False

    async def body(self) -> bytes:
        """The body, checked once for depth when it is JSON.

        Raises:
            JsonTooDeep: Nested deeper than :data:`MAX_JSON_DEPTH`.
        """
        body = await super().body()
        if body and not self._depth_checked and _is_json(self.content_type[0]):
            if len(body) > LARGE_BODY_BYTES:
                await asyncio.sleep(0)
            if too_deep(body):
                raise JsonTooDeep(f"JSON may nest at most {MAX_JSON_DEPTH} levels deep")
            self._depth_checked = True
        return body

    async def json(self) -> Any:
        """The decoded JSON body (Litestar's decoding), after the loop's turn for a large one."""
        if len(await self.body()) > LARGE_BODY_BYTES:
            await asyncio.sleep(0)
        return await super().json()
