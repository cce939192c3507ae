-- Validators are named by their partner: partner A's "V1" and partner B's "V1" are two
-- validators. The primary key (what makes a re-uploaded log line a no-op) therefore includes
-- the partner; before, B's scan of a code at the same second as A's "V1" was dropped as a
-- duplicate of A's line, hiding a cross-partner replay.
ALTER TABLE ride_records DROP CONSTRAINT ride_records_pkey;
ALTER TABLE ride_records ADD PRIMARY KEY (partner_id, validator_id, device_id, counter, scanned_at);
-- Replay look-ups go by (device_id, counter).
CREATE INDEX ride_records_device_counter ON ride_records (device_id, counter);
