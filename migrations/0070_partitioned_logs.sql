-- Partitioned logs: audit_log (monthly), scan_log and checkins (daily) become range-partitioned
-- by time, so retention drops whole partitions instead of deleting rows one by one.
--
-- Periods. audit_log is kept for a year or more (>= 180 days by law) and written at the rate
-- of logins and changes: a month per partition. scan_log and checkins are written at the rate
-- of verifications and venue scans (the city's busiest tables) and kept for weeks
-- (codes.scan_retention_days, codes.checkin_retention_days): a day per partition.
-- All bounds are UTC midnights.
--
-- Partitions are made ahead by onecity_partitions_maintain() (`onecity partitions maintain`,
-- `onecity migrate`, and every process's retention loop): the current period and the next
-- ones (3 months, 14 days). A row whose period has no partition (maintenance stopped for that
-- long, a clock far off, an old timestamp) lands in the table's DEFAULT partition: it is never
-- refused. The default partition is reported by `onecity partitions status` and emptied by
-- the retention jobs (row by row; it is meant to stay small).
--
-- Audit chain. A unique index on a partitioned table must contain the partition key, so the
-- (stream, seq) uniqueness of 0040 is now enforced per partition (each partition, the default
-- one included, has its own unique index on (stream, seq)); a stream's chain still runs
-- across partitions in seq order, and `onecity audit verify` checks it whole: a duplicate
-- (stream, seq) in two partitions breaks the chain it recomputes. The chain and append-only
-- row triggers are declared on the partitioned table, so PostgreSQL clones them onto every
-- partition (a direct UPDATE or DELETE on a partition is refused too); the TRUNCATE trigger is
-- per table, so every partition gets its own.
--
-- Identity columns cannot be declared on a partitioned table before PostgreSQL 17: audit_log.id
-- and checkins.id take their values from a sequence default instead.

CREATE FUNCTION onecity_partition_name(parent text, lower timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT parent || CASE WHEN parent = 'audit_log'
                          THEN '_m' || to_char(lower AT TIME ZONE 'UTC', 'YYYYMM')
                          ELSE '_d' || to_char(lower AT TIME ZONE 'UTC', 'YYYYMMDD') END
$$;

CREATE FUNCTION onecity_partition_step(parent text) RETURNS interval
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN parent = 'audit_log' THEN interval '1 month' ELSE interval '1 day' END
$$;

-- The start of the period that contains `at` (UTC).
CREATE FUNCTION onecity_partition_floor(parent text, at timestamptz) RETURNS timestamptz
LANGUAGE sql IMMUTABLE AS $$
    SELECT date_trunc(CASE WHEN parent = 'audit_log' THEN 'month' ELSE 'day' END, at AT TIME ZONE 'UTC')
           AT TIME ZONE 'UTC'
$$;

-- What every partition of `parent` needs beyond what it inherits.
CREATE FUNCTION onecity_partition_prepare(parent text, part text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF parent = 'audit_log' THEN
        EXECUTE format('CREATE UNIQUE INDEX %I ON %I (stream, seq)', part || '_chain', part);
        EXECUTE format('CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON %I '
                       'FOR EACH STATEMENT EXECUTE FUNCTION audit_log_no_truncate()', part);
    END IF;
END $$;

-- Create the partition of `parent` for the period starting at `lower`; false if it exists.
CREATE FUNCTION onecity_partition_create(parent text, lower timestamptz) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    part text := onecity_partition_name(parent, lower);
BEGIN
    IF to_regclass(part) IS NOT NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                   part, parent, lower, lower + onecity_partition_step(parent));
    PERFORM onecity_partition_prepare(parent, part);
    RETURN true;
END $$;

-- Make the current period's partition and the next ones of every partitioned log; idempotent.
-- Two callers at once: the second waits for the first (a transaction-scoped advisory lock) and
-- then finds everything made. Returns the partitions it created.
CREATE FUNCTION onecity_partitions_maintain(audit_months integer DEFAULT 3, log_days integer DEFAULT 14)
RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    parent text;
    lower timestamptz;
    ahead integer;
BEGIN
    PERFORM pg_advisory_xact_lock(202834032);  -- 0x0C170070
    FOREACH parent IN ARRAY ARRAY['audit_log', 'scan_log', 'checkins'] LOOP
        ahead := CASE WHEN parent = 'audit_log' THEN audit_months ELSE log_days END;
        FOR i IN 0..ahead LOOP
            lower := onecity_partition_floor(parent, now()) + i * onecity_partition_step(parent);
            IF onecity_partition_create(parent, lower) THEN
                RETURN NEXT onecity_partition_name(parent, lower);
            END IF;
        END LOOP;
    END LOOP;
END $$;

-- Partitions for the periods of the rows already there (so the copy puts none in DEFAULT).
CREATE FUNCTION onecity_partitions_cover(parent text, oldest timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    lower timestamptz := onecity_partition_floor(parent, oldest);
BEGIN
    WHILE oldest IS NOT NULL AND lower <= now() LOOP
        PERFORM onecity_partition_create(parent, lower);
        lower := lower + onecity_partition_step(parent);
    END LOOP;
END $$;

-- ---------------------------------------------------------------------------------- audit_log
ALTER TABLE audit_log RENAME TO audit_log_unpartitioned;
ALTER INDEX audit_log_pkey RENAME TO audit_log_unpartitioned_pkey;
ALTER INDEX audit_log_action RENAME TO audit_log_unpartitioned_action;
ALTER INDEX audit_log_chain RENAME TO audit_log_unpartitioned_chain;
ALTER INDEX audit_log_at RENAME TO audit_log_unpartitioned_at;
ALTER INDEX audit_log_subject_at_id RENAME TO audit_log_unpartitioned_subject_at_id;

CREATE SEQUENCE audit_log_id;
CREATE TABLE audit_log (
    id          bigint NOT NULL DEFAULT nextval('audit_log_id'),
    at          timestamptz NOT NULL DEFAULT now(),
    actor_type  text NOT NULL,
    actor_id    text,
    subject_id  text,
    action      text NOT NULL,
    outcome     text NOT NULL,
    client_ip   text,
    details     jsonb NOT NULL DEFAULT '{}'::jsonb,
    stream      integer NOT NULL,
    seq         bigint NOT NULL,
    prev_hash   bytea NOT NULL,
    row_hash    bytea NOT NULL,
    PRIMARY KEY (id, at)
) PARTITION BY RANGE (at);
ALTER SEQUENCE audit_log_id OWNED BY audit_log.id;
CREATE TABLE audit_log_default PARTITION OF audit_log DEFAULT;
SELECT onecity_partition_prepare('audit_log', 'audit_log_default');
SELECT onecity_partitions_cover('audit_log', (SELECT min(at) FROM audit_log_unpartitioned));

-- Rows are copied as they are (their chain fields included): the chain trigger is created after.
INSERT INTO audit_log (id, at, actor_type, actor_id, subject_id, action, outcome, client_ip, details,
                       stream, seq, prev_hash, row_hash)
SELECT id, at, actor_type, actor_id, subject_id, action, outcome, client_ip, details,
       stream, seq, prev_hash, row_hash
FROM audit_log_unpartitioned;
SELECT setval('audit_log_id', coalesce((SELECT max(id) FROM audit_log_unpartitioned), 0) + 1, false);
DROP TABLE audit_log_unpartitioned;

CREATE INDEX audit_log_action ON audit_log (action, at DESC);
CREATE INDEX audit_log_at ON audit_log USING brin (at);
CREATE INDEX audit_log_subject_at_id ON audit_log (subject_id, at DESC, id DESC);
CREATE TRIGGER audit_log_chain BEFORE INSERT ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_chain();
CREATE TRIGGER audit_log_chain_head AFTER INSERT ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_chain_head();
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_no_truncate();

-- ----------------------------------------------------------------------------------- scan_log
ALTER TABLE scan_log RENAME TO scan_log_unpartitioned;
ALTER INDEX scan_log_code RENAME TO scan_log_unpartitioned_code;
ALTER INDEX scan_log_time RENAME TO scan_log_unpartitioned_time;
ALTER INDEX scan_log_holder RENAME TO scan_log_unpartitioned_holder;
CREATE TABLE scan_log (
    scanned_at  timestamptz NOT NULL,
    partner_id  text NOT NULL,
    venue_id    text,
    code_type   char(1),
    pseudonym   text,
    jti         text,
    iat         timestamptz,
    result      text NOT NULL,
    consumed    boolean NOT NULL DEFAULT false
) PARTITION BY RANGE (scanned_at);
CREATE TABLE scan_log_default PARTITION OF scan_log DEFAULT;
SELECT onecity_partitions_cover('scan_log', (SELECT min(scanned_at) FROM scan_log_unpartitioned));
INSERT INTO scan_log SELECT scanned_at, partner_id, venue_id, code_type, pseudonym, jti, iat, result, consumed
FROM scan_log_unpartitioned;
DROP TABLE scan_log_unpartitioned;
CREATE INDEX scan_log_code ON scan_log (jti, iat);
CREATE INDEX scan_log_time ON scan_log USING brin (scanned_at);
-- The data-access ledger's index (0045).
CREATE INDEX scan_log_holder ON scan_log (pseudonym, scanned_at DESC) WHERE code_type IN ('H', 'T', 'S', 'C');

-- ----------------------------------------------------------------------------------- checkins
ALTER TABLE checkins RENAME TO checkins_unpartitioned;
ALTER INDEX checkins_pkey RENAME TO checkins_unpartitioned_pkey;
ALTER INDEX checkins_venue_time RENAME TO checkins_unpartitioned_venue_time;
ALTER INDEX checkins_time RENAME TO checkins_unpartitioned_time;
ALTER TABLE checkins_unpartitioned RENAME CONSTRAINT checkins_venue_id_fkey TO checkins_unpartitioned_venue_id_fkey;
CREATE SEQUENCE checkins_id;
CREATE TABLE checkins (
    id             bigint NOT NULL DEFAULT nextval('checkins_id'),
    venue_id       text NOT NULL REFERENCES venues (id) ON DELETE CASCADE,
    pseudonym      text NOT NULL,
    checked_in_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id, checked_in_at)
) PARTITION BY RANGE (checked_in_at);
ALTER SEQUENCE checkins_id OWNED BY checkins.id;
CREATE TABLE checkins_default PARTITION OF checkins DEFAULT;
SELECT onecity_partitions_cover('checkins', (SELECT min(checked_in_at) FROM checkins_unpartitioned));
INSERT INTO checkins (id, venue_id, pseudonym, checked_in_at)
SELECT id, venue_id, pseudonym, checked_in_at FROM checkins_unpartitioned;
SELECT setval('checkins_id', coalesce((SELECT max(id) FROM checkins_unpartitioned), 0) + 1, false);
DROP TABLE checkins_unpartitioned;
CREATE INDEX checkins_venue_time ON checkins (venue_id, checked_in_at);
CREATE INDEX checkins_time ON checkins USING brin (checked_in_at);

SELECT onecity_partitions_maintain();
