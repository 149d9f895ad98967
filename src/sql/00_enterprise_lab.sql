-- enterprise_lab: the extension's own schema (administration, shared helpers).
-- The install script is assembled from the files of src/sql/ in name order,
-- one file per system boundary, in lifecycle order.

\echo Use "CREATE EXTENSION enterprise_lab" to load this file. \quit

CREATE SCHEMA enterprise_lab;
COMMENT ON SCHEMA enterprise_lab IS
  'Administration of the enterprise_lab extension: status, maintenance, demo data.';

CREATE FUNCTION enterprise_lab.touch_updated_at() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  NEW.updated_at := now();
  RETURN NEW;
END $$;
COMMENT ON FUNCTION enterprise_lab.touch_updated_at() IS
  'Trigger: keeps updated_at current on every UPDATE.';

-- Rows the install script adds are "seeded"; a seeded row a user changes
-- becomes user data, which upgrade scripts leave alone (they change seed
-- rows only WHERE seeded).  Backups keep both kinds: see 94_backup.sql.
CREATE FUNCTION enterprise_lab.mark_user_modified() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF NEW IS DISTINCT FROM OLD THEN
    NEW.seeded := false;
  END IF;
  RETURN NEW;
END $$;
COMMENT ON FUNCTION enterprise_lab.mark_user_modified() IS
  'Trigger: a changed seeded row becomes user data (seeded = false), which upgrades leave alone.';

-- Text a person would see.  Blank includes what looks blank: Unicode spaces
-- (no-break, ideographic, ...), zero-width characters, word joiner,
-- byte-order mark, soft hyphen, fillers and directional marks.
-- In C (src/visible_text.c): CHECK constraints call it, and a SQL function
-- there is parsed again for every statement.
CREATE FUNCTION enterprise_lab.has_visible_text(value text) RETURNS boolean
  AS 'MODULE_PATHNAME', 'el_has_visible_text' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION enterprise_lab.has_visible_text(text) IS
  'Does the text contain a visible character? Spaces of every kind, zero-width and other invisible characters do not count.';

-- Time-ordered keys (src/uuid_v7.c) for the rows written at the event
-- rate: their indexes grow at their ends instead of at random pages.
CREATE FUNCTION enterprise_lab.uuid_v7() RETURNS uuid
  AS 'MODULE_PATHNAME', 'el_uuid_v7' LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION enterprise_lab.uuid_v7() IS
  'A version 7 UUID (RFC 9562): Unix time in milliseconds, sub-millisecond time, 62 random bits; the keys one session makes ascend.';
