-- 0013: `serve` reloads its policies whenever they change and reads the devices (the bulk of a
-- large site's policies) again only when they changed: this counts the statements that changed
-- them, read in the same snapshot as the policies, so a reload can tell, whatever the order its
-- notifications arrive in.
CREATE TABLE devices_version (
    version bigint NOT NULL
);
INSERT INTO devices_version VALUES (0);

CREATE FUNCTION devices_version_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE devices_version SET version = version + 1;
    RETURN NULL;
END
$$;
CREATE TRIGGER devices_version_bump AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON devices
    FOR EACH STATEMENT EXECUTE FUNCTION devices_version_bump();
