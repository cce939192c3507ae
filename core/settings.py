"""How every settings section is validated: msgspec constraints, and the variable named on refusal.

A domain's settings are a frozen msgspec Struct. Each number carries its bounds in its type,
with the aliases below for the common cases (a lifetime is at least one second, a size at least
one), so a negative or zero value in the environment is refused by ``msgspec.convert`` when the
settings are loaded, before anything starts::

    class IdentitySettings(msgspec.Struct, frozen=True, kw_only=True):
        access_token_ttl_s: Seconds = 600
        otp_max_attempts: Count = 5
        clock_skew_s: Annotated[int, msgspec.Meta(ge=0, le=300)] = 30

A rule that spans fields goes in ``__post_init__`` and raises :func:`refuse` with the field
it blames. The loader (``bff.settings.load_settings``) turns either refusal into a
:class:`SettingsError` that names the environment variable (:func:`name_variable`), e.g.
``ONECITY_ACCESS_TOKEN_TTL_S: Expected `int` >= 1``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated

import msgspec

from core.errors import OperatorError

__all__ = [
    "Count",
    "Days",
    "FractionalSeconds",
    "Milliseconds",
    "NonNegative",
    "Port",
    "Seconds",
    "SettingsError",
    "name_variable",
    "refuse",
]


class SettingsError(OperatorError, ValueError):
    """The environment does not describe a usable configuration (message names the variable)."""


#: A lifetime, interval or timeout in whole seconds.
Seconds = Annotated[int, msgspec.Meta(ge=1)]
#: A lifetime or interval in seconds that may be fractional.
FractionalSeconds = Annotated[float, msgspec.Meta(gt=0)]
#: A deadline or timeout in milliseconds.
Milliseconds = Annotated[int, msgspec.Meta(ge=1)]
#: A retention in days (at most ten years).
Days = Annotated[int, msgspec.Meta(ge=1, le=3650)]
#: A size, limit or pool bound of which at least one is needed.
Count = Annotated[int, msgspec.Meta(ge=1)]
#: A size or count where 0 means "none" (a cache of zero entries, no worker processes).
NonNegative = Annotated[int, msgspec.Meta(ge=0)]
#: A TCP port; 0 lets the system choose.
Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]

_AT = re.compile(r"^(?P<head>.*) - at `\$\.(?P<path>[A-Za-z0-9_.]+)`$", re.DOTALL)


def refuse(field: str, requirement: str) -> ValueError:
    """The refusal a settings Struct's ``__post_init__`` raises for a rule across fields.

    msgspec reports it at the section's path; :func:`name_variable` then finds ``field`` in
    that section and names its variable.

    Args:
        field: The field the rule blames, as named in the Struct.
        requirement: What the value must be, e.g. ``"must be at least retry_base_s"``.

    Returns:
        The exception to raise: ``raise refuse("retry_max_s", "must be at least retry_base_s")``.
    """
    return ValueError(f"{field} {requirement}")


def name_variable(message: str, environment: Mapping[str, str]) -> str:
    """Rewrite a msgspec validation message to name the environment variable at fault.

    Args:
        message: ``str()`` of the ``msgspec.ValidationError`` from converting the settings,
            e.g. ``Expected `int` >= 1 - at `$.identity.access_token_ttl_s``` or, from
            :func:`refuse`, ``code_ttl_s must be at most 60 - at `$.oidc```.
        environment: Variable name → dotted settings path, as ``bff.settings.ENVIRONMENT``.

    Returns:
        ``ONECITY_…: Expected `int` >= 1`` or ``ONECITY_… must be at most 60``; the message
        unchanged when no variable fills the path.
    """
    match = _AT.match(message)
    if match is None:
        return message
    head, path = match["head"], match["path"]
    by_path = {settings_path: name for name, settings_path in environment.items()}
    if path in by_path:
        return f"{by_path[path]}: {head}"
    field, _, rest = head.partition(" ")
    if f"{path}.{field}" in by_path:
        return f"{by_path[f'{path}.{field}']} {rest}".rstrip()
    if "ONECITY_" in head:  # the rule named its variable itself
        return head
    return message
