"""Where the departments live and the one object that holds all seven clients."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

import httpx
import msgspec

from services.departments.base import DepartmentHttp
from services.departments.cases import CASE_DEPARTMENTS, CaseDepartment, HttpCaseDepartment
from services.departments.health import HealthDepartment, HttpHealthDepartment
from services.departments.liveness import HttpLiveness, Liveness
from services.departments.miniprogram import HttpMiniProgramPlatform, MiniProgramPlatform
from services.departments.push import HttpPushGateway, PushGateway
from services.departments.registry import HttpRegistry, Registry
from services.departments.sms import HttpSmsGateway, SmsGateway
from services.departments.socsec import HttpSocsecDepartment, SocsecDepartment
from services.departments.transport import HttpTransportDepartment, TransportDepartment
from services.tokens import ServiceTokenMinter

__all__ = ["DEFAULT_PORTS", "DEPARTMENTS", "DepartmentEndpoints", "Departments", "build_departments"]

DEPARTMENTS: Final = (
    "health",
    "transport",
    "socsec",
    "registry",
    "liveness",
    "sms",
    "miniprogram",
    "hukou",
    "education",
    "push",
)
"""Every department's name, which is also its service-token ``aud``."""

DEFAULT_PORTS: Final[Mapping[str, int]] = {
    "health": 8101,
    "transport": 8102,
    "socsec": 8103,
    "registry": 8104,
    "liveness": 8105,
    "sms": 8106,
    "miniprogram": 8107,
    "hukou": 8108,
    "education": 8109,
    "push": 8110,
}
"""The simulators' ports in ``onecity dev`` (DESIGN, "Department contracts")."""


class DepartmentEndpoints(msgspec.Struct, frozen=True, kw_only=True):
    """The base URL of each department; the defaults are the local simulators."""

    health: str = "http://127.0.0.1:8101"
    transport: str = "http://127.0.0.1:8102"
    socsec: str = "http://127.0.0.1:8103"
    registry: str = "http://127.0.0.1:8104"
    liveness: str = "http://127.0.0.1:8105"
    sms: str = "http://127.0.0.1:8106"
    miniprogram: str = "http://127.0.0.1:8107"
    hukou: str = "http://127.0.0.1:8108"
    education: str = "http://127.0.0.1:8109"
    push: str = "http://127.0.0.1:8110"

    @classmethod
    def local(cls, host: str = "127.0.0.1", ports: Mapping[str, int] | None = None) -> DepartmentEndpoints:
        """Endpoints of simulators on ``host`` at ``ports`` (default :data:`DEFAULT_PORTS`)."""
        chosen = {**DEFAULT_PORTS, **(ports or {})}
        return cls(**{name: f"http://{host}:{chosen[name]}" for name in DEPARTMENTS})

    def url(self, department: str) -> str:
        """The base URL of ``department``."""
        if department not in DEPARTMENTS:
            raise KeyError(department)
        url: str = getattr(self, department)
        return url


@dataclass(frozen=True, slots=True, kw_only=True)
class Departments:
    """The department clients, typed by their Protocols so tests and the resilience layer
    can substitute any of them."""

    health: HealthDepartment
    transport: TransportDepartment
    socsec: SocsecDepartment
    registry: Registry
    liveness: Liveness
    sms: SmsGateway
    miniprogram: MiniProgramPlatform
    # The case desks of the matter-owning departments, by department name.
    cases: Mapping[str, CaseDepartment] = field(default_factory=dict)
    #: The push gateway of the message centre (``None`` where nothing pushes).
    push: PushGateway | None = None


def build_departments(
    endpoints: DepartmentEndpoints,
    http: httpx.AsyncClient,
    minter: ServiceTokenMinter,
    *,
    timeouts: Mapping[str, float | httpx.Timeout] | None = None,
) -> Departments:
    """Build the HTTP clients of all seven departments.

    Args:
        endpoints: Where each department lives.
        http: The one shared client; the caller opens and closes it.
        minter: Mints the service tokens.
        timeouts: Optional per-department timeout overrides, by department name.
    """
    chosen = timeouts or {}

    def transport(name: str) -> DepartmentHttp:
        return DepartmentHttp(name, endpoints.url(name), http, minter, timeout=chosen.get(name))

    return Departments(
        health=HttpHealthDepartment(transport("health")),
        transport=HttpTransportDepartment(transport("transport")),
        socsec=HttpSocsecDepartment(transport("socsec")),
        registry=HttpRegistry(transport("registry")),
        liveness=HttpLiveness(transport("liveness")),
        sms=HttpSmsGateway(transport("sms")),
        miniprogram=HttpMiniProgramPlatform(transport("miniprogram")),
        cases={name: HttpCaseDepartment(transport(name)) for name in CASE_DEPARTMENTS},
        push=HttpPushGateway(transport("push")),
    )
