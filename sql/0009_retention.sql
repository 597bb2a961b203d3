-- 0009: retention. The bulk of what mailops keeps, the raw messages and the device logs, lives
-- in tables partitioned by month, so that ageing it out drops whole partitions (no long
-- deletes, no bloat); the message rows themselves are deleted in small batches.
--
-- This migration rewrites device_logs and moves every raw message: it takes time in proportion
-- to what is stored (docs/operations.md, "Upgrading"). Mail waits in Postfix's queue meanwhile.

-- Monthly partitions of inbound_raw and device_logs, named <table>_yYYYYmMM, from the month of
-- `since` to `ahead` months after this one. Creating one that exists does nothing; `mailops
-- migrate` and `mailops serve` (at start, then hourly) call this, so inserts always find theirs.
CREATE FUNCTION mailops_partitions(since timestamptz, ahead integer) RETURNS void
    LANGUAGE plpgsql
    AS $$
DECLARE
    month timestamptz := date_trunc('month', since);
    parent text;
    partition text;
BEGIN
    WHILE month <= date_trunc('month', now()) + make_interval(months => ahead) LOOP
        FOREACH parent IN ARRAY ARRAY['inbound_raw', 'device_logs'] LOOP
            partition := parent || to_char(month, '"_y"YYYY"m"MM');
            -- Looked for first: IF NOT EXISTS alone says "skipping" each time.
            IF to_regclass(partition) IS NULL THEN
                EXECUTE format(
                    'CREATE TABLE IF NOT EXISTS %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                    partition, parent, month, month + interval '1 month');
            END IF;
        END LOOP;
        month := month + interval '1 month';
    END LOOP;
END
$$;

-- The raw messages, by month of receipt. A message's row and its raw bytes are written in one
-- statement; deleting the row deletes its raw bytes.
CREATE TABLE inbound_raw (
    inbound_message_id bigint NOT NULL REFERENCES inbound_messages ON DELETE CASCADE,
    received_at        timestamptz NOT NULL,
    raw                bytea COMPRESSION lz4 NOT NULL,  -- the message as delivered over LMTP
    PRIMARY KEY (inbound_message_id, received_at)
) PARTITION BY RANGE (received_at);

-- device_logs, partitioned: its identity becomes a sequence (a partitioned table cannot have an
-- identity column before PostgreSQL 17) and its key includes the month.
ALTER TABLE device_logs RENAME TO device_logs_unpartitioned;
ALTER INDEX device_logs_device RENAME TO device_logs_unpartitioned_device;
CREATE SEQUENCE device_logs_seq AS bigint;
CREATE TABLE device_logs (
    id                 bigint NOT NULL DEFAULT nextval('device_logs_seq'),
    device_id          bigint NOT NULL REFERENCES devices ON DELETE CASCADE,
    logged_at          timestamptz NOT NULL DEFAULT now(),
    message            text COMPRESSION lz4 NOT NULL,
    -- The mail it came from; device logs age out by whole months, so it may name a message
    -- already aged out (no foreign key: see below).
    inbound_message_id bigint,
    PRIMARY KEY (id, logged_at)
) PARTITION BY RANGE (logged_at);
ALTER SEQUENCE device_logs_seq OWNED BY device_logs.id;
CREATE INDEX device_logs_device ON device_logs (device_id, logged_at);

SELECT mailops_partitions(
    least((SELECT min(received_at) FROM inbound_messages),
          (SELECT min(logged_at) FROM device_logs_unpartitioned),
          now()),
    2);

INSERT INTO inbound_raw (inbound_message_id, received_at, raw)
    SELECT id, received_at, raw FROM inbound_messages;
ALTER TABLE inbound_messages DROP COLUMN raw;

INSERT INTO device_logs (id, device_id, logged_at, message, inbound_message_id)
    SELECT id, device_id, logged_at, message, inbound_message_id FROM device_logs_unpartitioned;
SELECT setval('device_logs_seq', coalesce((SELECT max(id) FROM device_logs), 0) + 1, false);
DROP TABLE device_logs_unpartitioned;

-- Deleting an old message must not look for references to it row by row in tables without an
-- index on them. The alert path's tables (written with every alert, and events updated in place
-- on every repeat) keep plain ids, which retention clears itself in one statement per run;
-- the tickets and round-trip tables, written rarely, keep their foreign keys, now indexed.
ALTER TABLE events DROP CONSTRAINT events_inbound_message_id_fkey;
ALTER TABLE system_log DROP CONSTRAINT system_log_inbound_message_id_fkey;
ALTER TABLE alert_keys DROP CONSTRAINT alert_keys_inbound_message_id_fkey;
CREATE INDEX tickets_inbound_message ON tickets (inbound_message_id);
CREATE INDEX ticket_notes_inbound_message ON ticket_notes (inbound_message_id);
CREATE INDEX roundtrip_probes_inbound_message ON roundtrip_probes (inbound_message_id);
