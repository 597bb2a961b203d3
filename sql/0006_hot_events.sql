-- 0006: cheaper writes on the events path, found by profiling scripts/bench.

-- A repeat of an active event updates its row (count, last_seen, severity, message, mail). With
-- an index on last_seen every such update wrote a new entry into each of the table's indexes
-- and left dead ones behind for the next ON CONFLICT to step over. Without it no updated column
-- is indexed, so repeats are HOT updates (heap only), given room on the page: fillfactor 50.
-- Expiry finds the active events through events_one_active (also partial on state = 'active').
DROP INDEX events_active_last_seen;
ALTER TABLE events SET (fillfactor = 50);

-- Device log text is the alert's text, often past the 2 KB where PostgreSQL compresses: lz4, as
-- for raw messages, costs a fraction of the default pglz.
ALTER TABLE device_logs ALTER COLUMN message SET COMPRESSION lz4;
