-- 0012: alert-volume control (issue 19): a cap per event policy on how many of its alerts about
-- one device are logged; past it, repeats only count on the event and a flood event stands on
-- the device until the rate falls.

-- `rate_count` alerts per `rate_per_s` seconds (1, 60 or 3600); both NULL: no cap.
ALTER TABLE event_policies
    ADD COLUMN rate_count integer CHECK (rate_count > 0),
    ADD COLUMN rate_per_s integer CHECK (rate_per_s IN (1, 60, 3600)),
    ADD CHECK ((rate_count IS NULL) = (rate_per_s IS NULL));

-- One token bucket per (device, capped event policy): `tokens` as of `refilled_at`, refilled at
-- rate_count per rate_per_s up to rate_count; an alert takes one, or finds none and is `over`.
CREATE TABLE alert_buckets (
    device_id       bigint NOT NULL REFERENCES devices ON DELETE CASCADE,
    event_policy_id bigint NOT NULL REFERENCES event_policies ON DELETE CASCADE,
    tokens          float8 NOT NULL,
    refilled_at     timestamptz NOT NULL,
    over            boolean NOT NULL DEFAULT false,   -- the latest alert found no token
    PRIMARY KEY (device_id, event_policy_id)
);

-- A flood: one active event per (device, capped policy) while its alerts are over the cap;
-- its count is the alerts not logged.
ALTER TABLE events ADD COLUMN flood_policy_id bigint REFERENCES event_policies ON DELETE SET NULL;
CREATE UNIQUE INDEX events_one_active_flood ON events (device_id, flood_policy_id)
    WHERE state = 'active' AND flood_policy_id IS NOT NULL;
