"""The shared HTTP plumbing of every department client.

:class:`DepartmentHttp` does what all seven clients have in common - mint the service token,
send the request over the shared ``httpx.AsyncClient``, check the status, decode the body into a
typed Struct - and turns every failure into one :class:`~services.errors.DepartmentError`, so
each department module is just its Structs and a few one-line methods.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, TypeVar

import httpx
import msgspec

from services.errors import DepartmentErrorKind, department_error
from services.tokens import ServiceTokenMinter

__all__ = ["DepartmentHttp", "Payload"]

T = TypeVar("T")

_UNAVAILABLE_STATUSES: Final = frozenset({429, 502, 503, 504})


class Payload(msgspec.Struct, frozen=True, kw_only=True):
    """Base of every department response Struct.

    Unknown fields are ignored (departments may grow their answers) but a known field with the
    wrong type fails decoding, which the client reports as ``malformed``.
    """


class DepartmentHttp:
    """Calls one department on behalf of OneCity.

    Args:
        department: The department's name; also the token ``aud``.
        base_url: Where the department lives, e.g. ``http://127.0.0.1:8101``; may carry a path prefix.
        http: The shared client; the BFF owns its lifecycle and its default timeouts.
        minter: Mints the service token for each call.
        timeout: Per-department override of the client's timeout, in seconds or as an
            ``httpx.Timeout``; ``None`` keeps the client's.
    """

    __slots__ = ("_base_url", "_http", "_minter", "_timeout", "department")

    def __init__(
        self,
        department: str,
        base_url: str,
        http: httpx.AsyncClient,
        minter: ServiceTokenMinter,
        *,
        timeout: float | httpx.Timeout | None = None,
    ) -> None:
        self.department = department
        self._base_url = base_url.rstrip("/")
        self._http = http
        self._minter = minter
        self._timeout = timeout

    async def get(
        self,
        path: str,
        response_type: type[T],
        *,
        subject: str,
        scope: str,
        purpose: str,
        params: Mapping[str, str] | None = None,
    ) -> T:
        """``GET`` ``path`` and decode the JSON answer into ``response_type``.

        Raises:
            DepartmentError: On any network, status or decoding failure.
        """
        response = await self._send("GET", path, subject=subject, scope=scope, purpose=purpose, params=params)
        return self._decode(response, response_type)

    async def post(
        self,
        path: str,
        body: Any,
        response_type: type[T],
        *,
        subject: str,
        scope: str,
        purpose: str,
        headers: Mapping[str, str] | None = None,
    ) -> T:
        """``POST`` ``body`` (a Struct or JSON-able value) and decode the answer into ``response_type``.

        Args:
            headers: Extra request headers (e.g. ``Idempotency-Key``).

        Raises:
            DepartmentError: On any network, status or decoding failure.
        """
        response = await self._send(
            "POST", path, subject=subject, scope=scope, purpose=purpose, body=body, extra_headers=headers
        )
        return self._decode(response, response_type)

    async def post_accepted(self, path: str, body: Any, *, subject: str, scope: str, purpose: str) -> None:
        """``POST`` ``body`` where only a 2xx status matters (e.g. 202 Accepted); the body is ignored.

        Raises:
            DepartmentError: On any network or status failure.
        """
        await self._send("POST", path, subject=subject, scope=scope, purpose=purpose, body=body)

    async def _send(
        self,
        method: str,
        path: str,
        *,
        subject: str,
        scope: str,
        purpose: str,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        token = self._minter.mint(audience=self.department, subject=subject, scope=scope, purpose=purpose)
        headers = {**(extra_headers or {}), "Authorization": f"Bearer {token}", "Accept": "application/json"}
        content: bytes | None = None
        if body is not None:
            content = msgspec.json.encode(body)
            headers["Content-Type"] = "application/json"
        extra: dict[str, Any] = {} if self._timeout is None else {"timeout": self._timeout}
        try:
            response = await self._http.request(
                method, self._base_url + path, params=params, content=content, headers=headers, **extra
            )
        # Order matters: TimeoutException and ConnectError are both TransportErrors.
        except httpx.TimeoutException:
            raise self._error("timeout") from None
        except httpx.ConnectError:
            raise self._error("unavailable") from None
        except httpx.TransportError:
            raise self._error("dropped") from None
        # `from None` everywhere: httpx messages and tracebacks can carry the URL and headers.
        if response.is_success:
            return response
        status = response.status_code
        if status in _UNAVAILABLE_STATUSES:
            raise self._error("unavailable", status)
        if 400 <= status < 500:
            raise self._error("rejected", status)
        raise self._error("bad_status", status)

    def _decode(self, response: httpx.Response, response_type: type[T]) -> T:
        try:
            return msgspec.json.decode(response.content, type=response_type)
        except msgspec.DecodeError:  # ValidationError is a DecodeError: wrong types land here too
            raise self._error("malformed", response.status_code) from None

    def _error(self, kind: DepartmentErrorKind, status: int | None = None) -> Exception:
        return department_error(self.department, kind, upstream_status=status)
