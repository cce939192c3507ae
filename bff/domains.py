"""Building each domain's service from the shared resources, once per process."""

from __future__ import annotations

from litestar.datastructures import State

from bff.resources import Resources
from bff.screens import DataAccessRepository, ScreenService
from codes import CodesService
from codes.schemas import HolderCodeType
from hall import (
    ENTRY_BUNDLE,
    ENTRY_RESUBMIT,
    ENTRY_SUBMIT,
    HallRepository,
    HallService,
    HallSettings,
    HallWorker,
    Handler,
    JobPayload,
)
from identity import AccessTokens, IdentityRepository, IdentityService, Principal
from identity.oidc import OidcProvider
from identity.revocation import RevocationSet, revocation_window_s
from identity.staff import StaffService
from identity.staff.passwords import Passwords
from identity.staff.repository import StaffRepository
from messages import (
    ENTRY_DELIVER,
    ENTRY_NOTICE,
    ENTRY_REEVALUATE,
    CodeStatusMessages,
    Delivery,
    MessageCentre,
    MessagesRepository,
    ReevaluationJobs,
    SecurityMessages,
)

__all__ = ["attach_domains", "hall_worker", "start_hall_worker"]


def attach_domains(state: State, resources: Resources) -> None:
    """Build every domain service and put it on the app state for dependency injection."""
    settings = resources.settings
    tokens = AccessTokens(resources.keys, settings.identity)
    state.access_tokens = tokens
    # Every kind of revocation (ended sessions, revoked partner tokens and grants, disabled
    # clients and staff) in one set, checked by identity, the OIDC endpoints, identity.partners
    # and identity.staff; kept as long as the longest-lived access token could still pass.
    state.revocations = RevocationSet(
        resources.redis,
        resources.pool,
        window_s=revocation_window_s(
            settings.identity.access_token_ttl_s,
            settings.oidc.access_token_ttl_s,
            settings.oidc.client_token_ttl_s,
            settings.staff.token_ttl_s,
            clock_skew_s=settings.identity.clock_skew_s,
        ),
        skew_s=settings.identity.clock_skew_s,
    )
    resources.tasks.extend(state.revocations.background_tasks())
    state.identity = IdentityService(
        repository=IdentityRepository(resources.pool),
        redis=resources.redis,
        vault=resources.vault,
        tokens=tokens,
        departments=resources.departments,
        settings=settings.identity,
        revocations=state.revocations,
    )
    assert resources.audit is not None
    state.oidc = OidcProvider(
        pool=resources.pool,
        redis=resources.redis,
        vault=resources.vault,
        keys=resources.keys,
        tokens=tokens,
        identity=state.identity,
        settings=settings.oidc,
        issuer=settings.identity.issuer,
        revocations=state.revocations,
        audit=resources.audit,
    )
    state.staff = StaffService(
        repository=StaffRepository(resources.pool),
        redis=resources.redis,
        vault=resources.vault,
        tokens=tokens,
        sms=resources.departments.sms,
        passwords=Passwords.from_settings(settings.staff),
        settings=settings.staff,
    )
    assert resources.fanout is not None
    # Codes read department data through the resilient layer (deadlines, breakers, retries,
    # coalescing, audited reads); on failure it raises and the codes domain falls back to the
    # last known decision, so it does not audit the reads a second time.
    state.codes = CodesService(
        pool=resources.pool,
        redis=resources.redis,
        vault=resources.vault,
        identity=state.identity,
        keys=resources.keys,
        health=resources.fanout.health,
        transport=resources.fanout.transport,
        socsec=resources.fanout.socsec,
        settings=settings.codes,
        issuer=settings.city,
        audit=resources.audit,
        audit_department_reads=False,
        read_pool=resources.read_pool,
    )
    resources.tasks.extend(state.codes.background_tasks())

    async def end_old_identity(principal: Principal, grant_ids: list[str]) -> None:
        # After an identity correction the live codes of the old identity stop at once
        # (identity cannot import codes; it revokes the sessions and partner grants itself).
        for kind in HolderCodeType:
            await state.codes.issuing.revoke_all(principal, kind)

    state.identity.on_identity_corrected.append(end_old_identity)
    state.screens = ScreenService(
        departments=resources.fanout,
        identity=state.identity,
        repository=DataAccessRepository(resources.read_pool or resources.pool),
        hasher=resources.vault,
        codes_summary=state.codes.summary,
        client_names=state.oidc.client_names,
    )
    messages_repository = MessagesRepository(resources.pool)
    state.messages = MessageCentre(
        repository=messages_repository,
        redis=resources.redis,
        vault=resources.vault,
        settings=settings.messages,
    )
    resources.tasks.extend(state.messages.background_tasks())
    # Identity cannot import the message centre: its security events reach it through hooks.
    security = SecurityMessages(state.messages)
    state.identity.on_security_event.append(security.notice)
    state.identity.after_security_events.append(security.committed)
    state.codes.status.on_health_status.append(CodeStatusMessages(state.messages, messages_repository).observed)
    state.messages.delivery = Delivery(
        centre=state.messages,
        repository=messages_repository,
        identity=state.identity,
        push=resources.departments.push,
        sms=resources.departments.sms,
    )
    state.hall = HallService(
        repository=HallRepository(resources.pool, read_pool=resources.read_pool),
        vault=resources.vault,
        identity=state.identity,
        cases=resources.departments.cases,
        socsec=resources.departments.socsec,
        settings=settings.hall,
        allow_simulate=settings.env != "prod",
        messages=state.messages,
    )


async def start_hall_worker(state: State, resources: Resources) -> HallWorker | None:
    """Start this process's hall job worker unless ``ONECITY_HALL_WORKER`` is off (and, unless
    ``ONECITY_CODES_REEVALUATE_INTERVAL_S`` is 0, make sure the health re-evaluation is scheduled)."""
    settings = resources.settings
    if not settings.hall.worker or not settings.database.url:
        return None
    reevaluation = None
    if settings.codes.reevaluate_interval_s > 0:
        reevaluation = ReevaluationJobs(
            state.codes.reevaluation,
            MessagesRepository(resources.pool),
            interval_s=settings.codes.reevaluate_interval_s,
        )
    state.reevaluation_jobs = reevaluation
    worker = hall_worker(state.hall, settings.database.url, settings.hall, state.messages.delivery, reevaluation)
    await worker.start()
    if reevaluation is not None:
        await reevaluation.schedule()
    return worker


def hall_worker(
    hall: HallService,
    dsn: str,
    settings: HallSettings,
    delivery: Delivery | None = None,
    reevaluation: ReevaluationJobs | None = None,
) -> HallWorker:
    """A (not yet started) worker running the hall's jobs with ``hall`` (and the message
    centre's push deliveries and notice fan-outs, and the health re-evaluation, which ride the
    same queue)."""

    async def submit(payload: JobPayload, attempts: int) -> None:
        await hall.deliver(payload, attempts, resubmission=False)

    async def resubmit(payload: JobPayload, attempts: int) -> None:
        await hall.deliver(payload, attempts, resubmission=True)

    handlers: dict[str, Handler] = {ENTRY_SUBMIT: submit, ENTRY_RESUBMIT: resubmit, ENTRY_BUNDLE: hall.advance_bundle}
    if delivery is not None:
        handlers[ENTRY_DELIVER] = delivery.deliver
        handlers[ENTRY_NOTICE] = delivery.fan_out
    if reevaluation is not None:
        handlers[ENTRY_REEVALUATE] = reevaluation.run
    return HallWorker(dsn, settings, handlers)
