import base64
import secrets

import pytest

from bff.settings import Settings, SettingsError, load_settings


def test_defaults_without_environment() -> None:
    settings = load_settings({})
    assert settings.database.url is None
    assert settings.redis.url is None
    assert settings.server.port == 8000
    assert settings.departments.health.endswith(":8101")
    with pytest.raises(SettingsError, match="ONECITY_MASTER_KEY"):
        settings.require_master_key()


def test_reads_typed_values_and_nested_sections() -> None:
    key = secrets.token_bytes(32)
    settings = load_settings(
        {
            "ONECITY_DATABASE_URL": "postgresql://db/x",
            "ONECITY_PORT": "9001",
            "ONECITY_CORS_ORIGINS": "https://app.example, https://m.example",
            "ONECITY_HEALTH_URL": "http://health.internal:80",
            "ONECITY_MASTER_KEY": base64.urlsafe_b64encode(key).decode().rstrip("="),
            "UNRELATED": "ignored",
        }
    )
    assert isinstance(settings, Settings)
    assert settings.database.url == "postgresql://db/x"
    assert settings.server.port == 9001
    assert settings.server.cors_origins == ("https://app.example", "https://m.example")
    assert settings.departments.health == "http://health.internal:80"
    assert settings.require_master_key() == key
    assert "***" in repr(settings) and base64.urlsafe_b64encode(key).decode()[:10] not in repr(settings)


def test_a_bad_value_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="ONECITY_PORT"):
        load_settings({"ONECITY_PORT": "eighty"})


def test_a_bad_master_key_names_the_variable_not_the_value() -> None:
    with pytest.raises(SettingsError, match="ONECITY_MASTER_KEY") as info:
        load_settings({"ONECITY_MASTER_KEY": "dG9vLXNob3J0"})
    assert "dG9vLXNob3J0" not in str(info.value)


def test_every_environment_variable_is_documented() -> None:
    from pathlib import Path

    from bff.settings import ENVIRONMENT

    root = Path(__file__).resolve().parents[3]
    text = (root / "README.md").read_text() + "".join(p.read_text() for p in (root / "docs").glob("*.md"))
    missing = [name for name in ENVIRONMENT if name not in text]
    assert not missing, f"not in README.md or docs/: {missing}"


def test_topology_settings_parse_and_default() -> None:
    settings = load_settings({"ONECITY_DATABASE_URL": "postgresql://pgbouncer:6432/x"})
    assert settings.database.statement_cache_size == 100
    assert settings.database.migration_url == "postgresql://pgbouncer:6432/x"
    assert settings.database.read_url is None
    assert settings.server.trusted_proxies == ()
    settings = load_settings(
        {
            "ONECITY_DATABASE_URL": "postgresql://pgbouncer:6432/x",
            "ONECITY_DB_STATEMENT_CACHE_SIZE": "0",
            "ONECITY_MIGRATE_DATABASE_URL": "postgresql://primary:5432/x",
            "ONECITY_DATABASE_READ_URL": "postgresql://replica:5432/x",
            "ONECITY_TRUSTED_PROXIES": "10.0.0.0/8, 2001:db8::/32",
        }
    )
    assert settings.database.statement_cache_size == 0
    assert settings.database.migration_url == "postgresql://primary:5432/x"
    assert settings.database.read_url == "postgresql://replica:5432/x"
    assert settings.server.trusted_proxies == ("10.0.0.0/8", "2001:db8::/32")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ONECITY_DB_STATEMENT_CACHE_SIZE", "-1"),
        ("ONECITY_DB_STATEMENT_CACHE_SIZE", "lots"),
        ("ONECITY_TRUSTED_PROXIES", "10.0.0.0/8,not-a-network"),
        ("ONECITY_TRUSTED_PROXIES", "10.0.0.0/33"),
    ],
)
def test_topology_settings_reject_bad_values(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load_settings({name: value})


def _default_of(path: str) -> object:
    value: object = Settings()
    for part in path.split("."):
        value = getattr(value, part)
    return value


def _numeric_variables() -> list[str]:
    from bff.settings import ENVIRONMENT

    return [
        name
        for name, path in ENVIRONMENT.items()
        if isinstance(_default_of(path), int | float) and not isinstance(_default_of(path), bool)
    ]


@pytest.mark.parametrize("name", _numeric_variables())
def test_a_negative_number_is_refused_at_start_naming_the_variable(name: str) -> None:
    with pytest.raises(SettingsError, match=rf"^{name}\b"):
        load_settings({name: "-1"})


@pytest.mark.parametrize(
    ("name", "value"),
    [("ONECITY_DB_POOL_MAX", "0"), ("ONECITY_MAX_BODY_BYTES", "0"), ("ONECITY_PEAK_LOOP_LAG_MS", "0")],
)
def test_a_size_or_lifetime_of_zero_is_refused(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=rf"^{name}: Expected `int` >= 1$"):
        load_settings({name: value})


def test_a_rule_across_fields_names_the_variable_of_the_field_it_blames() -> None:
    with pytest.raises(SettingsError, match=r"^ONECITY_OIDC_CODE_TTL_S must be between 1 and 60 seconds$"):
        load_settings({"ONECITY_OIDC_CODE_TTL_S": "61"})
    with pytest.raises(SettingsError, match=r"^ONECITY_TRUSTED_PROXIES holds '10\.0\.0\.0/33', which is not"):
        load_settings({"ONECITY_TRUSTED_PROXIES": "10.0.0.0/33"})
