"""Audit pieces that need no database: settings floor, canonical text, bad-row isolation."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
import pytest

from bff.settings import SettingsError, load_settings
from core.audit import Backoff, WriteInterrupted, write_isolating
from core.audit_chain import canonical_text


def test_audit_retention_below_180_days_is_refused_at_start() -> None:
    with pytest.raises(SettingsError, match="ONECITY_AUDIT_RETENTION_DAYS"):
        load_settings({"ONECITY_AUDIT_RETENTION_DAYS": "179"})
    assert load_settings({"ONECITY_AUDIT_RETENTION_DAYS": "180"}).audit.retention_days == 180
    assert load_settings({}).audit.retention_days == 365


def test_canonical_text_cannot_be_imitated_by_a_value() -> None:
    assert canonical_text(["a|b", None]) != canonical_text(["a", "b", None])
    assert canonical_text(["", None]) == "0:|-"
    assert canonical_text(["1:x"]) == "3:1:x"


class _Table:
    def __init__(self, bad: set[int], down_after: int | None = None) -> None:
        self.rows: list[int] = []
        self.statements = 0
        self.bad = bad
        self.down_after = down_after

    async def write(self, chunk: Sequence[int]) -> None:
        self.statements += 1
        if self.down_after is not None and self.statements > self.down_after:
            raise OSError("gone")
        if self.bad & set(chunk):
            raise asyncpg.UntranslatableCharacterError("unsupported Unicode escape sequence")
        self.rows.extend(chunk)


async def test_bad_rows_are_isolated_and_the_rest_written_in_order() -> None:
    table = _Table(bad={13, 40})
    quarantined: list[int] = []

    async def on_bad(row: int, exc: BaseException) -> None:
        assert isinstance(exc, asyncpg.DataError)
        quarantined.append(row)

    await write_isolating(list(range(64)), table.write, on_written=lambda _: None, on_bad=on_bad)
    assert table.rows == [r for r in range(64) if r not in {13, 40}]
    assert quarantined == [13, 40]
    assert table.statements <= 2 * 2 * 7  # ~2·log2(n) per bad row, not one per row


async def test_an_outage_hands_back_exactly_the_unwritten_rows() -> None:
    table = _Table(bad={5}, down_after=3)
    with pytest.raises(WriteInterrupted) as info:
        await write_isolating(list(range(16)), table.write, on_written=lambda _: None, on_bad=_ignore)
    assert sorted(table.rows + info.value.unwritten) == list(range(16))
    assert not set(table.rows) & set(info.value.unwritten)


async def _ignore(row: int, exc: BaseException) -> None:
    return None


def test_backoff_doubles_up_to_its_cap() -> None:
    backoff = Backoff(0.1, 1.0)
    delays = [backoff.next_delay() for _ in range(8)]
    assert 0.05 <= delays[0] <= 0.1 and all(0.5 <= d <= 1.0 for d in delays[5:])
    backoff.reset()
    assert backoff.next_delay() <= 0.1
