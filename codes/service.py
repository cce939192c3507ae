"""The codes domain assembled: one object the app builds once per process and injects.

Each job lives in its own module (issuing, status, online_verification, scanlog, overrides,
venues, ride_devices, rule_versions, jobs); :class:`CodesService` only wires them to the shared
resources and starts their background work (the retention loop). Controllers receive the job
services themselves (:mod:`codes.dependencies`), not this object.
"""

from __future__ import annotations

import asyncio
import contextlib

import msgspec
from redis.exceptions import RedisError

from codes.holders import Holders
from codes.issuing import Issuer
from codes.jobs import RetentionJob
from codes.live import LiveCodes
from codes.online_verification import OnlineVerifier
from codes.overrides import Overrides
from codes.partner_cache import PartnerCache
from codes.pseudonym import Pseudonymizer
from codes.reevaluation import HealthReevaluation
from codes.repository import CodesRepository
from codes.ride_check import RideLogChecker
from codes.ride_devices import Rides
from codes.rule_versions import RuleBook
from codes.scanlog import ScanLog
from codes.schemas import CodeStatus
from codes.settings import CodesSettings
from codes.status import SharedReads, StatusResolver
from codes.venues import Venues
from core.audit import AuditBatcher
from core.crypto import Vault
from core.db import Pool
from core.keys import KeyManager
from core.redis import Redis
from identity import IdentityService
from identity.principal import Principal
from services.departments.health import HealthDepartment
from services.departments.socsec import SocsecDepartment
from services.departments.transport import TransportDepartment

__all__ = ["CodesService"]

_SUMMARY_DECODER = msgspec.json.Decoder(list[CodeStatus])


class CodesService:
    """Every part of the codes domain.

    Args:
        pool: PostgreSQL.
        read_pool: A read replica for check-in lists (``ONECITY_DATABASE_READ_URL``).
        redis: Redis.
        vault: Master-key vault (pseudonym keys).
        identity: The identity domain: the facts of a code's holder (level, region, masked name,
            ID number for department calls).
        keys: The process's key manager.
        health: Health department (a Protocol: raw client or a resilient layer).
        transport: Transport department.
        socsec: Social-security department.
        settings: The codes settings.
        issuer: The city's id, the ``iss`` of codes.
        audit: The app's batched audit writer (department reads, revocations, certificates);
            ``None`` writes no batched audit events (CLI use).
        audit_department_reads: Whether the status resolver audits its department reads
            itself; turn it off when the department clients audit every read already (the
            resilient layer of ``services.fanout`` does).

    Attributes:
        issuing: Citizens' codes, overview, images, revocation.
        verification: Partners' online verification.
        overrides: Staff health overrides.
        venues: Venues, posters, check-ins, exposure queries.
        rides: Offline ride devices and validator logs.
        rules: Health rule versions.
        scan_log: The group-committed scan log.
        retention: The retention job.
        reevaluation: The periodic re-evaluation of current health-code holders (run as jobs
            on the hall's queue, see :mod:`messages.reevaluation`).
    """

    def __init__(
        self,
        *,
        pool: Pool,
        redis: Redis,
        vault: Vault,
        identity: IdentityService,
        keys: KeyManager,
        health: HealthDepartment,
        transport: TransportDepartment,
        socsec: SocsecDepartment,
        settings: CodesSettings,
        issuer: str,
        audit: AuditBatcher | None = None,
        audit_department_reads: bool = True,
        read_pool: Pool | None = None,
    ) -> None:
        self.settings = settings
        self.repository = CodesRepository(pool, read_pool=read_pool)
        self.audit = audit
        self.live = LiveCodes(redis, holder_ttl_s=settings.holder_cache_ttl_s, skew_s=settings.clock_skew_s)
        self.rules = RuleBook(self.repository, refresh_s=settings.rules_refresh_s)
        self.holders = Holders(identity=identity, repository=self.repository, pseudonyms=Pseudonymizer(vault))
        self.status = StatusResolver(
            health=health,
            transport=transport,
            socsec=socsec,
            repository=self.repository,
            rules=self.rules,
            fresh_s=settings.status_fresh_s,
            audit=audit,
            audit_reads=audit_department_reads,
        )
        self.scan_log = ScanLog(self.repository, max_batch=settings.scan_log_max_batch)
        self.issuing = Issuer(
            keys=keys,
            holders=self.holders,
            status=self.status,
            live=self.live,
            settings=settings,
            issuer=issuer,
            audit=self.audit,
        )
        self.verification = OnlineVerifier(
            keys=keys,
            live=self.live,
            scan_log=self.scan_log,
            holders=self.holders,
            status=self.status,
            repository=self.repository,
            skew_s=settings.clock_skew_s,
            per_second=settings.verify_per_second,
        )
        self.overrides = Overrides(repository=self.repository, holders=self.holders, status=self.status, live=self.live)
        self.venues = Venues(
            repository=self.repository,
            keys=keys,
            holders=self.holders,
            live=self.live,
            verifier=self.verification,
            issuer=issuer,
            skew_s=settings.clock_skew_s,
            checkin_repeat_s=settings.checkin_repeat_s,
            checkins_per_hour=settings.checkins_per_hour,
            exposure_max_days=settings.exposure_max_days,
        )
        self.rides = Rides(
            repository=self.repository,
            keys=keys,
            holders=self.holders,
            status=self.status,
            live=self.live,
            verifier=self.verification,
            settings=settings,
            issuer=issuer,
            checker=RideLogChecker(settings.ride_verify_processes),
            audit=self.audit,
        )
        self.retention = RetentionJob(self.repository, settings)
        self.reevaluation = HealthReevaluation(
            repository=self.repository, holders=self.holders, status=self.status, live=self.live, settings=settings
        )
        # Verified partner tokens (see codes.dependencies.PartnerCache), per app instance.
        self.partners = PartnerCache(ttl_s=settings.partner_token_cache_s)
        self._keys = keys
        self._redis = redis

    async def summary(self, principal: Principal, reads: SharedReads | None = None) -> list[CodeStatus]:
        """The home screen's ``codes``: each holder code type, whether the citizen may show
        it, its current status, and for health the reasons and ``rv``.

        ``reads`` are the home screen's own department reads: the statuses are decided from
        them, not from a second call under the code's purpose (:class:`~codes.status.SharedReads`).

        Deciding every status reads department data and writes the decisions, several round
        trips per code type, and the home screen is the most-viewed page of the app; so the
        summary is kept in Redis for ``summary_cache_s`` per citizen and level. It is a
        display: issuing a code and ``GET /v1/me/codes`` always decide afresh. Redis trouble
        only costs the cache (fail open).
        """
        ttl = self.settings.summary_cache_s
        key = f"oc:codes:summary:{principal.account_id}:{principal.level}"
        if ttl:
            try:
                cached = await self._redis.get(key)
            except RedisError:
                cached = None
            if cached is not None:
                return _SUMMARY_DECODER.decode(cached)
        codes = (await self.issuing.overview(principal, reads)).codes
        if ttl and all(c.source != "unavailable" for c in codes):
            with contextlib.suppress(RedisError):
                await self._redis.set(key, msgspec.json.encode(codes), ex=ttl)
        return codes

    def public_jwks(self) -> dict[str, list[dict[str, str]]]:
        """JWKS of the code keys: every key that verifies now or will sign soon."""
        return self._keys.ring.jwks(["code"])

    def background_tasks(self) -> list[asyncio.Task[None]]:
        """Start the domain's background work (the retention loop, when enabled) and return the
        tasks, for the owner of the process's resources to cancel at shutdown."""
        if self.settings.retention_interval_s <= 0:
            return []
        return [asyncio.create_task(self.retention.run_forever(), name="codes-retention")]
