"""The resilient department layer: deadlines, breakers, retry budget, coalescing, SWR cache, audit.

:func:`build_resilient_departments` wraps the plain clients; ``as_departments()`` is a drop-in
:class:`services.departments.Departments`, and the ``read_*`` methods give the screens state
and ``as_of``. See ``docs/fanout.md``.
"""

from services.fanout.container import ResilientDepartments, build_resilient_departments
from services.fanout.departments import (
    ResilientHealthDepartment,
    ResilientSocsecDepartment,
    ResilientTransportDepartment,
)
from services.fanout.guard import (
    AUDIT_ACTION,
    AuditSink,
    Fetched,
    GuardedDepartment,
    KeyedHasher,
    Prefetched,
    ReadState,
    audit_subject_of,
)
from services.fanout.pools import FANOUT_DEPARTMENTS, DepartmentPools, PoolSettings
from services.fanout.settings import DEFAULT_TTLS, DepartmentBreakerConfig, DepartmentPolicy, FanoutSettings, Level

__all__ = [
    "AUDIT_ACTION",
    "DEFAULT_TTLS",
    "FANOUT_DEPARTMENTS",
    "AuditSink",
    "DepartmentBreakerConfig",
    "DepartmentPolicy",
    "DepartmentPools",
    "FanoutSettings",
    "Fetched",
    "GuardedDepartment",
    "KeyedHasher",
    "Level",
    "PoolSettings",
    "Prefetched",
    "ReadState",
    "ResilientDepartments",
    "ResilientHealthDepartment",
    "ResilientSocsecDepartment",
    "ResilientTransportDepartment",
    "audit_subject_of",
    "build_resilient_departments",
]
