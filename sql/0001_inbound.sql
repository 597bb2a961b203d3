-- 0001: accepted mail, and the one definition of a valid recipient.

-- How addresses are compared everywhere (Postfix's lookup and mailops's cache): ASCII case
-- folded, nothing else, so PostgreSQL's locale can never make the two disagree.
CREATE FUNCTION address_key(address text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN translate(address, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz');

-- Addresses the config file defines (notify@ at each authorized domain). `mailops migrate` and
-- `mailops serve` rewrite this table from mailops.toml.
CREATE TABLE config_recipients (
    address text PRIMARY KEY CHECK (address = address_key(address)),
    route   text NOT NULL CHECK (route IN ('event'))
);

-- Every address mail is accepted for, and the pipeline it feeds. Postfix's RCPT-time lookup
-- (postfix-pgsql) and mailops's LMTP RCPT check both read this view.
CREATE VIEW valid_recipients AS
    SELECT address, route FROM config_recipients;

-- One row per accepted (message, recipient): what arrived, exactly as it arrived.
CREATE TABLE inbound_messages (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at     timestamptz NOT NULL DEFAULT now(),
    envelope_from   text NOT NULL,               -- MAIL FROM; '' for the null sender
    recipient       text NOT NULL,               -- RCPT TO, as given
    route           text NOT NULL CHECK (route IN ('event', 'ticket', 'probe_reply')),
    message_id      text,                        -- Message-ID header, without <>
    subject         text,                        -- decoded Subject header
    from_address    text,                        -- first address of the From header
    size            integer NOT NULL,            -- octets of raw
    raw             bytea COMPRESSION lz4 NOT NULL, -- the message as delivered over LMTP (lz4: cheap to compress)
    parsed          boolean NOT NULL,            -- false when the message could not be parsed
    queue_id        text,                        -- Postfix's queue id (LMTP XFORWARD IDENT)
    client_addr     text,                        -- the SMTP client Postfix received it from
    idempotency_key text NOT NULL UNIQUE         -- recognises a redelivery of the same message
);
CREATE INDEX inbound_messages_received_at ON inbound_messages (received_at);
