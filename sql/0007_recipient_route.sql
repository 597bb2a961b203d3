-- 0007: Postfix's RCPT lookup without planning a query for every recipient.

-- Postfix's pgsql client sends its query as text, so PostgreSQL parsed and planned the
-- valid_recipients view (a UNION ALL with a NOT IN subquery) for every recipient: more than the
-- lookup itself. A PL/pgSQL function plans its statement once per connection (proxymap keeps
-- them), so both Postfix's lookup and mailops's ask this instead: the route of an address, or
-- NULL when mail is not accepted for it.
CREATE FUNCTION recipient_route(candidate text) RETURNS text
    LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
    AS $$
BEGIN
    RETURN (SELECT route FROM valid_recipients WHERE address = address_key(candidate));
END
$$;
