-- 0011: expected mail (issue 19): reports that must arrive on a schedule, and what they say.

-- A report is expected from `sender` (an address, or *@domain, local@*, *@*), or through the
-- originator policy named `originator`, about `device_id`, whose text matches `match` (any
-- mail when NULL): every `every_s` seconds, or at each time of the cron expression `cron` in
-- `timezone`, with `grace_s` to arrive. A missed report, or one classified a failure, raises
-- an event of `severity` on the device; a successful one clears it.
CREATE TABLE expect_policies (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            text NOT NULL UNIQUE CHECK (name <> ''),
    device_id       bigint NOT NULL REFERENCES devices ON DELETE RESTRICT,
    sender          text CHECK (sender LIKE '%@%'),
    originator      text,
    match_in        text NOT NULL DEFAULT 'subject_and_body'
        CHECK (match_in IN ('subject', 'body', 'subject_and_body')),
    match_logic     text NOT NULL DEFAULT 'text' CHECK (match_logic IN ('text', 'regex')),
    match           text,
    every_s         integer CHECK (every_s > 0),
    cron            text,
    timezone        text NOT NULL DEFAULT 'UTC',
    grace_s         integer NOT NULL DEFAULT 0 CHECK (grace_s >= 0),
    severity        text NOT NULL CHECK (severity IN ('notice', 'minor', 'major', 'critical')),
    failure         text[] NOT NULL DEFAULT '{}',
    success         text[] NOT NULL DEFAULT '{}',
    default_outcome text NOT NULL DEFAULT 'success' CHECK (default_outcome IN ('success', 'failure')),
    start_match     text,
    CHECK ((every_s IS NULL) <> (cron IS NULL)),
    CHECK ((sender IS NULL) <> (originator IS NULL))
);
CREATE TRIGGER expect_policies_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON expect_policies
    FOR EACH STATEMENT EXECUTE FUNCTION notify_policies_changed();

-- Where each expectation stands. Whoever moves `due_at` forward past a miss (one UPDATE,
-- row-locked) records it, so several `serve` processes record one miss per period.
CREATE TABLE expect_state (
    expect_policy_id   bigint PRIMARY KEY REFERENCES expect_policies ON DELETE CASCADE,
    due_at             timestamptz NOT NULL,     -- the next report is missed if not here by then
    last_seen_at       timestamptz,              -- the last report
    last_outcome       text CHECK (last_outcome IN ('success', 'failure', 'missed')),
    consecutive_misses integer NOT NULL DEFAULT 0,
    started_at         timestamptz               -- a start mail waiting for its report
);

-- Every report, start mail and miss.
CREATE TABLE expect_reports (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    expect_policy_id   bigint NOT NULL REFERENCES expect_policies ON DELETE CASCADE,
    at                 timestamptz NOT NULL DEFAULT now(),
    outcome            text NOT NULL CHECK (outcome IN ('success', 'failure', 'missed', 'started')),
    duration_ms        bigint,                   -- from its start mail, when there was one
    inbound_message_id bigint                    -- the mail (none for a miss); cleared by retention
);
CREATE INDEX expect_reports_policy ON expect_reports (expect_policy_id, at);

-- A miss or a failed report raises an event on the policy's device, one active per (device,
-- expect policy), a repeat counts; a successful report clears it.
ALTER TABLE events ADD COLUMN expect_policy_id bigint REFERENCES expect_policies ON DELETE SET NULL;
CREATE UNIQUE INDEX events_one_active_expect ON events (device_id, expect_policy_id)
    WHERE state = 'active' AND expect_policy_id IS NOT NULL;

-- Per expectation: when its last report came, what it said, how many periods in a row
-- passed without one, and when the next is due.
CREATE VIEW expect_status AS
    SELECT p.name, d.name AS device, s.last_seen_at, s.last_outcome, s.consecutive_misses,
           s.due_at
    FROM expect_policies p
    JOIN devices d ON d.id = p.device_id
    LEFT JOIN expect_state s ON s.expect_policy_id = p.id;
