"""The data-access ledger's rules without I/O: the reads a page asks for, the merge of its two
sources, the cursor between pages and the partners' names."""

from __future__ import annotations

import datetime as dt

import pytest

from bff.screens.ledger import ledger_query, merge_page
from bff.screens.repository import AuditLedgerRow, ScanLedgerRow
from bff.screens.schemas import ClaimsReleaseEntry, CodeVerificationEntry, DataAccessEntry
from core.errors import BadRequest
from core.ledger import ACTIONS_BY_KIND, ID_TOKEN_RELEASE_ACTION

T0 = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)


def audit(ident: int, at: dt.datetime, *, action: str = "data.read", partner: str | None = None) -> AuditLedgerRow:
    return AuditLedgerRow(
        id=ident,
        at=at,
        action=action,
        actor_type="partner" if partner else "system",
        actor_id=partner,
        outcome="success",
        details={"purpose": "home-screen", "department": "health", "resource": "tests"},
    )


def scan(jti: str, at: dt.datetime, *, partner: str = "metro") -> ScanLedgerRow:
    return ScanLedgerRow(
        at=at, partner_id=partner, venue_id=None, code_type="H", jti=jti, result="valid", consumed=False
    )


def test_a_query_reads_only_the_sources_of_its_kinds() -> None:
    only_scans = ledger_query(("code_verification",), since=None, until=None, cursor=None)
    assert only_scans.actions == [] and only_scans.scans is True
    reads = ledger_query(("department_read",), since=None, until=None, cursor=None)
    assert reads.actions == list(ACTIONS_BY_KIND["department_read"]) and reads.scans is False


@pytest.mark.parametrize(
    ("since", "until", "cursor", "field"),
    [
        (T0, T0, None, "since"),  # an empty window
        (T0.replace(tzinfo=None), None, None, "since"),  # no time zone
        (None, T0.replace(tzinfo=None), None, "until"),
        (None, None, "bm90IGEgY3Vyc29y", "cursor"),  # base64 of "not a cursor"
        (None, None, "!!", "cursor"),
    ],
)
def test_a_bad_window_or_cursor_is_a_400_naming_the_field(
    since: dt.datetime | None, until: dt.datetime | None, cursor: str | None, field: str
) -> None:
    with pytest.raises(BadRequest) as raised:
        ledger_query(("department_read", "code_verification"), since=since, until=until, cursor=cursor)
    assert raised.value.extensions["field"] == field


def test_pages_merge_newest_first_and_scans_sort_before_audit_rows_of_the_same_instant() -> None:
    later = T0 + dt.timedelta(minutes=1)
    page = merge_page([audit(7, T0), audit(9, later)], [scan("j1", T0)], limit=10)
    assert [type(r).__name__ for r in page.rows] == ["AuditLedgerRow", "ScanLedgerRow", "AuditLedgerRow"]
    assert [r.at for r in page.rows] == [later, T0, T0]
    assert page.next_cursor is None


def test_the_cursor_names_the_last_row_and_the_next_query_starts_strictly_after_it() -> None:
    rows = [audit(3, T0 + dt.timedelta(minutes=2)), audit(2, T0), audit(1, T0 - dt.timedelta(minutes=1))]
    scans = [scan("j2", T0), scan("j1", T0 - dt.timedelta(minutes=5))]
    first = merge_page(rows, scans, limit=2)
    # Newest first: the audit row at +2 min, then the scan at T0 (scans before audit rows at T0).
    assert first.rows == [rows[0], scans[0]]
    assert first.next_cursor is not None
    after = ledger_query(("department_read", "code_verification"), since=None, until=None, cursor=first.next_cursor)
    assert (after.before_at, after.before_id, after.before_key) == (T0, None, ("j2", "metro"))
    audit_last = merge_page(rows, [], limit=1)
    assert audit_last.next_cursor is not None
    after_audit = ledger_query(("department_read",), since=None, until=None, cursor=audit_last.next_cursor)
    assert (after_audit.before_at, after_audit.before_id, after_audit.before_key) == (rows[0].at, 3, None)


def test_partners_appear_by_their_registered_name_and_others_by_none() -> None:
    page = merge_page(
        [
            audit(2, T0, action=ID_TOKEN_RELEASE_ACTION, partner="bank"),
            audit(1, T0 - dt.timedelta(seconds=1)),
        ],
        [scan("j1", T0 + dt.timedelta(seconds=1), partner="metro")],
        limit=10,
    )
    assert page.partners == {"bank", "metro"}
    items = page.render({"bank": "城市银行"}).items
    assert isinstance(items[0], CodeVerificationEntry)
    assert (items[0].who.id, items[0].who.name) == ("metro", None)  # a name identity does not know
    assert isinstance(items[1], ClaimsReleaseEntry)
    assert (items[1].who.id, items[1].who.name) == ("bank", "城市银行")
    assert isinstance(items[2], DataAccessEntry)
    assert items[2].who.type == "onecity"
