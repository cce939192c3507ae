"""Who a department call is about: the token's subject, if it is a valid ID number."""

from __future__ import annotations

from services.idnumber import valid_id_number
from services.simulators.base import SimulatorError
from services.tokens import VerifiedServiceToken

__all__ = ["citizen_of"]


def citizen_of(token: VerifiedServiceToken) -> str:
    """The citizen's ID number from the service token's ``sub``.

    Raises:
        SimulatorError: 404 when ``sub`` is not a valid ID number: a department has no records
            for it (and never learns the citizen from anywhere but the token).
    """
    if not valid_id_number(token.subject):
        raise SimulatorError(404, "unknown-citizen", "No such citizen", "The token subject is not a known ID number")
    return token.subject
