"""Citizen identity levels: the one definition of ``L2`` < ``L3`` < ``L4``.

An access token's ``acr`` is a level; endpoints, department policies, code types and service
hall matters name the level they need. The levels live in ``core`` rather than in
``identity`` because ``services`` (department policies) sits below the domains and needs the
same vocabulary; the citizen a level belongs to is :class:`identity.principal.Principal`.

* ``L2`` — the phone is proved (every account after its first login);
* ``L3`` — real name: a name and ID number the population registry confirmed (实名);
* ``L4`` — real person: a liveness check against that ID number (实人).
"""

from __future__ import annotations

from typing import Final, Literal

__all__ = ["LEVELS", "Level", "level_rank", "meets_level"]

Level = Literal["L2", "L3", "L4"]

#: Every level, lowest first (the order is the ranking).
LEVELS: Final[tuple[Level, ...]] = ("L2", "L3", "L4")

_RANK: Final[dict[str, int]] = {level: rank for rank, level in enumerate(LEVELS, start=2)}


def level_rank(level: str) -> int:
    """``2`` for ``L2`` … ``4`` for ``L4``; ``0`` for anything else (below every level)."""
    return _RANK.get(level, 0)


def meets_level(level: str, required: str) -> bool:
    """Whether ``level`` is ``required`` or higher.

    Raises:
        KeyError: ``required`` is not a level (a configuration error, never a citizen's).
    """
    return level_rank(level) >= _RANK[required]
