"""Citizen identity: one account, OTP login, real-name levels, sessions and rotating tokens.

Other domains use identity through what this package exports (its port): the request's
:class:`Principal`, :class:`IdentityService` for accounts (``account_facts``, ``applicant``,
``id_number_of``, ``accounts_in_region``) and logins (``login_with_otp``), and the bulk
preparation of :mod:`identity.bulk` for load runs. Identity's tables and vault contexts are
its own.
"""

from identity.bulk import NewCitizen, SignedIn, insert_signed_in, issue_login_codes
from identity.controllers import AuthController, MeController
from identity.dependencies import provide_confirmed_principal, provide_identity, provide_principal
from identity.principal import Principal
from identity.repository import IdentityRepository
from identity.service import AccountFacts, Applicant, IdentityService, LoginChannel, OtpLogin, SecurityNotice
from identity.settings import IdentitySettings
from identity.tokens import AccessTokens

__all__ = [
    "AccessTokens",
    "AccountFacts",
    "Applicant",
    "AuthController",
    "IdentityRepository",
    "IdentityService",
    "IdentitySettings",
    "LoginChannel",
    "MeController",
    "NewCitizen",
    "OtpLogin",
    "Principal",
    "SecurityNotice",
    "SignedIn",
    "insert_signed_in",
    "issue_login_codes",
    "provide_confirmed_principal",
    "provide_identity",
    "provide_principal",
]
