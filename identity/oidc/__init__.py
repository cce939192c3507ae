"""OpenID Connect provider: partners and mini-programs sign citizens in with their OneCity account."""

from identity.oidc.admin import ClientAdmin, ClientAdminError
from identity.oidc.clients import Client, ClientRegistry
from identity.oidc.controllers import AuthorizeController, ConsentController, DiscoveryController, OAuthController
from identity.oidc.dependencies import provide_oidc
from identity.oidc.errors import OAuthError
from identity.oidc.seed import seed_demo_partner
from identity.oidc.service import OidcProvider
from identity.oidc.settings import OidcSettings

__all__ = [
    "AuthorizeController",
    "Client",
    "ClientAdmin",
    "ClientAdminError",
    "ClientRegistry",
    "ConsentController",
    "DiscoveryController",
    "OAuthController",
    "OAuthError",
    "OidcProvider",
    "OidcSettings",
    "provide_oidc",
    "seed_demo_partner",
]
