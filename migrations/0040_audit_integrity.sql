-- Audit integrity: a hash chain over audit_log, pruning only by the retention job, and a
-- quarantine for rows a batch writer could not store (a NUL byte, an invalid value).
--
-- Chain. Every row belongs to a stream (the PostgreSQL backend that inserted it: two live
-- backends never share a pid, so concurrent writers never contend for, nor fork, a chain; a
-- transaction only ever locks its own stream's head, so the chain cannot deadlock either).
-- Within a stream rows are numbered seq = 1, 2, ... without gaps and carry
--   row_hash = sha256(canonical text of (stream, seq, id, at, actor_type, actor_id, subject_id,
--                     action, outcome, client_ip, details, prev_hash))
-- where prev_hash is the row_hash of seq - 1 (or the stream's anchor after pruning, or 32 zero
-- bytes at the start). audit_chain_heads holds each stream's last seq and hash (so removing
-- the newest rows is detected too) and its anchor (the last pruned row's seq and hash). The
-- head row is locked (SELECT ... FOR UPDATE) by the inserting transaction until it ends, so a
-- rolled-back insert gives its numbers back. `onecity audit verify`
-- recomputes every hash in Python, independently of these functions.

CREATE TABLE audit_chain_heads (
    stream       integer PRIMARY KEY,
    seq          bigint NOT NULL DEFAULT 0,           -- last seq written (0: none yet)
    hash         bytea NOT NULL DEFAULT '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea,
    anchor_seq   bigint NOT NULL DEFAULT 0,           -- last seq removed by retention
    anchor_hash  bytea NOT NULL DEFAULT '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea,
    pruned_at    timestamptz
);

-- One field of the canonical text: length-prefixed ("-" for NULL), so no value can imitate
-- a separator or another field.
CREATE FUNCTION audit_field(v text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN v IS NULL THEN '-' ELSE length(v)::text || ':' || v END
$$;

CREATE FUNCTION audit_row_hash(
    stream integer, seq bigint, id bigint, at timestamptz, actor_type text, actor_id text, subject_id text,
    action text, outcome text, client_ip text, details jsonb, prev bytea
) RETURNS bytea LANGUAGE sql STABLE AS $$
    SELECT sha256(convert_to(
        audit_field(stream::text) || '|' || audit_field(seq::text) || '|' || audit_field(id::text) || '|'
        || audit_field(to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US')) || '|'
        || audit_field(actor_type) || '|' || audit_field(actor_id) || '|' || audit_field(subject_id) || '|'
        || audit_field(action) || '|' || audit_field(outcome) || '|' || audit_field(client_ip) || '|'
        || audit_field(details::text) || '|' || audit_field(encode(prev, 'hex')),
        'UTF8'))
$$;

ALTER TABLE audit_log
    ADD COLUMN stream integer,
    ADD COLUMN seq bigint,
    ADD COLUMN prev_hash bytea,
    ADD COLUMN row_hash bytea;

-- Rows written before this migration become stream 0, chained in id order. The old trigger
-- refuses every UPDATE; it is replaced below by one that also governs DELETE.
DROP TRIGGER audit_log_no_update ON audit_log;
DO $$
DECLARE
    r audit_log;
    n bigint := 0;
    prev bytea := '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea;
    h bytea;
BEGIN
    FOR r IN SELECT * FROM audit_log ORDER BY id LOOP
        n := n + 1;
        h := audit_row_hash(0, n, r.id, r.at, r.actor_type, r.actor_id, r.subject_id, r.action, r.outcome,
                            r.client_ip, r.details, prev);
        UPDATE audit_log SET stream = 0, seq = n, prev_hash = prev, row_hash = h WHERE id = r.id;
        prev := h;
    END LOOP;
    IF n > 0 THEN
        INSERT INTO audit_chain_heads (stream, seq, hash) VALUES (0, n, prev);
    END IF;
END $$;

ALTER TABLE audit_log
    ALTER COLUMN stream SET NOT NULL,
    ALTER COLUMN seq SET NOT NULL,
    ALTER COLUMN prev_hash SET NOT NULL,
    ALTER COLUMN row_hash SET NOT NULL;
-- A second row with the same (stream, seq) would be a fork: refused outright.
CREATE UNIQUE INDEX audit_log_chain ON audit_log (stream, seq);
-- The retention job finds old rows by time.
CREATE INDEX audit_log_at ON audit_log USING brin (at);

-- The running head of this transaction's stream is kept in a transaction-local setting, so a
-- COPY of 500 rows locks and reads the head row once and updates it once (per statement, in
-- the AFTER STATEMENT trigger) instead of 500 times: updating one row 500 times in a
-- transaction leaves 500 versions that every later read walks (measured: ~4 ms a row).
-- The setting is local: it ends with the transaction and rolls back with a failed statement or
-- savepoint, exactly like the rows it describes.
CREATE FUNCTION audit_log_chain() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    s integer := pg_backend_pid();
    cur text := current_setting('onecity.audit_head', true);
    last_seq bigint;
    last_hash bytea;
BEGIN
    IF cur IS NULL OR cur = '' THEN
        -- First audit row of this transaction: lock the stream's head until commit.
        SELECT h.seq, h.hash INTO last_seq, last_hash FROM audit_chain_heads h WHERE h.stream = s FOR UPDATE;
        IF NOT FOUND THEN
            INSERT INTO audit_chain_heads (stream) VALUES (s) ON CONFLICT DO NOTHING;
            SELECT h.seq, h.hash INTO last_seq, last_hash FROM audit_chain_heads h WHERE h.stream = s FOR UPDATE;
        END IF;
    ELSE
        last_seq := split_part(cur, ':', 1)::bigint;
        last_hash := decode(split_part(cur, ':', 2), 'hex');
    END IF;
    NEW.stream := s;
    NEW.seq := last_seq + 1;
    NEW.prev_hash := last_hash;
    NEW.row_hash := audit_row_hash(s, NEW.seq, NEW.id, NEW.at, NEW.actor_type, NEW.actor_id, NEW.subject_id,
                                   NEW.action, NEW.outcome, NEW.client_ip, NEW.details, last_hash);
    PERFORM set_config('onecity.audit_head', NEW.seq::text || ':' || encode(NEW.row_hash, 'hex'), true);
    RETURN NEW;
END $$;
CREATE TRIGGER audit_log_chain BEFORE INSERT ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_chain();

CREATE FUNCTION audit_log_chain_head() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    cur text := current_setting('onecity.audit_head', true);
BEGIN
    IF cur IS NOT NULL AND cur <> '' THEN
        UPDATE audit_chain_heads
        SET seq = split_part(cur, ':', 1)::bigint, hash = decode(split_part(cur, ':', 2), 'hex')
        WHERE stream = pg_backend_pid();
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER audit_log_chain_head AFTER INSERT ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_chain_head();

-- Append-only, with one exception: the retention job deletes a stream's oldest rows, and only
-- rows it has first covered by the stream's anchor and that are older than 180 days (the legal
-- floor, Cybersecurity Law art. 21, enforced here whatever the configuration says).
CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND OLD.at < now() - interval '180 days' AND EXISTS (
        SELECT 1 FROM audit_chain_heads h WHERE h.stream = OLD.stream AND OLD.seq <= h.anchor_seq
    ) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only (rows are removed only by `onecity audit retention`)'
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE FUNCTION audit_log_no_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only' USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_no_truncate();

-- Rows a batch writer could not store (a data error in that one row). The raw row is kept as
-- JSON bytes (a NUL byte cannot live in text), with the error's class; never the message,
-- which may quote the value.
CREATE TABLE write_quarantine (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    quarantined_at  timestamptz NOT NULL DEFAULT now(),
    target          text NOT NULL,                -- audit_log | scan_log
    error_class     text NOT NULL,                -- e.g. UntranslatableCharacterError
    sqlstate        text,
    raw             bytea NOT NULL,               -- the row as JSON (msgspec), columns by name
    replayed_at     timestamptz                   -- set by an operator after a manual replay
);
CREATE INDEX write_quarantine_time ON write_quarantine (target, quarantined_at);
