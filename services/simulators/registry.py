"""Population registry simulator (``aud: registry``): does this name go with this ID number?"""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Litestar, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from services.simulators import demo
from services.simulators.base import SimulatorError, SimulatorState, build_simulator
from services.tokens import JwksSource, VerifiedServiceToken

__all__ = ["create_app"]


class VerifyBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """``POST /v1/verify`` request."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    id_number: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]


class MatchBody(msgspec.Struct, frozen=True, kw_only=True):
    """``POST /v1/verify`` answer."""

    match: bool


def create_app(jwks: JwksSource, *, dev_mode: bool = True) -> Litestar:
    """Build the registry simulator.

    Args:
        jwks: The BFF's service-token keys.
        dev_mode: Unused here; every simulator factory takes it.
    """

    @post("/v1/verify", status_code=200, sync_to_thread=False)
    def verify(token: NamedDependency[VerifiedServiceToken], data: JSONBody[VerifyBody]) -> MatchBody:
        # The token names whom the caller is verifying; a body about someone else is refused.
        if token.subject != data.id_number:
            raise SimulatorError(403, "subject-mismatch", "Not allowed", "The body does not match the token subject")
        valid = demo.valid_id_number(data.id_number)
        return MatchBody(match=valid and data.name == demo.registry_name(data.id_number))

    return build_simulator(SimulatorState("registry", jwks, dev_mode=dev_mode), [verify])
