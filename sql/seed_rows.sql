-- Seed rows and backups: every row of a table with seed data is dumped; on
-- restore (session_replication_role = replica) a dumped row replaces the
-- seed row CREATE EXTENSION put back under its key, and a deleted seed row
-- is deleted again.  Outside a restore, a second row with a seed key is an
-- error that says what to do.
CREATE EXTENSION enterprise_lab;
\set VERBOSITY default
\set SHOW_CONTEXT never

-- Which tables have seed rows, and how pg_dump treats them.
SELECT c.relname, x.cond AS dump_filter,
       (SELECT count(*) FROM pg_trigger t WHERE t.tgrelid = c.oid AND t.tgname LIKE '%restore_seeded' AND t.tgenabled = 'A') AS always_trigger
  FROM pg_extension e,
       unnest(e.extconfig, e.extcondition) AS x(tab, cond)
  JOIN pg_class c ON c.oid = x.tab
 WHERE e.extname = 'enterprise_lab'
   AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'seeded')
 ORDER BY 1;

-- A user change makes a seed row user data.
UPDATE reference.priorities SET name = 'Urgent' WHERE code = 'critical';
SELECT code, name, seeded FROM reference.priorities ORDER BY rank;

-- Outside a restore, inserting a row with a seed key is refused.
INSERT INTO reference.teams (code, name) VALUES ('security', 'Security team');
\echo :LAST_ERROR_SQLSTATE
-- Keys that are not seed keys behave as always.
INSERT INTO reference.teams (code, name) VALUES ('night_shift', 'Night shift');
INSERT INTO reference.teams (code, name) VALUES ('night_shift', 'Night shift');
\echo :LAST_ERROR_SQLSTATE

-- A deleted row is remembered by key.
DELETE FROM operational.status_transitions WHERE from_status = 'open' AND to_status = 'rejected';
SELECT table_schema, table_name, row_key FROM enterprise_lab.deleted_config_rows;

-- What a restore does, in replica mode (as pg_restore runs it).
SET session_replication_role = replica;
INSERT INTO reference.teams (code, name, email, active, seeded, created_at, updated_at)
VALUES ('security', 'Security (restored)', 'sec@example.test', false, false, '2020-01-01', '2020-01-02');
SELECT code, name, email, active, seeded, created_at, updated_at FROM reference.teams WHERE code = 'security';
SELECT count(*) FROM reference.teams;
-- The seed row CREATE EXTENSION put back is deleted again by its memory.
INSERT INTO operational.status_transitions VALUES ('open', 'rejected', true);
SELECT count(*) FROM operational.status_transitions WHERE from_status = 'open' AND to_status = 'rejected';
DELETE FROM enterprise_lab.deleted_config_rows;
INSERT INTO enterprise_lab.deleted_config_rows (table_schema, table_name, row_key)
VALUES ('operational', 'status_transitions', '{"from_status": "open", "to_status": "rejected"}');
SELECT count(*) FROM operational.status_transitions WHERE from_status = 'open' AND to_status = 'rejected';
RESET session_replication_role;

DROP EXTENSION enterprise_lab;
