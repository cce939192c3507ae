-- The citizen's data-access ledger (GET /v1/me/data-access, docs/data-access.md).
--
-- Most kinds come from audit_log (subject_id = the account id), read newest first with the
-- keyset (at, id): this index serves `subject_id = ANY(...) AND (at, id) < (...)` without a sort
-- on ties of `at` (the older audit_log_subject index has no id).
CREATE INDEX audit_log_subject_at_id ON audit_log (subject_id, at DESC, id DESC);
-- It serves every query the old one did (same leading columns), so the old one goes: the audit
-- log keeps the same number of indexes to maintain on its write path.
DROP INDEX audit_log_subject;

-- Partner verifications are not copied into audit_log (that would double the hottest write
-- path and keep scans forever, past codes.scan_retention_days): the ledger reads scan_log by the
-- holder's per-type pseudonyms. Partial: venue codes (ct V, sub = the venue id) and payloads that
-- were not codes never belong to a citizen.
CREATE INDEX scan_log_holder ON scan_log (pseudonym, scanned_at DESC)
    WHERE code_type IN ('H', 'T', 'S', 'C');
