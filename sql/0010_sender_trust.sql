-- Sender trust (issue 18): what this instance verified about each message's sender, and
-- originator policies that count only verified mail.

-- Per message: this instance's own SPF, DKIM and DMARC results (from the Authentication-Results
-- header its verifier added, never one the sender wrote), the From domain they verified
-- (aligned), and whether the SMTP client was in mynetworks. NULL results: not verified here.
ALTER TABLE inbound_messages
    ADD COLUMN auth_spf text,
    ADD COLUMN auth_dkim text,
    ADD COLUMN auth_dmarc text,
    ADD COLUMN auth_domain text,
    ADD COLUMN client_trusted boolean NOT NULL DEFAULT false;

-- An originator policy's mail counts only when its sender is verified this way (or comes
-- from a trusted network); 'none' counts all.
ALTER TABLE originator_policies
    ADD COLUMN require_auth text NOT NULL DEFAULT 'none'
        CHECK (require_auth IN ('none', 'dmarc', 'spf', 'dkim'));
