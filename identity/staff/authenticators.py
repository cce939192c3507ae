"""WebAuthn (FIDO2) security keys of staff: the registration and sign-in ceremonies.

The cryptography is py_webauthn's (``webauthn`` on PyPI, maintained by Duo Labs): options,
attestation and assertion verification. What is ours:

- challenges: 32 random bytes, kept in Redis for ``webauthn_challenge_ttl_s`` and taken
  atomically, so each works once (a replayed response finds no challenge);
- attestation: ``none`` is requested and accepted (we trust the person who enrols, after
  password and SMS code or a security administrator's recovery, not a vendor's
  certificate chain); packed/TPM/etc. statements a key sends anyway are still verified;
- the signature counter: py_webauthn is told the stored count is 0 so that it verifies the
  signature first; then *we* compare. A counter that did not move forwards (when either
  side is non-zero) means a copy of the key exists: the credential is revoked on the spot
  and only a security administrator's recovery brings the member back. Keys that keep no
  counter (both sides 0, e.g. synced passkeys) cannot be checked this way.
"""

from __future__ import annotations

import secrets
import uuid
from typing import Any

from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    options_to_json_dict,
    parse_authentication_credential_json,
    parse_registration_credential_json,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from core.audit import AuditEvent, write_audit
from core.redis import Redis
from identity.staff.errors import (
    AuthenticatorAlreadyRegistered,
    AuthenticatorCloned,
    RegistrationFailed,
    SecondFactorFailed,
)
from identity.staff.metrics import AUTHENTICATOR_REGISTRATIONS
from identity.staff.repository import AuthenticatorRow, StaffRepository, StaffRow
from identity.staff.schemas import AuthenticatorRegistration, AuthenticatorView, WebAuthnOptions
from identity.staff.settings import StaffSettings

__all__ = ["WebAuthnCeremonies"]

_TRANSPORTS = {t.value: t for t in AuthenticatorTransport}
# Malformed input makes the parsers raise these besides their own exceptions.
_BAD_INPUT = (WebAuthnException, ValueError, TypeError, KeyError, AttributeError, IndexError, OverflowError)


def _descriptor(key: AuthenticatorRow) -> PublicKeyCredentialDescriptor:
    transports = [_TRANSPORTS[t] for t in key.transports if t in _TRANSPORTS]
    return PublicKeyCredentialDescriptor(id=key.credential_id, transports=transports or None)


def view_of(key: AuthenticatorRow) -> AuthenticatorView:
    """The public view of an authenticator row."""
    return AuthenticatorView(
        id=key.id,
        name=key.name,
        transports=list(key.transports),
        created_at=key.created_at,
        last_used_at=key.last_used_at,
    )


class WebAuthnCeremonies:
    """Registration and assertion checks against the stored credentials.

    Args:
        repository: SQL.
        redis: Single-use registration challenges.
        settings: Relying party id, origins, challenge lifetime.
    """

    def __init__(self, *, repository: StaffRepository, redis: Redis, settings: StaffSettings) -> None:
        self._repository = repository
        self._redis = redis
        self._settings = settings

    @staticmethod
    def _registration_key(staff_id: str) -> str:
        return f"oc:staff:wa:reg:{staff_id}"

    async def _take(self, key: str) -> bytes | None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.get(key)
            pipe.delete(key)
            value, _ = await pipe.execute()
        return value if isinstance(value, bytes) else None

    # registration -------------------------------------------------------------------------

    async def registration_options(self, member: StaffRow) -> WebAuthnOptions:
        """Options for ``navigator.credentials.create``; the challenge replaces any earlier one."""
        ttl = self._settings.webauthn_challenge_ttl_s
        challenge = secrets.token_bytes(32)
        existing = await self._repository.active_authenticators(member.id)
        options = generate_registration_options(
            rp_id=self._settings.webauthn_rp_id,
            rp_name=self._settings.webauthn_rp_name,
            user_name=member.username,
            user_id=uuid.UUID(member.id).bytes,
            user_display_name=member.display_name,
            challenge=challenge,
            timeout=ttl * 1000,
            attestation=AttestationConveyancePreference.NONE,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.DISCOURAGED,
                user_verification=UserVerificationRequirement.PREFERRED,
            ),
            exclude_credentials=[_descriptor(key) for key in existing],
        )
        await self._redis.set(self._registration_key(member.id), challenge, ex=ttl)
        return WebAuthnOptions(public_key=options_to_json_dict(options), expires_in=ttl)

    async def register(
        self, staff_id: str, request: AuthenticatorRegistration, *, actor_id: str, client_ip: str | None
    ) -> AuthenticatorView:
        """Verify an attestation against the member's outstanding challenge and store the key.

        Raises:
            RegistrationFailed: no (or a used) challenge, a response that does not verify, or
                a key registered already.
        """
        challenge = await self._take(self._registration_key(staff_id))
        if challenge is None:
            AUTHENTICATOR_REGISTRATIONS.labels("failure").inc()
            raise RegistrationFailed("The registration options expired or were used: ask for new ones")
        try:
            parsed = parse_registration_credential_json(request.credential)
            verified = verify_registration_response(
                credential=parsed,
                expected_challenge=challenge,
                expected_rp_id=self._settings.webauthn_rp_id,
                expected_origin=list(self._settings.webauthn_origins),
                require_user_presence=True,
            )
        except _BAD_INPUT:
            AUTHENTICATOR_REGISTRATIONS.labels("failure").inc()
            raise RegistrationFailed("The security key's registration did not verify") from None
        transports = [t.value for t in parsed.response.transports or []]
        try:
            async with self._repository.transaction() as tx:
                key = await self._repository.insert_authenticator(
                    tx,
                    staff_id=staff_id,
                    credential_id=verified.credential_id,
                    public_key=verified.credential_public_key,
                    sign_count=verified.sign_count,
                    transports=transports,
                    aaguid=verified.aaguid,
                    name=request.name,
                )
                await write_audit(
                    tx,
                    [
                        AuditEvent(
                            action="staff.authenticator.registered",
                            outcome="success",
                            actor_type="staff",
                            actor_id=actor_id,
                            subject_id=staff_id,
                            client_ip=client_ip,
                            details={"authenticator_id": key.id, "aaguid": verified.aaguid, "fmt": verified.fmt},
                        )
                    ],
                )
        except AuthenticatorAlreadyRegistered:
            AUTHENTICATOR_REGISTRATIONS.labels("failure").inc()
            raise
        AUTHENTICATOR_REGISTRATIONS.labels("success").inc()
        return view_of(key)

    # sign-in ------------------------------------------------------------------------------

    async def sign_in_options(self, staff_id: str) -> tuple[bytes, dict[str, Any]] | None:
        """A fresh challenge and the options for ``navigator.credentials.get``, or ``None``
        when the member has no active authenticator."""
        keys = await self._repository.active_authenticators(staff_id)
        if not keys:
            return None
        challenge = secrets.token_bytes(32)
        options = generate_authentication_options(
            rp_id=self._settings.webauthn_rp_id,
            challenge=challenge,
            timeout=self._settings.webauthn_challenge_ttl_s * 1000,
            allow_credentials=[_descriptor(key) for key in keys],
            user_verification=UserVerificationRequirement.PREFERRED,
        )
        return challenge, options_to_json_dict(options)

    async def verify_sign_in(
        self, staff_id: str, challenge: bytes, credential: dict[str, Any], *, client_ip: str | None
    ) -> str:
        """Check an assertion against ``challenge`` and the member's key; the key's id.

        Raises:
            SecondFactorFailed: not one of the member's active keys, or it does not verify.
            AuthenticatorCloned: the signature counter went backwards (the key is revoked).
        """
        try:
            parsed = parse_authentication_credential_json(credential)
        except _BAD_INPUT:
            raise SecondFactorFailed() from None
        stored_key = await self._repository.authenticator(staff_id, parsed.raw_id)
        if stored_key is None:
            raise SecondFactorFailed()
        try:
            verified = verify_authentication_response(
                credential=parsed,
                expected_challenge=challenge,
                expected_rp_id=self._settings.webauthn_rp_id,
                expected_origin=list(self._settings.webauthn_origins),
                credential_public_key=stored_key.public_key,
                # 0: let the library check the signature first; the counter is checked below.
                credential_current_sign_count=0,
            )
        except _BAD_INPUT:
            raise SecondFactorFailed() from None
        new, stored = verified.new_sign_count, stored_key.sign_count
        if (new > 0 or stored > 0) and new <= stored:
            async with self._repository.transaction() as tx:
                await self._repository.revoke_authenticators(tx, staff_id, "cloned", authenticator_id=stored_key.id)
                await write_audit(
                    tx,
                    [
                        AuditEvent(
                            action="staff.authenticator.cloned",
                            outcome="denied",
                            actor_type="anonymous",
                            subject_id=staff_id,
                            client_ip=client_ip,
                            details={"authenticator_id": stored_key.id, "stored_count": stored, "presented_count": new},
                        )
                    ],
                )
            raise AuthenticatorCloned()
        if not await self._repository.advance_sign_count(stored_key.id, stored, new):
            raise SecondFactorFailed()  # a concurrent sign-in used this counter value first
        return stored_key.id
