-- Who holds a current health code (issue 16: the periodic re-evaluation of health statuses).
-- Issuing a health code stamps the time on the holder's stored decision; the re-evaluation job
-- (codes.reevaluation) decides again, from department data, the status of every holder stamped
-- within codes.reevaluate_window_s, so a change reaches them as a `code` message even when the
-- app is closed. The re-evaluation's own decisions leave the stamp alone: a citizen who stops
-- using the code drops out of the passes after the window.
--
-- No index: a pass walks holder_status in primary-key order (keyset on account_id) and filters;
-- an index on a column every issue rewrites would also cost the table its HOT updates.
ALTER TABLE holder_status ADD COLUMN code_issued_at timestamptz;
