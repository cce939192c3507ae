-- City-service codes: health rules and overrides, holder statuses, pseudonyms, the scan log,
-- venues and check-ins, offline ride devices and validator ride records.
-- No table holds a phone, an ID number or a name: holders appear as account ids (internal)
-- or as per-type pseudonyms (what partners see).

-- Published health rule documents (codes.rules.RuleSet). Immutable once published; the
-- active version is the highest. Version 1 is the built-in default, stored as data too.
CREATE TABLE health_rulesets (
    version       integer PRIMARY KEY CHECK (version >= 1),
    document      jsonb NOT NULL,
    published_by  text NOT NULL,                   -- staff:<id> | cli | system
    published_at  timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION health_rulesets_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'published health rule versions are immutable; publish a new version';
END $$;
CREATE TRIGGER health_rulesets_no_change BEFORE UPDATE OR DELETE ON health_rulesets
    FOR EACH ROW EXECUTE FUNCTION health_rulesets_immutable();

INSERT INTO health_rulesets (version, document, published_by) VALUES (1, '{"version":1,"rules":[{"id":"positive-test","status":"R","reason":"positive_test","when":{"kind":"positive_test_within","days":14}},{"id":"quarantine","status":"R","reason":"quarantine","when":{"kind":"quarantine_active"}},{"id":"no-recent-test","status":"Y","reason":"no_recent_negative_test","when":{"kind":"no_negative_test_within","days":7}},{"id":"risk-area","status":"Y","reason":"risk_area_visit","when":{"kind":"risk_area_visit_within","days":14}},{"id":"close-contact","status":"Y","reason":"close_contact","when":{"kind":"close_contact"}}],"description":"Default rules: R for a positive test within 14 days or an active quarantine; Y for no negative test within 7 days, a risk-area visit within 14 days, or close contact."}'::jsonb, 'system');

-- A staff decision replacing the computed health status until `until` (one per citizen; a new
-- PUT replaces it; history is in audit_log).
CREATE TABLE health_overrides (
    account_id  uuid PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    status      text NOT NULL CHECK (status IN ('G', 'Y', 'R')),
    reason      text NOT NULL,
    until       timestamptz NOT NULL,
    set_by      text NOT NULL,                     -- staff id
    set_at      timestamptz NOT NULL DEFAULT now()
);

-- The last status decided from department data, per holder and code type: what stands in,
-- while fresh, when the department does not answer. Health rows keep the rule-based decision
-- (the override is applied on top at read time) with its rule version and reasons.
CREATE TABLE holder_status (
    account_id    uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    code_type     char(1) NOT NULL CHECK (code_type IN ('H', 'T', 'S', 'C')),
    status        text NOT NULL,
    rule_version  integer,
    reasons       text[] NOT NULL DEFAULT '{}',
    decided_at    timestamptz NOT NULL,
    PRIMARY KEY (account_id, code_type)
);

-- Pseudonym -> account, per code type. The pseudonym is a keyed hash (codes.pseudonym) and
-- could be recomputed, but not inverted: verification needs this to find the holder. Both
-- directions are unique: a (vanishingly rare) 64-bit collision is refused, never merged.
CREATE TABLE code_subjects (
    code_type   char(1) NOT NULL CHECK (code_type IN ('H', 'T', 'S', 'C', 'V')),
    pseudonym   text NOT NULL,
    account_id  uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (code_type, pseudonym),
    UNIQUE (code_type, account_id)
);

-- Every online verification, written (group-committed) before the answer returns. Kept for
-- codes.scan_retention_days, then deleted by the retention job. Append-only and time-ordered:
-- BRIN on the time makes the retention delete cheap without a btree on the insert path.
CREATE TABLE scan_log (
    scanned_at  timestamptz NOT NULL,
    partner_id  text NOT NULL,
    venue_id    text,
    code_type   char(1),                           -- NULL when the payload was not a code
    pseudonym   text,                              -- the code's sub (never an account id)
    jti         text,
    iat         timestamptz,
    result      text NOT NULL,                     -- valid | a reason slug
    consumed    boolean NOT NULL DEFAULT false
);
CREATE INDEX scan_log_code ON scan_log (jti, iat);
CREATE INDEX scan_log_time ON scan_log USING brin (scanned_at);

CREATE TABLE venues (
    id               text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-]{11}$'),
    name             text NOT NULL,
    address          text NOT NULL,
    region_code      text NOT NULL CHECK (region_code ~ '^([0-9]{6}|[0-9]{9}|[0-9]{12})$'),
    owner_type       text NOT NULL CHECK (owner_type IN ('staff', 'partner', 'system')),
    owner_id         text NOT NULL,
    status           text NOT NULL DEFAULT 'A' CHECK (status IN ('A', 'X')),
    code_payload     text,                         -- the printed venue code (OC1:, ct V)
    code_jti         text,                         -- only this venue code is accepted
    code_expires_at  timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX venues_region ON venues (region_code);

-- A citizen scanned a venue code. The citizen appears only by their check-in pseudonym
-- (the `V` pseudonym, unrelated to any code a partner sees).
CREATE TABLE checkins (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    venue_id       text NOT NULL REFERENCES venues (id) ON DELETE CASCADE,
    pseudonym      text NOT NULL,
    checked_in_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX checkins_venue_time ON checkins (venue_id, checked_in_at);
CREATE INDEX checkins_time ON checkins USING brin (checked_in_at);

-- Device keys registered for offline ride codes (codes.ride).
CREATE TABLE transit_devices (
    device_id        text PRIMARY KEY,             -- codes.ride.device_id_of(public key)
    account_id       uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    public_key       bytea NOT NULL UNIQUE CHECK (length(public_key) = 32),
    created_at       timestamptz NOT NULL DEFAULT now(),
    certified_at     timestamptz,
    cert_expires_at  timestamptz,
    revoked_at       timestamptz,                  -- by the citizen: no more certificates
    flagged_at       timestamptz                   -- a replay was detected: no more certificates
);
CREATE INDEX transit_devices_account ON transit_devices (account_id);

-- Accepted ride scans uploaded by validators; replays are (device_id, counter) seen twice.
-- The primary key makes a re-uploaded log line a no-op.
CREATE TABLE ride_records (
    device_id     text NOT NULL,
    counter       bigint NOT NULL,
    ride_at       bigint NOT NULL,                 -- Unix seconds, as in the ride code
    validator_id  text NOT NULL,
    scanned_at    timestamptz NOT NULL,
    subject       text,
    partner_id    text NOT NULL,
    uploaded_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, counter, validator_id, scanned_at)
);
CREATE INDEX ride_records_time ON ride_records USING brin (scanned_at);
