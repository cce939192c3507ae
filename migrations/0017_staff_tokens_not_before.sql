-- A role change or a security-key recovery ends the member's live staff tokens at once:
-- tokens issued before this time are refused (the member signs in again).
ALTER TABLE staff ADD COLUMN tokens_not_before timestamptz;
