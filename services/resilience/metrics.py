"""Prometheus metrics of the fan-out, registered once per process in the default registry.

They are module-level because a Prometheus registry refuses a second metric of the same name;
the *state* they describe (breakers, budgets, caches) lives in per-app objects that only set
values here. Litestar's Prometheus plugin serves the default registry at ``/metrics``.

Labels are department, endpoint/resource and outcome names from fixed sets: never a citizen,
an ID number or a URL.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Gauge

__all__ = [
    "BREAKER_STATE",
    "BREAKER_TRANSITIONS",
    "CACHE_LOOKUPS",
    "COALESCED",
    "DEPARTMENT_CALLS",
    "RETRIES",
    "SECTION_STATES",
]

BREAKER_STATE: Final = Gauge(
    "onecity_department_breaker_state",
    "Circuit breaker state per department endpoint group: 0 closed, 1 half-open, 2 open",
    ["department", "endpoint"],
    # Each worker has its own breakers; across workers the worst live state is the one to see.
    multiprocess_mode="livemax",
)
BREAKER_TRANSITIONS: Final = Counter(
    "onecity_department_breaker_transitions",
    "Circuit breaker state changes",
    ["department", "endpoint", "from_state", "to_state"],
)
DEPARTMENT_CALLS: Final = Counter(
    "onecity_department_calls",
    "Department call attempts by outcome (success, a DepartmentError kind, or short_circuited)",
    ["department", "resource", "outcome"],
)
RETRIES: Final = Counter(
    "onecity_department_retries",
    "Retry decisions: attempted, or denied by the retry budget",
    ["department", "decision"],
)
CACHE_LOOKUPS: Final = Counter(
    "onecity_department_cache_lookups",
    "Department cache lookups by result (fresh, revalidate, stale, expired, miss)",
    ["department", "resource", "result"],
)
COALESCED: Final = Counter(
    "onecity_department_coalesced",
    "Reads that joined an identical upstream call already in flight",
    ["department", "resource"],
)
SECTION_STATES: Final = Counter(
    "onecity_department_reads",
    "Reads on behalf of a citizen by resulting state (ok, stale, unavailable)",
    ["department", "resource", "state"],
)
