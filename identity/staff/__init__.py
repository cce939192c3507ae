"""Staff of the city (health officers, auditors, administrators) and what they may do."""

from identity.staff.permissions import (
    STAFF_AUDIENCE,
    Role,
    StaffPrincipal,
    authenticate_staff,
    provide_staff_principal,
    region_covers,
)

__all__ = [
    "STAFF_AUDIENCE",
    "Role",
    "StaffPrincipal",
    "authenticate_staff",
    "provide_staff_principal",
    "region_covers",
]
