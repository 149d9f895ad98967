-- enterprise_lab 0.1.0 -> 0.2.0: operations (maintenance jobs, retention,
-- SLA escalation, status()) and backups that keep every row.
--
-- Every change to src/sql/ after 0.1.0 must be repeated here: the upgrade
-- suite (test/suites/upgrade) compares an upgraded database with a fresh
-- install of the newest version, object by object.

\echo Use "ALTER EXTENSION enterprise_lab UPDATE TO '0.2.0'" to load this file. \quit

-- Seed rows are dumped too (a restore replaces the ones CREATE EXTENSION
-- recreates, see 94_backup.sql below).
COMMENT ON FUNCTION enterprise_lab.mark_user_modified() IS
  'Trigger: a changed seeded row becomes user data (seeded = false), which upgrades leave alone.';
SELECT pg_catalog.pg_extension_config_dump('reference.customers', '');
SELECT pg_catalog.pg_extension_config_dump('reference.agreements', '');
SELECT pg_catalog.pg_extension_config_dump('reference.request_types', '');
SELECT pg_catalog.pg_extension_config_dump('reference.priorities', '');
SELECT pg_catalog.pg_extension_config_dump('reference.teams', '');
SELECT pg_catalog.pg_extension_config_dump('canonical.status_map', '');

-- Handlers, case statuses and transitions get seed rows of their own.  Rows
-- that still hold the 0.1.0 seed values are seed rows; anything else is the
-- user's.  (Marked before the triggers exist: they would unmark them.)
ALTER TABLE integration.event_handlers ADD COLUMN seeded boolean NOT NULL DEFAULT false;
CREATE TRIGGER event_handlers_10_user_modified BEFORE UPDATE ON integration.event_handlers
  FOR EACH ROW EXECUTE FUNCTION enterprise_lab.mark_user_modified();
SELECT pg_catalog.pg_extension_config_dump('integration.event_handlers', '');

ALTER TABLE operational.case_statuses ADD COLUMN seeded boolean NOT NULL DEFAULT false;
UPDATE operational.case_statuses SET seeded = true
 WHERE (status, is_terminal, description) IN (VALUES
   ('open', false, 'Received by the operational team, not started.'),
   ('in_progress', false, 'Being worked on.'),
   ('completed', true, 'Done. Terminal.'),
   ('rejected', true, 'Will not be done. Terminal.'));
ALTER TABLE operational.status_transitions ADD COLUMN seeded boolean NOT NULL DEFAULT false;
UPDATE operational.status_transitions SET seeded = true
 WHERE (from_status, to_status) IN (VALUES
   ('open', 'in_progress'), ('open', 'rejected'), ('in_progress', 'completed'), ('in_progress', 'rejected'));
CREATE TRIGGER case_statuses_10_user_modified BEFORE UPDATE ON operational.case_statuses
  FOR EACH ROW EXECUTE FUNCTION enterprise_lab.mark_user_modified();
CREATE TRIGGER status_transitions_10_user_modified BEFORE UPDATE ON operational.status_transitions
  FOR EACH ROW EXECUTE FUNCTION enterprise_lab.mark_user_modified();
SELECT pg_catalog.pg_extension_config_dump('operational.case_statuses', '');
SELECT pg_catalog.pg_extension_config_dump('operational.status_transitions', '');

-- ---------------------------------------------------------------- 40_maintenance.sql
-- enterprise_lab (maintenance): the jobs a running installation needs, and
-- their registration with pg_cron.
--
--   retention               completed events and their success sync logs
--                           older than enterprise_lab.event_retention
--   storage reconciliation  document_repo.reconcile_storage()
--   SLA escalation          operational.escalate_sla_breaches()
--   event processing        integration.process_events(), only for databases
--                           that run without the preloaded workers

CREATE FUNCTION enterprise_lab.event_retention() RETURNS interval
  AS 'MODULE_PATHNAME', 'el_event_retention' LANGUAGE C STABLE;
COMMENT ON FUNCTION enterprise_lab.event_retention() IS
  'The retention in force (enterprise_lab.event_retention); NULL when completed events are kept forever.';

CREATE FUNCTION enterprise_lab.purge_completed_events(batch_size integer DEFAULT 1000)
RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  retention interval := enterprise_lab.event_retention();
  removed integer;
BEGIN
  IF batch_size IS NULL OR batch_size < 1 THEN
    RAISE EXCEPTION 'batch_size must be at least 1'
      USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('The value given was %s.', coalesce(batch_size::text, 'NULL'));
  END IF;
  IF retention IS NULL THEN
    RETURN 0;
  END IF;

  -- Only completed events: failed, dead-lettered and skipped events, the
  -- failure sync logs, lineage and status history are kept.  SKIP LOCKED:
  -- never wait for (or on) a worker.
  WITH expired AS (
    SELECT e.id
      FROM integration.events e
     WHERE e.status = 'completed' AND e.processed_at < now() - retention
     ORDER BY e.processed_at
     LIMIT batch_size
       FOR UPDATE SKIP LOCKED
  ), logs AS (
    DELETE FROM integration.sync_logs l
     USING expired
     WHERE l.event_id = expired.id AND l.outcome = 'success'
  )
  DELETE FROM integration.events e
   USING expired
   WHERE e.id = expired.id;
  GET DIAGNOSTICS removed = ROW_COUNT;
  RETURN removed;
END $$;
COMMENT ON FUNCTION enterprise_lab.purge_completed_events(integer) IS
  'Remove up to batch_size completed events older than enterprise_lab.event_retention, with their success sync logs; returns how many events.';

CREATE PROCEDURE enterprise_lab.run_retention(batch_size integer DEFAULT 1000, max_batches integer DEFAULT 1000)
LANGUAGE plpgsql AS $$
DECLARE
  removed integer;
  total bigint := 0;
BEGIN
  -- One short transaction per batch: locks and snapshots stay small.
  FOR i IN 1 .. max_batches LOOP
    removed := enterprise_lab.purge_completed_events(batch_size);
    total := total + removed;
    COMMIT;
    EXIT WHEN removed < batch_size;
  END LOOP;
  RAISE LOG 'enterprise_lab: retention removed % completed events older than %',
    total, coalesce(enterprise_lab.event_retention()::text, 'forever (retention disabled)');
END $$;
COMMENT ON PROCEDURE enterprise_lab.run_retention(integer, integer) IS
  'The retention job: purge_completed_events() in batches, committing after each, until nothing is left (at most max_batches).';

-- The jobs schedule_maintenance() registers: name, default schedule, command.
CREATE FUNCTION enterprise_lab.maintenance_jobs(
  retention_schedule text, reconcile_schedule text, sla_schedule text,
  include_processing boolean, processing_schedule text, processing_batch integer)
RETURNS TABLE (jobname text, schedule text, command text)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT * FROM (VALUES
    ('enterprise_lab.retention', retention_schedule, 'CALL enterprise_lab.run_retention()'),
    ('enterprise_lab.sla_escalation', sla_schedule, 'SELECT operational.escalate_sla_breaches()'),
    ('enterprise_lab.storage_reconciliation', reconcile_schedule, 'SELECT count(*) FROM document_repo.reconcile_storage()'))
    AS j(jobname, schedule, command)
  UNION ALL
  SELECT 'enterprise_lab.process_events', processing_schedule,
         format('SELECT integration.process_events(%s)', processing_batch)
   WHERE include_processing
$$;
COMMENT ON FUNCTION enterprise_lab.maintenance_jobs(text, text, text, boolean, text, integer) IS
  'Helper of schedule_maintenance(): the pg_cron jobs it registers.';

CREATE FUNCTION enterprise_lab.require_pg_cron() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron') THEN
    RAISE EXCEPTION 'pg_cron is not installed in database "%"', current_database()
      USING ERRCODE = 'object_not_in_prerequisite_state',
            DETAIL = 'The maintenance jobs are run by pg_cron.',
            HINT = 'CREATE EXTENSION pg_cron; add it to shared_preload_libraries and set cron.database_name to this database. '
                   'Without pg_cron, run the job commands listed in docs/operations.md from another scheduler.';
  END IF;
END $$;
COMMENT ON FUNCTION enterprise_lab.require_pg_cron() IS
  'Raise a clear error (SQLSTATE 55000) when pg_cron is not installed in this database.';

CREATE FUNCTION enterprise_lab.schedule_maintenance(
  retention_schedule  text DEFAULT '17 3 * * *',
  reconcile_schedule  text DEFAULT '47 3 * * *',
  sla_schedule        text DEFAULT '* * * * *',
  include_processing  boolean DEFAULT false,
  processing_schedule text DEFAULT '* * * * *',
  processing_batch    integer DEFAULT 1000)
RETURNS TABLE (jobid bigint, jobname text, schedule text, command text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  j record;
BEGIN
  PERFORM enterprise_lab.require_pg_cron();
  IF include_processing AND (processing_batch IS NULL OR processing_batch < 1) THEN
    RAISE EXCEPTION 'processing_batch must be at least 1'
      USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('The value given was %s.', coalesce(processing_batch::text, 'NULL'));
  END IF;
  FOR j IN SELECT * FROM enterprise_lab.maintenance_jobs(retention_schedule, reconcile_schedule, sla_schedule,
                                                         include_processing, processing_schedule, processing_batch) LOOP
    IF j.schedule IS NULL THEN
      RAISE EXCEPTION 'the schedule of job % must not be NULL', j.jobname
        USING ERRCODE = 'null_value_not_allowed',
              HINT = 'Use cron syntax, e.g. ''17 3 * * *'' for 03:17 every day.';
    END IF;
    -- cron.schedule() with a name replaces an existing job of that name.
    jobid := cron.schedule(j.jobname, j.schedule, j.command);
    jobname := j.jobname;
    schedule := j.schedule;
    command := j.command;
    RETURN NEXT;
  END LOOP;
  -- A processing job from an earlier call goes when it is no longer asked for.
  IF NOT include_processing THEN
    PERFORM cron.unschedule(c.jobid) FROM cron.job c
      WHERE c.jobname = 'enterprise_lab.process_events' AND c.username = current_user;
  END IF;
END $$;
COMMENT ON FUNCTION enterprise_lab.schedule_maintenance(text, text, text, boolean, text, integer) IS
  'Register (or update) the maintenance jobs with pg_cron: retention, SLA escalation, storage reconciliation and, with include_processing, a fallback event-processing job. Returns the jobs.';

CREATE FUNCTION enterprise_lab.unschedule_maintenance() RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  n integer := 0;
  id bigint;
BEGIN
  PERFORM enterprise_lab.require_pg_cron();
  FOR id IN SELECT c.jobid FROM cron.job c
             WHERE c.jobname LIKE 'enterprise\_lab.%' AND c.username = current_user LOOP
    PERFORM cron.unschedule(id);
    n := n + 1;
  END LOOP;
  RETURN n;
END $$;
COMMENT ON FUNCTION enterprise_lab.unschedule_maintenance() IS
  'Remove every enterprise_lab.* pg_cron job of the current user; returns how many. Run it before DROP EXTENSION.';

-- ---------------------------------------------------------------- 41_sla.sql
-- operational (SLA): per-priority resolution deadlines, breach detection
-- and escalation.  A case still in a non-terminal status past its deadline
-- is flagged once (operational.sla_breaches) and an
-- OperationalCaseSlaBreached event carries the breach to the canonical
-- object, through the registered handler canonical.record_sla_breach().

CREATE TABLE operational.sla_policies (
  priority_code   text PRIMARY KEY REFERENCES reference.priorities (code),
  resolution_time interval NOT NULL
                  CONSTRAINT sla_policies_resolution_time_positive CHECK (resolution_time > interval '0'),
  description     text,
  seeded          boolean NOT NULL DEFAULT false
);
COMMENT ON TABLE operational.sla_policies IS
  'How long a case of each priority may stay open (not in a terminal status) before its SLA is breached. Priorities without a row have no SLA.';

INSERT INTO operational.sla_policies (priority_code, resolution_time, description, seeded) VALUES
  ('critical', interval '4 hours', 'Critical: resolve within 4 hours.', true),
  ('high', interval '1 day', 'High: resolve within 1 day.', true),
  ('medium', interval '3 days', 'Medium: resolve within 3 days.', true),
  ('low', interval '7 days', 'Low: resolve within 7 days.', true);

CREATE TRIGGER sla_policies_10_user_modified BEFORE UPDATE ON operational.sla_policies
  FOR EACH ROW EXECUTE FUNCTION enterprise_lab.mark_user_modified();

CREATE TABLE operational.sla_breaches (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  submission_id uuid NOT NULL,
  case_id       uuid NOT NULL REFERENCES operational.operation_cases (id),
  priority_code text NOT NULL,
  case_status   text NOT NULL,
  opened_at     timestamptz NOT NULL,
  deadline      timestamptz NOT NULL,
  detected_at   timestamptz NOT NULL DEFAULT now(),
  event_id      uuid,
  CONSTRAINT sla_breaches_once_per_case UNIQUE (case_id)
);
CREATE INDEX sla_breaches_submission_idx ON operational.sla_breaches (submission_id);
COMMENT ON TABLE operational.sla_breaches IS
  'One row per case that missed its SLA deadline (flagged once: the unique key on case_id), with the event that published it.';
COMMENT ON COLUMN operational.sla_breaches.case_status IS 'The case status when the breach was detected.';

-- The escalation looks at non-terminal cases by status and age.
CREATE INDEX operation_cases_status_opened_idx ON operational.operation_cases (processing_status, opened_at);

CREATE FUNCTION operational.escalate_sla_breaches(max_cases integer DEFAULT 1000) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  n integer;
BEGIN
  IF max_cases IS NULL OR max_cases < 1 THEN
    RAISE EXCEPTION 'max_cases must be at least 1'
      USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('The value given was %s.', coalesce(max_cases::text, 'NULL'));
  END IF;

  -- The unique key on case_id flags a breach once, even when two
  -- escalations run at the same time; the event's idempotency key makes its
  -- publication once as well.
  WITH overdue AS (
    SELECT c.id, c.submission_id, c.external_reference, c.priority_code, c.processing_status,
           c.opened_at, c.opened_at + p.resolution_time AS deadline,
           gen_random_uuid() AS breach_id, gen_random_uuid() AS event_id
      FROM operational.operation_cases c
      JOIN operational.sla_policies p ON p.priority_code = c.priority_code
     WHERE c.processing_status IN (SELECT status FROM operational.case_statuses WHERE NOT is_terminal)
       AND c.opened_at + p.resolution_time < now()
       AND NOT EXISTS (SELECT 1 FROM operational.sla_breaches b WHERE b.case_id = c.id)
     ORDER BY c.opened_at + p.resolution_time
     LIMIT max_cases
  ), flagged AS (
    INSERT INTO operational.sla_breaches AS b
           (id, submission_id, case_id, priority_code, case_status, opened_at, deadline, event_id)
    SELECT o.breach_id, o.submission_id, o.id, o.priority_code, o.processing_status, o.opened_at,
           o.deadline, o.event_id
      FROM overdue o
    ON CONFLICT ON CONSTRAINT sla_breaches_once_per_case DO NOTHING
    RETURNING b.*
  )
  INSERT INTO integration.events AS e
         (id, submission_id, event_type, source_system, aggregate_type, aggregate_id, payload, idempotency_key)
  SELECT f.event_id, f.submission_id, 'OperationalCaseSlaBreached', 'operational', 'operation_case', f.case_id,
         jsonb_build_object('breach_id', f.id,
                            'case_id', f.case_id,
                            'external_reference', o.external_reference,
                            'priority', f.priority_code,
                            'case_status', f.case_status,
                            'opened_at', f.opened_at,
                            'deadline', f.deadline,
                            'detected_at', f.detected_at),
         'sla_breached:' || f.case_id
    FROM flagged f JOIN overdue o ON o.id = f.case_id
  ON CONFLICT ON CONSTRAINT events_idempotency_key_unique DO NOTHING;
  GET DIAGNOSTICS n = ROW_COUNT;
  IF n > 0 THEN
    RAISE LOG 'enterprise_lab: % case(s) breached their SLA', n;
  END IF;
  RETURN n;
END $$;
COMMENT ON FUNCTION operational.escalate_sla_breaches(integer) IS
  'The SLA escalation job: flag up to max_cases non-terminal cases past their deadline (once each) and enqueue OperationalCaseSlaBreached for each; returns how many were flagged.';

CREATE FUNCTION canonical.record_sla_breach(e integration.events) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  UPDATE canonical.business_objects b
     SET attributes = b.attributes || jsonb_build_object('sla', jsonb_build_object(
           'status', 'breached',
           'priority', e.payload -> 'priority',
           'deadline', e.payload -> 'deadline',
           'breached_at', e.payload -> 'detected_at',
           'case_status', e.payload -> 'case_status')),
         updated_at = now()
   WHERE b.submission_id = e.submission_id AND b.object_type = 'service_request';
  IF NOT FOUND THEN
    RAISE EXCEPTION 'submission % has no canonical object yet', e.submission_id
      USING ERRCODE = 'no_data_found',
            DETAIL = format('Event %s reports an SLA breach of case %s.', e.id, e.payload ->> 'case_id'),
            HINT = 'Process or replay the submission''s RequestCreated event first.';
  END IF;
END $$;
COMMENT ON FUNCTION canonical.record_sla_breach(integration.events) IS
  'Handler of OperationalCaseSlaBreached: writes the breach into the canonical object''s attributes (key "sla").';

INSERT INTO integration.event_handlers (event_type, handler, description, seeded) VALUES
  ('OperationalCaseSlaBreached', 'canonical.record_sla_breach(integration.events)',
   'Records an SLA breach in the canonical object''s attributes.', true);

CREATE VIEW dashboard.sla_metrics AS
SELECT p.priority_code,
       p.resolution_time,
       (SELECT count(*) FROM operational.operation_cases c
         WHERE c.priority_code = p.priority_code
           AND c.processing_status IN (SELECT status FROM operational.case_statuses WHERE NOT is_terminal)) AS open_cases,
       (SELECT count(*) FROM operational.operation_cases c
         WHERE c.priority_code = p.priority_code
           AND c.processing_status IN (SELECT status FROM operational.case_statuses WHERE NOT is_terminal)
           AND c.opened_at + p.resolution_time < now()) AS overdue_cases,
       (SELECT count(*) FROM operational.sla_breaches b
          JOIN operational.operation_cases c ON c.id = b.case_id
         WHERE b.priority_code = p.priority_code
           AND c.processing_status IN (SELECT status FROM operational.case_statuses WHERE NOT is_terminal)) AS open_breaches,
       (SELECT count(*) FROM operational.sla_breaches b WHERE b.priority_code = p.priority_code) AS total_breaches
  FROM operational.sla_policies p
  JOIN reference.priorities pr ON pr.code = p.priority_code
 ORDER BY pr.rank;
COMMENT ON VIEW dashboard.sla_metrics IS
  'SLA per priority: open cases, overdue cases, breaches still open and breaches ever flagged.';

SELECT pg_catalog.pg_extension_config_dump('operational.sla_policies', '');
SELECT pg_catalog.pg_extension_config_dump('operational.sla_breaches', '');

-- ---------------------------------------------------------------- 45_status.sql
-- enterprise_lab (status): one call that tells an operator what is going on.

CREATE FUNCTION enterprise_lab.status() RETURNS jsonb
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  retention interval := enterprise_lab.event_retention();   -- also loads the library and its GUCs
  result jsonb;
  s3 jsonb;
  jobs jsonb;
BEGIN
  SELECT jsonb_build_object(
           'version', (SELECT extversion FROM pg_extension WHERE extname = 'enterprise_lab'),
           'database', current_database(),
           'workers', jsonb_build_object(
             'preloaded', 'enterprise_lab' = ANY (string_to_array(replace(current_setting('shared_preload_libraries'), ' ', ''), ',')),
             'serving_this_database', current_setting('enterprise_lab.database', true) = current_database(),
             'configured', current_setting('enterprise_lab.worker_count', true)::integer,
             'running', (SELECT count(*) FROM integration.worker_status),
             'detail', coalesce((SELECT jsonb_agg(to_jsonb(w) ORDER BY w.worker) FROM integration.worker_status w), '[]')),
           'events', (SELECT jsonb_build_object(
                        'pending', count(*) FILTER (WHERE status = 'pending'),
                        'failed', count(*) FILTER (WHERE status = 'failed'),
                        'dead_lettered', count(*) FILTER (WHERE status = 'dead_letter'),
                        'oldest_pending_age_seconds',
                          round(extract(epoch FROM now() - min(created_at) FILTER (WHERE status IN ('pending', 'failed'))), 3),
                        'held_submissions', (SELECT count(*) FROM integration.held_submissions))
                        FROM integration.events
                       WHERE status IN ('pending', 'failed', 'dead_letter')),
           'sla', jsonb_build_object(
             'open_breaches', (SELECT coalesce(sum(open_breaches), 0) FROM dashboard.sla_metrics),
             'overdue_cases', (SELECT coalesce(sum(overdue_cases), 0) FROM dashboard.sla_metrics)),
           'event_retention_seconds', extract(epoch FROM retention)::bigint)
    INTO result;

  -- S3 reachability.  s3_health() reports S3 failures itself; anything
  -- else (a missing privilege, say) must not keep status() from answering.
  BEGIN
    s3 := document_repo.s3_health();
  EXCEPTION WHEN OTHERS THEN
    s3 := jsonb_build_object('reachable', false, 'error', SQLERRM, 'sqlstate', SQLSTATE);
  END;
  result := result || jsonb_build_object('s3', s3);

  -- Our pg_cron jobs and how their last run went, when pg_cron is here.
  IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron') THEN
    EXECUTE $q$
      SELECT coalesce(jsonb_agg(jsonb_build_object(
               'jobid', j.jobid, 'jobname', j.jobname, 'schedule', j.schedule,
               'command', j.command, 'active', j.active,
               'last_status', r.status, 'last_start', r.start_time,
               'last_message', r.return_message) ORDER BY j.jobname), '[]')
        FROM cron.job j
        LEFT JOIN LATERAL (SELECT d.status, d.start_time, d.return_message
                             FROM cron.job_run_details d
                            WHERE d.jobid = j.jobid
                            ORDER BY d.start_time DESC NULLS LAST LIMIT 1) r ON true
       WHERE j.jobname LIKE 'enterprise\_lab.%' AND j.database = current_database()
    $q$ INTO jobs;
  END IF;
  RETURN result || jsonb_build_object('scheduled_jobs', jobs);
END $$;
COMMENT ON FUNCTION enterprise_lab.status() IS
  'Operator summary as jsonb: version, workers, pending/failed/dead-lettered events and the oldest pending age, SLA breaches, retention, S3 reachability and the scheduled maintenance jobs.';

-- ---------------------------------------------------------------- 94_backup.sql
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

-- ---------------------------------------------------------------- 95_access.sql
-- The roles that read the boundaries read every table and view of them
-- (GRANT ... ON ALL TABLES IN SCHEMA in a fresh install); these are new.
GRANT SELECT ON operational.sla_policies, operational.sla_breaches, dashboard.sla_metrics,
  enterprise_lab.deleted_config_rows TO lab_operator, lab_auditor, lab_admin;
