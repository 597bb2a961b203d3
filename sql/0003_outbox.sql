-- 0003: what mailops sends, and the last gateway test.

-- Every message mailops sends is first a row here, written in the same transaction as what
-- caused it; the outbox worker in `mailops serve` sends due rows through the SMTP gateway.
CREATE TABLE outbox (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at      timestamptz NOT NULL DEFAULT now(),
    recipient       text NOT NULL,
    sender          text NOT NULL,
    subject         text NOT NULL,
    message_id      text NOT NULL UNIQUE,           -- without <>, under the from_address domain
    message         bytea NOT NULL,                 -- the complete message, as sent
    state           text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'sent', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,                    -- when the gateway accepted it
    sent_via        text,                           -- which gateway, and its reply
    last_error      text
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE state = 'queued';

-- The last `mailops smtp-test` of each gateway.
CREATE TABLE smtp_tests (
    gateway   text PRIMARY KEY,                     -- host:port as configured
    tested_at timestamptz NOT NULL DEFAULT now(),
    ok        boolean NOT NULL,
    report    text NOT NULL,                        -- each step, one per line
    error     text
);
