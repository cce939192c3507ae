"""Department clients: one Protocol, one httpx implementation and its Structs per department.

The BFF depends on the Protocols and gets the implementations from :func:`build_departments`.
"""

from services.departments.base import DepartmentHttp, Payload
from services.departments.cases import CASE_DEPARTMENTS, CaseDepartment, CaseReceipt, HttpCaseDepartment
from services.departments.container import (
    DEFAULT_PORTS,
    DEPARTMENTS,
    DepartmentEndpoints,
    Departments,
    build_departments,
)
from services.departments.health import (
    HealthDepartment,
    HealthRisk,
    HealthTest,
    HealthTests,
    HttpHealthDepartment,
    RiskAreaVisit,
    VaccinationDose,
    Vaccinations,
)
from services.departments.liveness import HttpLiveness, Liveness, LivenessResult
from services.departments.miniprogram import HttpMiniProgramPlatform, MiniProgramPlatform, MiniProgramSession
from services.departments.registry import HttpRegistry, Registry, RegistryMatch
from services.departments.sms import HttpSmsGateway, Outbox, OutboxMessage, SmsGateway
from services.departments.socsec import (
    ContributionMonth,
    Contributions,
    HttpSocsecDepartment,
    SocsecCard,
    SocsecDepartment,
)
from services.departments.transport import HttpTransportDepartment, TransportCard, TransportDepartment, Trip, Trips

__all__ = [
    "CASE_DEPARTMENTS",
    "DEFAULT_PORTS",
    "DEPARTMENTS",
    "CaseDepartment",
    "CaseReceipt",
    "ContributionMonth",
    "Contributions",
    "DepartmentEndpoints",
    "DepartmentHttp",
    "Departments",
    "HealthDepartment",
    "HealthRisk",
    "HealthTest",
    "HealthTests",
    "HttpCaseDepartment",
    "HttpHealthDepartment",
    "HttpLiveness",
    "HttpMiniProgramPlatform",
    "HttpRegistry",
    "HttpSmsGateway",
    "HttpSocsecDepartment",
    "HttpTransportDepartment",
    "Liveness",
    "LivenessResult",
    "MiniProgramPlatform",
    "MiniProgramSession",
    "Outbox",
    "OutboxMessage",
    "Payload",
    "Registry",
    "RegistryMatch",
    "RiskAreaVisit",
    "SmsGateway",
    "SocsecCard",
    "SocsecDepartment",
    "TransportCard",
    "TransportDepartment",
    "Trip",
    "Trips",
    "VaccinationDose",
    "Vaccinations",
    "build_departments",
]
