"""Prometheus metrics of the service hall (default registry, served at ``/metrics``).

Labels come from fixed sets (department, outcome, status): never an application number, a
citizen or a form value.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter

__all__ = ["APPLICATIONS", "CASE_DELIVERIES", "DEPARTMENT_EVENTS"]

APPLICATIONS: Final = Counter(
    "onecity_hall_applications", "Applications created (by citizens or bundle steps)", ["department"]
)
CASE_DELIVERIES: Final = Counter(
    "onecity_hall_case_deliveries",
    "Case submissions and resubmissions to departments by outcome (delivered, retry, gave_up)",
    ["department", "outcome"],
)
DEPARTMENT_EVENTS: Final = Counter(
    "onecity_hall_department_events",
    "Department events by outcome (applied, held, duplicate, refused)",
    ["department", "outcome"],
)
