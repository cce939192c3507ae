"""The one ranking of identity levels and the principal that applies it (codes, hall, screens
and identity all ask :class:`identity.principal.Principal`)."""

from __future__ import annotations

import msgspec
import pytest

from codes.settings import CodesSettings
from core.crypto import DecryptionError, Vault
from core.errors import InsufficientLevel
from core.levels import LEVELS, level_rank, meets_level
from identity.errors import ReverificationRequired
from identity.pii import Pii
from identity.principal import Principal
from identity.tokens import AccessClaims
from services.fanout import DepartmentPolicy


def _principal(acr: str, *, reverify: bool = False) -> Principal:
    claims = AccessClaims(
        iss="https://city.example",
        aud="onecity-app",
        sub="account-1",
        iat=0,
        exp=600,
        jti="j",
        client_id="onecity-app",
        sid="session-1",
        acr=acr,
        reverify=reverify,
    )
    return Principal(claims)


def test_levels_rank_lowest_first() -> None:
    assert LEVELS == ("L2", "L3", "L4")
    assert [level_rank(level) for level in LEVELS] == [2, 3, 4]
    assert level_rank("L1") == 0 and level_rank("") == 0  # not a level: below every level


@pytest.mark.parametrize(
    ("level", "required", "meets"),
    [
        ("L2", "L2", True),
        ("L2", "L3", False),
        ("L3", "L3", True),
        ("L4", "L3", True),
        ("L3", "L4", False),
        ("L9", "L2", False),
    ],
)
def test_meets_level(level: str, required: str, meets: bool) -> None:
    assert meets_level(level, required) is meets
    assert _principal(level).has_level(required) is meets


def test_an_unknown_required_level_is_a_programming_error() -> None:
    with pytest.raises(KeyError):
        meets_level("L3", "L5")


def test_require_level_raises_the_rfc_9470_challenge() -> None:
    _principal("L4").require_level("L3")
    with pytest.raises(InsufficientLevel) as raised:
        _principal("L2").require_level("L3")
    assert raised.value.headers["WWW-Authenticate"] == (
        'Bearer error="insufficient_user_authentication", acr_values="L3"'
    )
    assert raised.value.extensions == {"required_level": "L3"}


def test_a_held_back_session_is_refused_until_it_reverifies() -> None:
    _principal("L3").require_confirmed()
    with pytest.raises(ReverificationRequired):
        _principal("L3", reverify=True).require_confirmed()


def test_settings_accept_only_levels() -> None:
    # Codes' and the departments' level settings are the same type as the token's acr.
    assert msgspec.convert({"health_level": "L4"}, CodesSettings).health_level == "L4"
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"health_level": "L5"}, CodesSettings)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"required_level": "L1"}, DepartmentPolicy)


def test_pii_fields_are_bound_to_their_kind(vault: Vault) -> None:
    pii = Pii(vault)
    blob = pii.phone.seal("13800000001")
    assert pii.phone.open(blob) == "13800000001"
    with pytest.raises(DecryptionError):  # a phone cannot be read as a name
        pii.name.open(blob)
    assert pii.phone.index("13800000001") != pii.id_number.index("13800000001")
    stored = pii.account("13800000001", "张三", "110101199003070011")
    assert stored.region_code == "110101"
    assert pii.name.open(stored.name_enc or b"") == "张三"
    assert pii.account("13800000002").id_number_index is None
