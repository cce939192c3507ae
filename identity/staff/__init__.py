"""Staff of the city (health officers; system administrators, security administrators and
auditors, three separate duties) and what they may do."""

from identity.staff.admin import StaffAdmin, StaffAdminError
from identity.staff.admin_controllers import StaffAdminController
from identity.staff.controllers import StaffAuthController
from identity.staff.errors import AuditorReadOnly, SeparationOfDuties
from identity.staff.guards import auditors_read_only, staff_roles
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
    separation_of_duties_violation,
)
from identity.staff.service import StaffService
from identity.staff.settings import StaffSettings

__all__ = [
    "STAFF_AUDIENCE",
    "AuditorReadOnly",
    "RegionLevel",
    "Role",
    "SeparationOfDuties",
    "StaffAdmin",
    "StaffAdminController",
    "StaffAdminError",
    "StaffAuthController",
    "StaffPrincipal",
    "StaffService",
    "StaffSettings",
    "auditors_read_only",
    "authenticate_staff",
    "can_act_on_citizen",
    "provide_staff_principal",
    "region_covers",
    "region_level",
    "separation_of_duties_violation",
    "staff_roles",
]
