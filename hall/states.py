"""The life of an application (DESIGN, "Service hall"): which transitions are legal.

``submitted → accepted | not_accepted``; ``accepted → correction_requested | under_review``;
``correction_requested → submitted`` (the citizen resubmits); ``under_review → approved |
denied``; ``approved → delivered``; ``withdrawn`` from any state before ``under_review``.
Anything else is illegal (409, nothing changes).
"""

from __future__ import annotations

from typing import Final, Literal

__all__ = [
    "CONCLUDED",
    "DEPARTMENT_STATUSES",
    "RATEABLE",
    "STATUSES",
    "TRANSITIONS",
    "Status",
    "can_become_legal",
    "is_legal",
]

Status = Literal[
    "submitted",
    "accepted",
    "not_accepted",
    "correction_requested",
    "under_review",
    "approved",
    "denied",
    "delivered",
    "withdrawn",
]

STATUSES: Final[tuple[str, ...]] = (
    "submitted",
    "accepted",
    "not_accepted",
    "correction_requested",
    "under_review",
    "approved",
    "denied",
    "delivered",
    "withdrawn",
)

TRANSITIONS: Final[dict[str, frozenset[str]]] = {
    "submitted": frozenset({"accepted", "not_accepted", "withdrawn"}),
    "accepted": frozenset({"correction_requested", "under_review", "withdrawn"}),
    "correction_requested": frozenset({"submitted", "withdrawn"}),
    "under_review": frozenset({"approved", "denied"}),
    "approved": frozenset({"delivered"}),
    "not_accepted": frozenset(),
    "denied": frozenset(),
    "delivered": frozenset(),
    "withdrawn": frozenset(),
}

#: Where an application's life ends; nothing follows.
CONCLUDED: Final = frozenset({"not_accepted", "denied", "delivered", "withdrawn"})
#: Concluded by the department: these may be rated (好差评).
RATEABLE: Final = frozenset({"delivered", "denied", "not_accepted"})
#: What a department may report (``submitted`` and ``withdrawn`` are the citizen's).
DEPARTMENT_STATUSES: Final = frozenset(
    {"accepted", "not_accepted", "correction_requested", "under_review", "approved", "denied", "delivered"}
)


def is_legal(current: str, new: str) -> bool:
    """Whether ``current → new`` is a transition of the state machine."""
    return new in TRANSITIONS.get(current, frozenset())


def _reachable(current: str) -> set[str]:
    seen: set[str] = set()
    frontier = [current]
    while frontier:
        for nxt in TRANSITIONS.get(frontier.pop(), frozenset()):
            if nxt not in seen:
                seen.add(nxt)
                frontier.append(nxt)
    return seen


_REACHABLE: Final = {status: frozenset(_reachable(status)) for status in STATUSES}


def can_become_legal(current: str, new: str) -> bool:
    """Whether ``new`` is not legal now but may be later (a predecessor has not arrived yet).

    ``new`` must lie ahead of ``current`` on some path; an event after a concluded state, or
    one that lies behind the current state, can never become legal.
    """
    return current not in CONCLUDED and new in _REACHABLE[current] and not is_legal(current, new)
