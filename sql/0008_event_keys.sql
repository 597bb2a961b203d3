-- 0008: events that mean what the alert means (issue 15): an event's identity is (device, policy,
-- key); severity from the mail; policies scoped to originators or devices, or suppressing the
-- rest; originators named, sharing addresses, matching `local@*` and `*@*`, reading the From
-- header, the envelope sender or any header; a policy clearing several others.

-- Originators: an optional unique name; an unnamed one is still identified by its address, so
-- several may share an address only when named.
ALTER TABLE originator_policies ADD COLUMN name text UNIQUE CHECK (name <> '' AND name = btrim(name));
ALTER TABLE originator_policies DROP CONSTRAINT originator_policies_address_key;
CREATE UNIQUE INDEX originator_policies_unnamed_address ON originator_policies (address) WHERE name IS NULL;
ALTER TABLE originator_policies DROP CONSTRAINT originator_policies_regex_type_check;
ALTER TABLE originator_policies ADD CONSTRAINT originator_policies_regex_type_check
    CHECK (regex_type IN ('subject', 'body', 'from', 'envelope_from')
           OR regex_type ~ '^header:[!-9;-~]+$');

-- Event policies: `suppress` policies stop the others for a mail and need no severity;
-- `severity_from` picks the severity through `severity_map` ({"CRITICAL": "critical", …});
-- `key` is the template of the event's key, `key_map` ({"capture": {"value": "as"}}) normalises
-- captures in it; `originators` (names or addresses) and `devices` (names) scope the policy,
-- NULL for everywhere (names, not ids: a deleted originator or device narrows the scope, never
-- widens it); `expire_healthy_after_s` expires healthy events instead of `expire_after_s`;
-- `match_in` is the text the match strings are tried on, NULL for `[inbound] alert_message`.
ALTER TABLE event_policies
    ADD COLUMN action text NOT NULL DEFAULT 'raise' CHECK (action IN ('raise', 'suppress')),
    ALTER COLUMN severity DROP NOT NULL,
    ADD CONSTRAINT event_policies_raise_has_severity CHECK (action = 'suppress' OR severity IS NOT NULL),
    ADD COLUMN severity_from text CHECK (severity_from <> ''),
    ADD COLUMN severity_map jsonb CHECK (jsonb_typeof(severity_map) = 'object'),
    ADD COLUMN key text CHECK (key <> ''),
    ADD COLUMN key_map jsonb CHECK (jsonb_typeof(key_map) = 'object'),
    ADD COLUMN originators text[] CHECK (cardinality(originators) > 0),
    ADD COLUMN devices text[] CHECK (cardinality(devices) > 0),
    ADD COLUMN expire_healthy_after_s integer CHECK (expire_healthy_after_s > 0),
    ADD COLUMN match_in text CHECK (match_in IN ('subject', 'body', 'subject_and_body'));

-- A policy may clear several others (on the same device, with the same key when it has one).
CREATE TABLE event_policy_clears (
    event_policy_id bigint NOT NULL REFERENCES event_policies ON DELETE CASCADE,
    clears_id       bigint NOT NULL REFERENCES event_policies ON DELETE CASCADE,
    PRIMARY KEY (event_policy_id, clears_id),
    CHECK (event_policy_id <> clears_id)
);
INSERT INTO event_policy_clears (event_policy_id, clears_id)
    SELECT id, clears_event_policy_id FROM event_policies WHERE clears_event_policy_id IS NOT NULL;
ALTER TABLE event_policies DROP COLUMN clears_event_policy_id;
CREATE TRIGGER event_policy_clears_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON event_policy_clears
    FOR EACH STATEMENT EXECUTE FUNCTION notify_policies_changed();

-- Events: one active event per (device, policy, key); '' for a policy without a key.
ALTER TABLE events ADD COLUMN key text NOT NULL DEFAULT '';
CREATE UNIQUE INDEX events_one_active_key ON events (device_id, event_policy_id, key) WHERE state = 'active';
DROP INDEX events_one_active;
