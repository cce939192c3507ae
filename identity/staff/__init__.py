"""Staff of the city (health officers, auditors, administrators) and what they may do."""

from identity.staff.admin import StaffAdmin, StaffAdminError
from identity.staff.controllers import StaffAuthController
from identity.staff.permissions import (
    STAFF_AUDIENCE,
    RegionLevel,
    Role,
    StaffPrincipal,
    authenticate_staff,
    can_act_on_citizen,
    provide_staff_principal,
    region_covers,
    region_level,
)
from identity.staff.service import StaffService
from identity.staff.settings import StaffSettings

__all__ = [
    "STAFF_AUDIENCE",
    "RegionLevel",
    "Role",
    "StaffAdmin",
    "StaffAdminError",
    "StaffAuthController",
    "StaffPrincipal",
    "StaffService",
    "StaffSettings",
    "authenticate_staff",
    "can_act_on_citizen",
    "provide_staff_principal",
    "region_covers",
    "region_level",
]
