-- enterprise_lab (backup): what makes pg_dump / pg_restore keep every row.
--
-- Every table with user data is registered with pg_extension_config_dump,
-- whole (no filter), including the tables CREATE EXTENSION fills with seed
-- rows (they have a "seeded" column).  A restore runs CREATE EXTENSION
-- first, which inserts the seed rows again, and then loads the dumped rows:
--   * a dumped row with the key of a seed row that is already there
--     replaces it, so a seed row comes back exactly as it was dumped, user
--     changes and timestamps included (restore_seeded_row);
--   * a row deleted from such a table is remembered by key in
--     deleted_config_rows, which is dumped too; restoring that record deletes
--     the seed row CREATE EXTENSION put back, so a deleted seed row stays
--     deleted.
-- The load runs with session_replication_role = replica, so the lifecycle
-- triggers (which already ran when the rows were first written) do not
-- fire again; the triggers here are ENABLE ALWAYS because they are the
-- ones that must.  See docs/operations.md for the commands.

CREATE TABLE enterprise_lab.deleted_config_rows (
  table_schema text NOT NULL,
  table_name   text NOT NULL,
  row_key      jsonb NOT NULL,
  deleted_by   text NOT NULL DEFAULT current_user,
  deleted_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (table_schema, table_name, row_key)
);
COMMENT ON TABLE enterprise_lab.deleted_config_rows IS
  'Keys of rows deleted from tables that have seed rows, so that restoring a dump does not bring deleted seed rows back.';

-- "key1 = ($1).key1 AND key2 = ($1).key2" for the trigger's key columns.
CREATE FUNCTION enterprise_lab.seed_key_condition(key_columns text[]) RETURNS text
LANGUAGE sql IMMUTABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
  SELECT string_agg(format('%I = ($1).%I', k, k), ' AND ')
    FROM unnest(key_columns) AS k
$$;
COMMENT ON FUNCTION enterprise_lab.seed_key_condition(text[]) IS
  'Helper of the seed-row triggers: the WHERE condition matching a row on the given key columns.';

CREATE FUNCTION enterprise_lab.restore_seeded_row() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  target text := format('%I.%I', TG_TABLE_SCHEMA, TG_TABLE_NAME);
  condition text := enterprise_lab.seed_key_condition(TG_ARGV);
  columns text;
  existing_is_seeded boolean;
BEGIN
  EXECUTE format('SELECT seeded FROM %s WHERE %s', target, condition)
     INTO existing_is_seeded USING NEW;
  IF existing_is_seeded IS NOT TRUE THEN
    RETURN NEW;     -- no such key, or a user row: the insert decides
  END IF;

  IF current_setting('session_replication_role') <> 'replica' THEN
    RAISE EXCEPTION 'a row with this key is part of the extension''s seed data in %', target
      USING ERRCODE = 'unique_violation',
            DETAIL = format('Key: %s.', (SELECT jsonb_object_agg(k, to_jsonb(NEW) -> k) FROM unnest(TG_ARGV) AS k)),
            HINT = 'Change the seed row with UPDATE instead. When restoring a dump, run pg_restore with '
                   'PGOPTIONS=''-c session_replication_role=replica'' (see docs/operations.md).';
  END IF;

  -- Restoring: the dumped version replaces the seed row.
  SELECT string_agg(format('%I = ($1).%I', a.attname, a.attname), ', ' ORDER BY a.attnum)
    INTO columns
    FROM pg_attribute a
   WHERE a.attrelid = TG_RELID AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '';
  EXECUTE format('UPDATE %s SET %s WHERE %s', target, columns, condition) USING NEW;
  RETURN NULL;
END $$;
COMMENT ON FUNCTION enterprise_lab.restore_seeded_row() IS
  'Trigger (restore): a dumped row whose key matches a seed row replaces the seed row instead of conflicting with it.';

CREATE FUNCTION enterprise_lab.remember_deleted_row() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  INSERT INTO enterprise_lab.deleted_config_rows (table_schema, table_name, row_key)
  SELECT TG_TABLE_SCHEMA, TG_TABLE_NAME, jsonb_object_agg(k, to_jsonb(OLD) -> k)
    FROM unnest(TG_ARGV) AS k
  ON CONFLICT DO NOTHING;
  RETURN NULL;
END $$;
COMMENT ON FUNCTION enterprise_lab.remember_deleted_row() IS
  'Trigger: records the key of a deleted row in enterprise_lab.deleted_config_rows so that a restore keeps the deletion.';

CREATE FUNCTION enterprise_lab.restore_deleted_row() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  key_columns text[];
BEGIN
  IF current_setting('session_replication_role') = 'replica' THEN
    SELECT array_agg(k ORDER BY k) INTO key_columns FROM jsonb_object_keys(NEW.row_key) AS k;
    EXECUTE format('DELETE FROM %I.%I WHERE seeded AND %s', NEW.table_schema, NEW.table_name,
                   (SELECT string_agg(format('%I::text = ($1 ->> %L)', k, k), ' AND ')
                      FROM unnest(key_columns) AS k))
      USING NEW.row_key;
  END IF;
  RETURN NEW;
END $$;
COMMENT ON FUNCTION enterprise_lab.restore_deleted_row() IS
  'Trigger (restore): restoring the record of a deleted row deletes the seed row CREATE EXTENSION put back under that key.';

CREATE TRIGGER deleted_config_rows_restore BEFORE INSERT ON enterprise_lab.deleted_config_rows
  FOR EACH ROW EXECUTE FUNCTION enterprise_lab.restore_deleted_row();
ALTER TABLE enterprise_lab.deleted_config_rows ENABLE ALWAYS TRIGGER deleted_config_rows_restore;

-- Attach both triggers to every table of the extension that has seed rows.
DO $$
DECLARE
  t record;
BEGIN
  FOR t IN
    SELECT c.oid::regclass AS tab, c.relname,
           (SELECT string_agg(quote_literal(a.attname), ', ' ORDER BY array_position(i.indkey::int2[], a.attnum))
              FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
             WHERE i.indrelid = c.oid AND i.indisprimary) AS key_args
      FROM pg_class c
      JOIN pg_namespace n ON n.oid = c.relnamespace
      JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
      JOIN pg_extension x ON x.oid = d.refobjid AND x.extname = 'enterprise_lab'
     WHERE c.relkind = 'r'
       AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'seeded' AND NOT a.attisdropped)
     ORDER BY 1
  LOOP
    EXECUTE format('CREATE TRIGGER %I BEFORE INSERT ON %s FOR EACH ROW EXECUTE FUNCTION enterprise_lab.restore_seeded_row(%s)',
                   t.relname || '_05_restore_seeded', t.tab, t.key_args);
    EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER %I', t.tab, t.relname || '_05_restore_seeded');
    EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON %s FOR EACH ROW EXECUTE FUNCTION enterprise_lab.remember_deleted_row(%s)',
                   t.relname || '_90_remember_deleted', t.tab, t.key_args);
  END LOOP;
END $$;

SELECT pg_catalog.pg_extension_config_dump('enterprise_lab.deleted_config_rows', '');
