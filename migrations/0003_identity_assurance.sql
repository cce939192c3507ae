-- Identity assurance (issue 11, citizens): a session can be held back until the citizen proves
-- the bound identity again (a recycled phone number reaching a dormant L3/L4 account).
-- Old rows keep the default: sessions that exist already are trusted as before.

ALTER TABLE sessions ADD COLUMN reverify_required boolean NOT NULL DEFAULT false;

-- "Last activity" of an account is the newest last_seen_at of its sessions; this index keeps
-- that look-up at login cheap for accounts with many (ended) sessions.
CREATE INDEX sessions_account_seen ON sessions (account_id, last_seen_at DESC);
