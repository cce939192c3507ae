"""Pure rules of the OIDC provider: scopes, redirect URIs, PKCE, hashes, subjects, credentials."""

from __future__ import annotations

import base64
import secrets

import pytest
from authlib.oidc.core.util import create_half_hash

from bff.settings import SettingsError, load_settings
from core.crypto import Vault
from identity.oidc.authorization import RedirectableError
from identity.oidc.clients import ClientCredentials, SecretHasher, parse_client_jwks
from identity.oidc.errors import OAuthError
from identity.oidc.grants import _pkce_ok
from identity.oidc.id_tokens import at_hash
from identity.oidc.pages import consent_page, error_page, login_page
from identity.oidc.pairwise import PairwiseSubjects
from identity.oidc.scopes import CITIZEN_SCOPES, PARTNER_SCOPES, parse_scope
from identity.oidc.uris import redirect_uri_problem, with_params


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, ()),
        ("", ()),
        ("openid", ("openid",)),
        ("openid  profile openid", ("openid", "profile")),
        ('openid "quoted"', None),
        ("openid\tprofile", None),
        ("openid\x7f", None),
        (" ".join(f"s{i}" for i in range(40)), None),
    ],
)
def test_parse_scope(text: str | None, expected: tuple[str, ...] | None) -> None:
    assert parse_scope(text) == expected


def test_scope_kinds_do_not_overlap() -> None:
    assert not CITIZEN_SCOPES & PARTNER_SCOPES
    assert {"openid", "profile", "phone", "identity.level"} <= CITIZEN_SCOPES
    assert {"codes:verify", "venues:write"} <= PARTNER_SCOPES


@pytest.mark.parametrize(
    ("uri", "ok"),
    [
        ("https://partner.example/cb", True),
        ("https://partner.example/cb?tenant=1", True),
        ("http://127.0.0.1:9000/callback", True),
        ("http://localhost:3000/cb", True),
        ("http://[::1]:8080/cb", True),
        ("com.metro.app:/oauth/cb", True),
        ("http://partner.example/cb", False),
        ("https://partner.example/cb#x", False),
        ("https://*.partner.example/cb", False),
        ("https://user@partner.example/cb", False),
        ("https:///cb", False),
        ("javascript:alert(1)", False),
        ("data:text/html,hi", False),
        ("myapp:/cb", False),
        ("https://partner.example/c b", False),
        ("https://partner.example/" + "a" * 600, False),
    ],
)
def test_redirect_uri_registration(uri: str, ok: bool) -> None:
    assert (redirect_uri_problem(uri) is None) is ok


def test_with_params_keeps_the_existing_query() -> None:
    url = with_params("https://p.example/cb?tenant=a%20b", {"code": "c/d", "state": None, "iss": "https://x"})
    assert url == "https://p.example/cb?tenant=a+b&code=c%2Fd&iss=https%3A%2F%2Fx"


def test_pkce_s256_matches_rfc_7636_appendix_b() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert _pkce_ok(verifier, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
    assert not _pkce_ok(verifier[:-1] + "l", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
    assert not _pkce_ok("short", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
    assert not _pkce_ok("a" * 42 + "!", "x" * 43)  # outside the unreserved set


def test_at_hash_is_what_oidc_clients_compute_for_eddsa() -> None:
    token = secrets.token_urlsafe(64)
    assert at_hash(token) == create_half_hash(token, "EdDSA").decode()


def test_pairwise_subjects() -> None:
    vault = Vault(secrets.token_bytes(32))
    subjects = PairwiseSubjects(vault)
    account = "8f0e3c1a-0000-4000-8000-000000000001"
    assert subjects.subject("hospital", account) == subjects.subject("hospital", account)
    assert subjects.subject("hospital", account) != subjects.subject("library", account)
    assert subjects.subject("hospital", account) != PairwiseSubjects(Vault(secrets.token_bytes(32))).subject(
        "hospital", account
    )
    assert account not in subjects.subject("hospital", account) and len(subjects.subject("x", account)) == 43


def test_secret_hashes_are_keyed_and_bound_to_the_client() -> None:
    vault = Vault(secrets.token_bytes(32))
    hasher = SecretHasher(vault)
    stored = hasher.hash("hospital", "s3cret")
    assert hasher.matches("hospital", "s3cret", stored)
    assert not hasher.matches("library", "s3cret", stored)
    assert not hasher.matches("hospital", "s3cret", None)
    assert SecretHasher(Vault(secrets.token_bytes(32))).hash("hospital", "s3cret") != stored


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_client_credentials_parsing() -> None:
    creds = ClientCredentials.from_request(
        _basic("my%20client", "p%3Aw"), client_id=None, client_secret=None, assertion_type=None, assertion=None
    )
    assert creds.basic == ("my client", "p:w") and creds.method == "client_secret_basic"
    post = ClientCredentials.from_request(None, client_id="c", client_secret="s", assertion_type=None, assertion=None)
    assert post.method == "client_secret_post"
    public = ClientCredentials.from_request(None, client_id="c", client_secret="", assertion_type=None, assertion=None)
    assert public.method == "none"
    both = ClientCredentials.from_request(
        _basic("c", "s"), client_id=None, client_secret="s", assertion_type=None, assertion=None
    )
    with pytest.raises(OAuthError) as info:
        _ = both.method
    assert info.value.error == "invalid_request"
    for header in ("Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode(), _basic("", "x")):
        with pytest.raises(OAuthError) as bad:
            ClientCredentials.from_request(
                header, client_id=None, client_secret=None, assertion_type=None, assertion=None
            )
        assert bad.value.error == "invalid_client" and bad.value.status == 401


def test_client_jwks_must_be_public_keys() -> None:
    with pytest.raises(ValueError, match="public keys only"):
        parse_client_jwks({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "a" * 43, "d": "b" * 43}]})
    with pytest.raises(ValueError, match="supported key types"):
        parse_client_jwks({"keys": [{"kty": "oct"}]})
    with pytest.raises(ValueError, match="non-empty"):
        parse_client_jwks({"keys": []})


def test_code_lifetime_is_capped_at_sixty_seconds() -> None:
    assert load_settings({"ONECITY_OIDC_CODE_TTL_S": "30"}).oidc.code_ttl_s == 30
    with pytest.raises(SettingsError):
        load_settings({"ONECITY_OIDC_CODE_TTL_S": "120"})


def test_pages_escape_everything() -> None:
    evil = '<script>alert("x")</script>'
    for html in (
        login_page(client_name=evil, tx=evil, action="/oauth/authorize/otp", error=evil, phone=evil),
        consent_page(client_name=evil, tx="t", action="/a", scopes=[(evil, evil, evil)], offer_full_name=True),
        error_page(evil),
    ):
        assert "<script>" not in html and "&lt;script&gt;" in html


def test_redirectable_error_carries_the_code() -> None:
    error = RedirectableError("invalid_scope", "nope")
    assert error.error == "invalid_scope" and "nope" in str(error)
