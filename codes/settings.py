"""Settings of the codes domain: lifetimes, levels, freshness, retention and limits."""

from __future__ import annotations

from typing import Annotated

import msgspec

from core.levels import Level
from core.settings import Count, Days, Seconds

__all__ = ["CodesSettings"]


class CodesSettings(msgspec.Struct, frozen=True, kw_only=True):
    """How codes are issued, verified and kept.

    Attributes:
        health_level: Level needed to hold a health code (its status is read from the health
            department by ID number, which only an ``L3`` account has).
        transit_level: Level for a transit code (the card is looked up by ID number: ``L3``).
        socsec_level: Level for an e-social-security card code.
        citizen_level: Level for a citizen code.
        clock_skew_s: Tolerance on ``iat``/``exp`` at verification (online and in the docs'
            recommendation for offline verifiers, so both agree).
        status_fresh_s: How long the last known status may stand in for a department that
            does not answer; after that health falls back to ``Y`` and other types refuse.
        holder_cache_ttl_s: Life of the Redis copy of a holder's current status and masked
            name that verification reads (refreshed on every issue and override).
        rules_refresh_s: How often a process re-reads the published health rules.
        issue_per_minute: Codes one account may request per type and minute (each request
            reads department data).
        verify_per_second: Verifications one partner may request per second (per process
            window in Redis, shared by every process).
        scan_retention_days: Scan log rows older than this are deleted by the retention job.
        checkin_retention_days: Venue check-ins older than this are deleted.
        ride_retention_days: Uploaded validator ride records older than this are deleted.
        retention_interval_s: How often a process runs the retention job (one process at a
            time, under an advisory lock); ``0`` disables the in-process job (run
            ``onecity codes retention`` from cron instead).
        scan_log_max_batch: Largest group commit of scan log rows.
        keys_max_age_s: ``Cache-Control: max-age`` of ``GET /v1/codes/keys``.
        device_certificate_s: Life of an offline ride device certificate.
        ride_log_upload_margin_s: A ride-log line is accepted until ``device_certificate_s``
            plus this after its scan time (validators may be offline for days); older lines
            are refused with ``upload_too_late``.
        checkin_repeat_s: A citizen's second check-in at one venue within this returns the
            first one instead of adding a row.
        checkins_per_hour: Check-ins one citizen may make per hour (all venues together).
        exposure_max_days: Longest window of one exposure query.
        partner_token_cache_s: How long a verified partner token is trusted without being
            checked again (signature, revocation) on the verification hot path.
        summary_cache_s: How long the home screen's codes summary of one citizen is reused
            (``GET /v1/me/codes`` and issuing always decide afresh); ``0`` disables it.
        ride_verify_processes: Worker processes per BFF process that verify uploaded ride
            logs (started on the first upload); ``0`` verifies in a worker thread instead,
            which holds the event loop up for a few milliseconds at a time.
        reevaluate_interval_s: How often the health status of every citizen who holds a
            current health code is decided again from department data (a job on the hall's
            queue); ``0`` disables the re-evaluation.
        reevaluate_window_s: A citizen "holds a current health code" when one was issued to
            them within this many seconds.
        reevaluate_batch: Citizens re-evaluated per job (each costs three department reads).
    """

    health_level: Level = "L3"
    transit_level: Level = "L3"
    socsec_level: Level = "L3"
    citizen_level: Level = "L2"
    clock_skew_s: Annotated[int, msgspec.Meta(ge=0, le=120)] = 30
    status_fresh_s: Seconds = 24 * 3600
    holder_cache_ttl_s: Seconds = 600
    rules_refresh_s: Seconds = 15
    issue_per_minute: Count = 30
    verify_per_second: Count = 5000
    scan_retention_days: Days = 30
    checkin_retention_days: Days = 28
    ride_retention_days: Days = 90
    retention_interval_s: Annotated[int, msgspec.Meta(ge=0)] = 3600
    scan_log_max_batch: Annotated[int, msgspec.Meta(ge=1, le=50_000)] = 2000
    keys_max_age_s: Seconds = 300
    device_certificate_s: Annotated[int, msgspec.Meta(ge=60, le=7 * 24 * 3600)] = 24 * 3600
    ride_log_upload_margin_s: Annotated[int, msgspec.Meta(ge=0, le=30 * 24 * 3600)] = 3 * 24 * 3600
    checkin_repeat_s: Annotated[int, msgspec.Meta(ge=0, le=24 * 3600)] = 600
    checkins_per_hour: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 30
    exposure_max_days: Days = 31
    partner_token_cache_s: Annotated[float, msgspec.Meta(ge=0, le=60)] = 5.0
    summary_cache_s: Annotated[int, msgspec.Meta(ge=0, le=600)] = 30
    ride_verify_processes: Annotated[int, msgspec.Meta(ge=0, le=64)] = 1
    reevaluate_interval_s: Annotated[int, msgspec.Meta(ge=0, le=7 * 24 * 3600)] = 900
    reevaluate_window_s: Annotated[int, msgspec.Meta(ge=60, le=30 * 24 * 3600)] = 24 * 3600
    reevaluate_batch: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 200

    def required_level(self, api_name: str) -> str:
        """The level needed for holder code type ``api_name`` (``health``, ``transit``...)."""
        levels = {
            "health": self.health_level,
            "transit": self.transit_level,
            "socsec": self.socsec_level,
            "citizen": self.citizen_level,
        }
        return levels[api_name]
