"""Citizen identity: one account, OTP login, real-name levels, sessions and rotating tokens."""

from identity.controllers import AuthController, MeController
from identity.dependencies import provide_confirmed_principal, provide_identity, provide_principal
from identity.principal import Principal
from identity.repository import IdentityRepository
from identity.service import Applicant, IdentityService
from identity.settings import IdentitySettings
from identity.tokens import AccessTokens

__all__ = [
    "AccessTokens",
    "Applicant",
    "AuthController",
    "IdentityRepository",
    "IdentityService",
    "IdentitySettings",
    "MeController",
    "Principal",
    "provide_confirmed_principal",
    "provide_identity",
    "provide_principal",
]
