"""The WebAuthn settings are validated when the settings are loaded, naming the variable."""

from __future__ import annotations

import pytest

from bff.settings import SettingsError, load_settings


def test_defaults_serve_the_dev_console_on_localhost() -> None:
    staff = load_settings({}).staff
    assert staff.webauthn_required is True
    assert (staff.webauthn_rp_id, staff.webauthn_origins) == ("localhost", ("http://localhost:8000",))


def test_origins_are_a_comma_separated_list_within_the_rp_id() -> None:
    staff = load_settings(
        {
            "ONECITY_STAFF_WEBAUTHN_RP_ID": "staff.city.example",
            "ONECITY_STAFF_WEBAUTHN_ORIGINS": "https://staff.city.example, https://console.staff.city.example:8443",
            "ONECITY_STAFF_WEBAUTHN_REQUIRED": "false",
        }
    ).staff
    assert staff.webauthn_origins == ("https://staff.city.example", "https://console.staff.city.example:8443")
    assert staff.webauthn_required is False


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"ONECITY_STAFF_WEBAUTHN_ORIGINS": "https://evil.example"}, "ONECITY_STAFF_WEBAUTHN_ORIGINS"),
        ({"ONECITY_STAFF_WEBAUTHN_RP_ID": "city.example"}, "ONECITY_STAFF_WEBAUTHN_ORIGINS"),
        (
            {"ONECITY_STAFF_WEBAUTHN_RP_ID": "city.example", "ONECITY_STAFF_WEBAUTHN_ORIGINS": "http://city.example"},
            "ONECITY_STAFF_WEBAUTHN_ORIGINS",
        ),
        ({"ONECITY_STAFF_WEBAUTHN_ORIGINS": "http://localhost:8000/path"}, "ONECITY_STAFF_WEBAUTHN_ORIGINS"),
        ({"ONECITY_STAFF_WEBAUTHN_RP_ID": "Bad Host"}, "ONECITY_STAFF_WEBAUTHN_RP_ID"),
        ({"ONECITY_STAFF_WEBAUTHN_REQUIRED": "maybe"}, "ONECITY_STAFF_WEBAUTHN_REQUIRED"),
    ],
)
def test_bad_values_are_refused_naming_the_variable(environ: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        load_settings(environ)
