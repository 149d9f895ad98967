-- enterprise_lab.distribute() without Citus: a clear refusal, nothing
-- done; and a plan that covers every table of the extension.
BEGIN;
CREATE EXTENSION IF NOT EXISTS enterprise_lab;
SELECT plan(5);

CREATE FUNCTION pg_temp.hint_of(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  hint text;
BEGIN
  EXECUTE sql;
  RETURN NULL;
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS hint = PG_EXCEPTION_HINT;
  RETURN hint;
END $$;

SELECT throws_ok($$ SELECT * FROM enterprise_lab.distribute() $$,
  '55000', format('Citus is not installed in database "%s"', current_database()),
  'distribute() refuses where Citus is not installed');
SELECT matches(pg_temp.hint_of('SELECT * FROM enterprise_lab.distribute()'),
  'shared_preload_libraries.*CREATE EXTENSION citus.*citus_add_node',
  'the refusal says how to set Citus up');

-- Every lifecycle table (it carries submission_id) is distributed by it;
-- every other table is reference data, but
-- the per-node counter slots and the record of deleted seed rows.
SELECT set_eq(
  $$ SELECT relation FROM enterprise_lab.distribution_plan() WHERE layout = 'distributed' $$,
  $$ SELECT c.oid::regclass FROM pg_class c JOIN pg_depend d ON d.objid = c.oid AND d.deptype = 'e'
      WHERE c.relkind = 'r' AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'enterprise_lab')
        AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'submission_id') $$,
  'the plan distributes every table that carries submission_id');
SELECT set_eq(
  $$ SELECT relation FROM enterprise_lab.distribution_plan() WHERE layout = 'reference' $$,
  $$ SELECT c.oid::regclass FROM pg_class c JOIN pg_depend d ON d.objid = c.oid AND d.deptype = 'e'
      WHERE c.relkind = 'r' AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'enterprise_lab')
        AND NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'submission_id')
        AND c.oid NOT IN ('dashboard.status_count_slots'::regclass, 'enterprise_lab.deleted_config_rows'::regclass) $$,
  'the plan makes every other table a reference table, but the counter slots and the deleted seed rows');
SELECT is_empty(
  $$ SELECT p.relation FROM enterprise_lab.distribution_plan() p
       JOIN pg_constraint c ON c.conrelid = p.relation AND c.contype = 'f'
       JOIN enterprise_lab.distribution_plan() r ON r.relation = c.confrelid
      WHERE r.step > p.step $$,
  'a referenced table comes before the tables that reference it');

SELECT * FROM finish();
ROLLBACK;
