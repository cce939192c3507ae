-- Message centre (issue 16): each citizen's inbox, the per-account stream lock that orders
-- inbox ids by commit, notification preferences and the push token of each session.
-- Titles and bodies name no ID number or phone (producers write generic text); nothing here
-- is PII except the push token, which is AES-GCM encrypted.

CREATE TABLE messages (
    id           bigserial PRIMARY KEY,             -- also the SSE event id
    account_id   uuid NOT NULL,
    category     text NOT NULL CHECK (category IN ('application', 'bundle', 'code', 'security', 'notice')),
    title        text NOT NULL,
    body         text NOT NULL,
    link_kind    text,
    link_id      text,
    data         jsonb,                             -- producer details, e.g. a code's {type, status}
    -- One producing event makes at most one message, however often it is delivered and
    -- however many workers process it: producers insert ON CONFLICT DO NOTHING.
    dedupe_key   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    read_at      timestamptz,
    expires_at   timestamptz NOT NULL
);
CREATE UNIQUE INDEX messages_dedupe ON messages (account_id, dedupe_key);
CREATE INDEX messages_mine ON messages (account_id, id DESC);
CREATE INDEX messages_unread ON messages (account_id, id) WHERE read_at IS NULL;
CREATE INDEX messages_expiry ON messages (expires_at);

-- One row per account that ever received a message; producers lock it (UPSERT) before
-- inserting, so one account's ids are committed in increasing order and a stream that
-- replays "id > Last-Event-ID" can never skip a message committed late.
CREATE TABLE message_streams (
    account_id   uuid PRIMARY KEY,
    last_id      bigint NOT NULL DEFAULT 0
);

CREATE TABLE notification_preferences (
    account_id   uuid PRIMARY KEY,
    document     jsonb NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE push_tokens (
    session_id   text PRIMARY KEY,
    account_id   uuid NOT NULL,
    token_enc    bytea NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX push_tokens_account ON push_tokens (account_id, updated_at DESC);

-- Staff notices: one row per notice; its fan-out runs as jobs of `notice_batch` recipients,
-- each message keyed `notice:<id>` per account, so a re-run batch adds nothing.
CREATE TABLE message_notices (
    id           uuid PRIMARY KEY,
    region       text NOT NULL,
    title        text NOT NULL,
    body         text NOT NULL,
    staff_id     text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    recipients   integer NOT NULL DEFAULT 0,
    finished_at  timestamptz
);

-- What happened to each message's push/SMS delivery (for tests, support and metrics).
CREATE TABLE message_deliveries (
    message_id   bigint PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    outcome      text NOT NULL,
    at           timestamptz NOT NULL DEFAULT now()
);

-- The last health-code status the message centre told each citizen about: a decision equal to
-- it is no news; a different one is a `code` message keyed by the row's version.
CREATE TABLE message_code_status (
    account_id   uuid NOT NULL,
    code_type    text NOT NULL,
    status       text NOT NULL,
    version      integer NOT NULL DEFAULT 1,
    changed_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, code_type)
);
