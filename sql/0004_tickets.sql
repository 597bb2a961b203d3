-- 0004: tickets from email: users, queues, templates, ticket policies, tickets and their notes.

-- People mailops knows. `registered` access admits only these; queue members are users.
CREATE TABLE users (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email      text NOT NULL UNIQUE CHECK (email = address_key(email) AND email LIKE '%_@_%'),
    name       text,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Who works on tickets. A member may add notes to any of the queue's tickets.
CREATE TABLE queues (
    id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL UNIQUE CHECK (name <> '')
);

CREATE TABLE queue_members (
    queue_id bigint NOT NULL REFERENCES queues ON DELETE CASCADE,
    user_id  bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    PRIMARY KEY (queue_id, user_id)
);

-- What a new ticket starts as. `%` in the description is replaced by the mail's subject.
CREATE TABLE ticket_templates (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (name <> ''),
    queue_id    bigint REFERENCES queues ON DELETE RESTRICT,
    severity    text NOT NULL CHECK (severity IN ('healthy', 'notice', 'minor', 'major', 'critical')),
    status      text NOT NULL CHECK (status IN ('open', 'working', 'pending', 'resolved')),
    description text NOT NULL
);

-- Mail to `destination` opens tickets from `template_id`, if the sender passes `access`; the
-- notices go back from `reply_address`. In the five messages, %t is the ticket id and %W its
-- link ([outbound] ticket_url).
CREATE TABLE ticket_policies (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name               text NOT NULL UNIQUE CHECK (name <> ''),
    destination        text NOT NULL UNIQUE CHECK (destination = address_key(destination) AND destination LIKE '%_@_%'),
    reply_address      text NOT NULL CHECK (reply_address LIKE '%_@_%'),
    template_id        bigint NOT NULL REFERENCES ticket_templates ON DELETE RESTRICT,
    access             text NOT NULL CHECK (access IN ('open', 'registered', 'queue')),
    msg_created        text NOT NULL,
    msg_updated        text NOT NULL,
    msg_failed         text NOT NULL,
    msg_not_registered text NOT NULL,
    msg_not_in_queue   text NOT NULL
);

-- Ticket destinations are valid recipients from the moment they exist, for Postfix's RCPT
-- lookup and for mailops alike. An address the config file defines keeps its own route.
CREATE OR REPLACE VIEW valid_recipients AS
    SELECT address, route FROM config_recipients
    UNION ALL
    SELECT destination, 'ticket' FROM ticket_policies
    WHERE destination NOT IN (SELECT address FROM config_recipients);

CREATE TABLE tickets (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ticket_policy_id   bigint REFERENCES ticket_policies ON DELETE SET NULL,
    queue_id           bigint REFERENCES queues ON DELETE SET NULL,
    severity           text NOT NULL,
    status             text NOT NULL,
    description        text NOT NULL,
    requester          text NOT NULL,               -- the From address that opened it
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    inbound_message_id bigint REFERENCES inbound_messages ON DELETE SET NULL
);
CREATE INDEX tickets_requester ON tickets (address_key(requester));

-- The first note is the mail that opened the ticket; each accepted reply adds one, holding
-- the reply's new text (the quoted history stays in the raw message).
CREATE TABLE ticket_notes (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ticket_id          bigint NOT NULL REFERENCES tickets ON DELETE CASCADE,
    author             text NOT NULL,
    body               text NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    inbound_message_id bigint REFERENCES inbound_messages ON DELETE SET NULL
);
CREATE INDEX ticket_notes_ticket ON ticket_notes (ticket_id, created_at);

-- Every attachment of a ticket's mails, decoded.
CREATE TABLE attachments (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ticket_id      bigint NOT NULL REFERENCES tickets ON DELETE CASCADE,
    ticket_note_id bigint REFERENCES ticket_notes ON DELETE CASCADE,
    filename       text,
    content_type   text NOT NULL,
    size           integer NOT NULL,
    content        bytea COMPRESSION lz4 NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX attachments_ticket ON attachments (ticket_id);

-- The Message-IDs of a ticket's thread (the mails it was opened and updated by, the notices
-- sent about it): a reply's In-Reply-To or References finds its ticket here.
CREATE TABLE ticket_message_ids (
    message_id text PRIMARY KEY,
    ticket_id  bigint NOT NULL REFERENCES tickets ON DELETE CASCADE
);

-- What each notice is about, and why ticket mail did nothing.
ALTER TABLE outbox ADD COLUMN ticket_id bigint REFERENCES tickets ON DELETE SET NULL;
ALTER TABLE outbox ADD COLUMN kind text;        -- ticket_created, ticket_updated, ...
CREATE INDEX outbox_recent_by_recipient ON outbox (address_key(recipient), created_at);
ALTER TABLE inbound_messages ADD COLUMN ignored_reason text;  -- why it made no ticket or note

CREATE TRIGGER users_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION notify_policies_changed();
CREATE TRIGGER queues_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON queues
    FOR EACH STATEMENT EXECUTE FUNCTION notify_policies_changed();
CREATE TRIGGER queue_members_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON queue_members
    FOR EACH STATEMENT EXECUTE FUNCTION notify_policies_changed();
CREATE TRIGGER ticket_templates_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON ticket_templates
    FOR EACH STATEMENT EXECUTE FUNCTION notify_policies_changed();
CREATE TRIGGER ticket_policies_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON ticket_policies
    FOR EACH STATEMENT EXECUTE FUNCTION notify_policies_changed();
