"""The one error hierarchy of the department clients.

Every failure of a department call - the network, the status, the body - surfaces as a
:class:`DepartmentError` whose ``kind`` says what went wrong, so the resilience layer and the
BFF switch on one attribute instead of on httpx and msgspec exception types. The classes derive
from :class:`core.errors.DependencyUnavailable`, so an error nobody handles still becomes a
clean 503 problem document rather than a 500.

Messages name the department, the kind and at most an HTTP status: never a citizen's ID
number, a phone, a token or a response body (which could carry any of those).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from core.errors import DependencyUnavailable

__all__ = [
    "DepartmentBadStatusError",
    "DepartmentDroppedError",
    "DepartmentError",
    "DepartmentErrorKind",
    "DepartmentMalformedError",
    "DepartmentRejectedError",
    "DepartmentTimeoutError",
    "DepartmentUnavailableError",
    "department_error",
]

DepartmentErrorKind = Literal["timeout", "unavailable", "dropped", "bad_status", "malformed", "rejected"]
"""What went wrong with a department call.

- ``timeout``: no complete answer within the httpx timeout (connect, read, write or pool).
- ``unavailable``: the department could not be reached (connection refused, DNS) or said so
  (502, 503, 504, 429). Nothing was processed, so a retry is safe even for a POST.
- ``dropped``: the connection broke mid-exchange; the request may or may not have been processed.
- ``bad_status``: an unexpected status (500, 3xx, ...): the department is broken, not busy.
- ``malformed``: a 2xx whose body is not the JSON the contract promises.
- ``rejected``: a 4xx: the department refused this request; retrying the same call will not help.
"""


class DepartmentError(DependencyUnavailable):
    """A department call failed.

    ``DepartmentError("health", "timeout")`` builds the matching subclass
    (:class:`DepartmentTimeoutError`), so ``except DepartmentTimeoutError`` and
    ``error.kind == "timeout"`` always agree.

    Args:
        department: The department's short name (its token ``aud``), e.g. ``"health"``.
        kind: What went wrong; required on the base class, implied by a subclass.
        upstream_status: The department's HTTP status when it answered, else ``None``. (Not
            ``status``: that class attribute is the status OneCity itself answers with, 503.)
    """

    kind: ClassVar[DepartmentErrorKind]
    retryable: ClassVar[bool] = False
    """Whether repeating the same call may succeed (the department was busy or unreachable)."""

    def __new__(
        cls, department: str, kind: DepartmentErrorKind | None = None, *, upstream_status: int | None = None
    ) -> DepartmentError:
        if cls is DepartmentError:
            if kind is None:
                raise TypeError("DepartmentError needs a kind")
            cls = _BY_KIND[kind]
        return super().__new__(cls)

    def __init__(
        self, department: str, kind: DepartmentErrorKind | None = None, *, upstream_status: int | None = None
    ) -> None:
        if kind is not None and kind != self.kind:
            raise ValueError(f"{type(self).__name__} is kind {self.kind!r}, not {kind!r}")
        suffix = f" (HTTP {upstream_status})" if upstream_status is not None else ""
        super().__init__(f"The {department} department call failed: {self.kind}{suffix}")
        self.department = department
        self.upstream_status = upstream_status

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(department={self.department!r}, kind={self.kind!r}, "
            f"upstream_status={self.upstream_status!r})"
        )


class DepartmentTimeoutError(DepartmentError):
    """No complete answer in time."""

    kind = "timeout"
    retryable = True


class DepartmentUnavailableError(DepartmentError):
    """Unreachable, or it answered 502/503/504/429."""

    kind = "unavailable"
    retryable = True


class DepartmentDroppedError(DepartmentError):
    """The connection broke before a complete response arrived."""

    kind = "dropped"
    # Retryable for idempotent reads; callers decide for writes (the request may have landed).
    retryable = True


class DepartmentBadStatusError(DepartmentError):
    """An unexpected non-4xx status such as 500."""

    kind = "bad_status"


class DepartmentMalformedError(DepartmentError):
    """A success status with a body that does not match the contract."""

    kind = "malformed"


class DepartmentRejectedError(DepartmentError):
    """A 4xx: the department refused the request (bad input, refused token, unknown citizen)."""

    kind = "rejected"


_BY_KIND: dict[DepartmentErrorKind, type[DepartmentError]] = {
    cls.kind: cls
    for cls in (
        DepartmentTimeoutError,
        DepartmentUnavailableError,
        DepartmentDroppedError,
        DepartmentBadStatusError,
        DepartmentMalformedError,
        DepartmentRejectedError,
    )
}


def department_error(
    department: str, kind: DepartmentErrorKind, *, upstream_status: int | None = None
) -> DepartmentError:
    """Build the subclass of :class:`DepartmentError` for ``kind``.

    Args:
        department: The department's short name.
        kind: What went wrong.
        upstream_status: The department's HTTP status, when there was one.
    """
    return DepartmentError(department, kind, upstream_status=upstream_status)
