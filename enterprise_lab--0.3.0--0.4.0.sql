-- enterprise_lab 0.3.0 -> 0.4.0.
--
-- Every change to src/sql/ after 0.3.0 must be repeated here: the upgrade
-- suite (test/suites/upgrade) compares an upgraded database with a fresh
-- install of the newest version, object by object.

\echo Use "ALTER EXTENSION enterprise_lab UPDATE TO '0.4.0'" to load this file. \quit

-- distribution keys
-- Every primary, unique and foreign key of a lifecycle table includes the
-- root key submission_id (second, so look-ups by the first column keep
-- their index), which Citus requires of a distributed table.  The columns
-- before it are unique on their own (uuids, sequence numbers, keys that
-- contain the submission), so no key means anything else.
ALTER TABLE document_repo.documents DROP CONSTRAINT documents_service_request_id_fkey;
ALTER TABLE operational.sla_breaches DROP CONSTRAINT sla_breaches_case_id_fkey;

ALTER TABLE source_system.service_requests
  DROP CONSTRAINT service_requests_pkey,
  DROP CONSTRAINT service_requests_request_number_key,
  ADD CONSTRAINT service_requests_pkey PRIMARY KEY (id, submission_id),
  ADD CONSTRAINT service_requests_request_number_key UNIQUE (request_number, submission_id);
ALTER TABLE integration.events
  DROP CONSTRAINT events_pkey,
  DROP CONSTRAINT events_seq_key,
  ADD CONSTRAINT events_pkey PRIMARY KEY (id, submission_id),
  ADD CONSTRAINT events_seq_key UNIQUE (seq, submission_id);
ALTER TABLE integration.sync_logs
  DROP CONSTRAINT sync_logs_pkey,
  ADD CONSTRAINT sync_logs_pkey PRIMARY KEY (id, submission_id);
ALTER TABLE integration.deliveries
  DROP CONSTRAINT deliveries_pkey,
  DROP CONSTRAINT deliveries_once_per_event,
  ADD CONSTRAINT deliveries_pkey PRIMARY KEY (id, submission_id),
  ADD CONSTRAINT deliveries_once_per_event UNIQUE (subscription_id, event_id, submission_id);
ALTER TABLE operational.operation_cases
  DROP CONSTRAINT operation_cases_pkey,
  DROP CONSTRAINT operation_cases_service_request_id_key,
  DROP CONSTRAINT operation_cases_external_reference_key,
  ADD CONSTRAINT operation_cases_pkey PRIMARY KEY (id, submission_id),
  ADD CONSTRAINT operation_cases_service_request_id_key UNIQUE (service_request_id, submission_id),
  ADD CONSTRAINT operation_cases_external_reference_key UNIQUE (external_reference, submission_id);
ALTER TABLE operational.case_status_history
  DROP CONSTRAINT case_status_history_pkey,
  ADD CONSTRAINT case_status_history_pkey PRIMARY KEY (id, submission_id);
ALTER TABLE canonical.business_objects
  DROP CONSTRAINT business_objects_pkey,
  DROP CONSTRAINT business_objects_source_unique,
  ADD CONSTRAINT business_objects_pkey PRIMARY KEY (id, submission_id),
  ADD CONSTRAINT business_objects_source_unique UNIQUE (source_system, source_reference, submission_id);
ALTER TABLE canonical.lineage_records
  DROP CONSTRAINT lineage_records_pkey,
  ADD CONSTRAINT lineage_records_pkey PRIMARY KEY (from_id, to_id, relationship, submission_id);
ALTER TABLE document_repo.documents
  DROP CONSTRAINT documents_pkey,
  DROP CONSTRAINT documents_object_unique,
  ADD CONSTRAINT documents_pkey PRIMARY KEY (id, submission_id),
  ADD CONSTRAINT documents_service_request_id_fkey FOREIGN KEY (service_request_id, submission_id)
    REFERENCES source_system.service_requests (id, submission_id),
  ADD CONSTRAINT documents_object_unique UNIQUE (bucket, object_key, submission_id);
ALTER TABLE operational.sla_breaches
  DROP CONSTRAINT sla_breaches_pkey,
  DROP CONSTRAINT sla_breaches_once_per_case,
  ADD CONSTRAINT sla_breaches_pkey PRIMARY KEY (id, submission_id),
  ADD CONSTRAINT sla_breaches_case_id_fkey FOREIGN KEY (case_id, submission_id)
    REFERENCES operational.operation_cases (id, submission_id),
  ADD CONSTRAINT sla_breaches_once_per_case UNIQUE (case_id, submission_id);

-- The history rows carry their case's team, and operators read them by it:
-- the same rows as before, with no subquery in the policy.
ALTER TABLE operational.case_status_history ADD COLUMN team_code text;
UPDATE operational.case_status_history h SET team_code = c.team_code
  FROM operational.operation_cases c WHERE c.id = h.case_id AND c.submission_id = h.submission_id;
ALTER TABLE operational.case_status_history ALTER COLUMN team_code SET NOT NULL;
DROP POLICY history_read_own_teams ON operational.case_status_history;
CREATE POLICY history_read_own_teams ON operational.case_status_history
  FOR SELECT TO lab_operator USING (enterprise_lab.request_may_change_team(team_code));
COMMENT ON POLICY history_read_own_teams ON operational.case_status_history IS
  'An operator reading the table sees the history of the cases it sees.';

CREATE OR REPLACE FUNCTION operational.record_status_change() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  INSERT INTO operational.case_status_history
         (submission_id, case_id, previous_status, new_status, changed_by, change_reason, team_code)
  VALUES (NEW.submission_id, NEW.id, OLD.processing_status, NEW.processing_status,
          NEW.status_changed_by, NEW.status_change_reason, NEW.team_code);

  INSERT INTO integration.events
         (submission_id, event_type, source_system, aggregate_type, aggregate_id, payload)
  VALUES (NEW.submission_id, 'OperationalCaseStatusChanged', 'operational', 'operation_case', NEW.id,
          jsonb_build_object('case_id', NEW.id,
                             'external_reference', NEW.external_reference,
                             'previous_status', OLD.processing_status,
                             'new_status', NEW.processing_status,
                             'changed_by', NEW.status_changed_by,
                             'change_reason', NEW.status_change_reason));
  RETURN NULL;
END $$;

-- distribute
CREATE FUNCTION enterprise_lab.distribution_plan()
RETURNS TABLE (step integer, relation regclass, layout text, distribution_column name)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT (row_number() OVER ())::integer, p.relation::regclass, p.layout, p.distribution_column::name
    FROM (VALUES
      -- Referenced tables before the tables that reference them.
      ('reference.customers', 'reference', NULL),
      ('reference.agreements', 'reference', NULL),
      ('reference.request_types', 'reference', NULL),
      ('reference.priorities', 'reference', NULL),
      ('reference.teams', 'reference', NULL),
      ('operational.case_statuses', 'reference', NULL),
      ('operational.status_transitions', 'reference', NULL),
      ('operational.role_teams', 'reference', NULL),
      ('operational.sla_policies', 'reference', NULL),
      ('canonical.status_map', 'reference', NULL),
      ('integration.event_handlers', 'reference', NULL),
      ('integration.subscriptions', 'reference', NULL),
      ('integration.subscription_secrets', 'reference', NULL),
      ('intake.submissions', 'distributed', 'id'),
      ('source_system.service_requests', 'distributed', 'submission_id'),
      ('integration.events', 'distributed', 'submission_id'),
      ('integration.sync_logs', 'distributed', 'submission_id'),
      ('integration.deliveries', 'distributed', 'submission_id'),
      ('operational.operation_cases', 'distributed', 'submission_id'),
      ('operational.case_status_history', 'distributed', 'submission_id'),
      ('operational.sla_breaches', 'distributed', 'submission_id'),
      ('canonical.business_objects', 'distributed', 'submission_id'),
      ('canonical.lineage_records', 'distributed', 'submission_id'),
      ('document_repo.documents', 'distributed', 'submission_id')
    ) AS p (relation, layout, distribution_column)
$$;
COMMENT ON FUNCTION enterprise_lab.distribution_plan() IS
  'What enterprise_lab.distribute() does, in order: each table becomes a Citus reference table, or is distributed by submission_id colocated with intake.submissions.';

CREATE FUNCTION enterprise_lab.distribute() RETURNS TABLE (relation regclass, layout text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  p record;
  fk record;
  todo regclass[];
  fks jsonb := '[]';
  failed text;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
    RAISE EXCEPTION 'Citus is not installed in database "%"', current_database()
      USING ERRCODE = 'object_not_in_prerequisite_state',
            DETAIL = 'enterprise_lab.distribute() turns the tables of enterprise_lab into Citus reference and distributed tables.',
            HINT = 'Put citus first in shared_preload_libraries (''citus,enterprise_lab''), CREATE EXTENSION citus before enterprise_lab, '
                   'add the worker nodes with citus_add_node(), then call distribute() on the coordinator.';
  END IF;
  IF NOT pg_catalog.citus_is_coordinator() THEN
    RAISE EXCEPTION 'this node is not the Citus coordinator'
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Call enterprise_lab.distribute() on the coordinator (citus_set_coordinator_host() names it).';
  END IF;

  SELECT array_agg(d.relation ORDER BY d.step) INTO todo
    FROM enterprise_lab.distribution_plan() d
   WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition c WHERE c.logicalrelid = d.relation);
  IF todo IS NULL THEN
    RETURN;
  END IF;

  -- The lifecycle's triggers (the service request of a submission, the
  -- events of a request, the status history, the counts) run on the shard
  -- of their row, on the node that holds it, with their row's colocated
  -- shards local: Citus refuses to convert a table with triggers unless
  -- told that they are meant.
  PERFORM set_config('citus.enable_unsafe_triggers', 'on', true);
  -- One connection per node for the whole conversion: Citus cannot mix
  -- parallel shard connections with foreign keys to reference tables
  -- created in the same transaction.
  PERFORM set_config('citus.multi_shard_modify_mode', 'sequential', true);

  -- A local table with a foreign key to a table that becomes a reference
  -- table would itself be converted, into a Citus local table, and later
  -- replaced by a copy to distribute it -- which the extension's views
  -- that depend on it forbid.  So the foreign keys go first and come back,
  -- the same, once every table has its layout.
  FOR fk IN
    SELECT c.conrelid::regclass AS rel, c.conname, pg_get_constraintdef(c.oid) AS def
      FROM pg_constraint c
     WHERE c.contype = 'f' AND (c.conrelid = ANY (todo) OR c.confrelid = ANY (todo))
     ORDER BY c.conrelid::regclass::text, c.conname
  LOOP
    EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', fk.rel, fk.conname);
    -- The worker nodes' copies of the extension's tables, made by CREATE
    -- EXTENSION there, become the tables Citus routes through on those
    -- nodes: they lose the key too, or it could not come back.
    SELECT string_agg(format('%s:%s: %s', w.nodename, w.nodeport, w.result), '; ') INTO failed
      FROM pg_catalog.run_command_on_workers(
             format('ALTER TABLE %s DROP CONSTRAINT IF EXISTS %I', fk.rel, fk.conname)) w
     WHERE NOT w.success;
    IF failed IS NOT NULL THEN
      RAISE EXCEPTION 'a worker node could not drop foreign key % of % for the conversion', fk.conname, fk.rel
        USING ERRCODE = 'object_not_in_prerequisite_state', DETAIL = failed,
              HINT = 'Every worker node must be reachable and have enterprise_lab at the coordinator''s version.';
    END IF;
    fks := fks || jsonb_build_object('rel', fk.rel::text, 'name', fk.conname, 'def', fk.def);
  END LOOP;

  FOR p IN SELECT * FROM enterprise_lab.distribution_plan() d WHERE d.relation = ANY (todo) ORDER BY d.step LOOP
    IF p.layout = 'reference' THEN
      PERFORM pg_catalog.create_reference_table(p.relation);
    ELSE
      PERFORM pg_catalog.create_distributed_table(p.relation, p.distribution_column,
        colocate_with => CASE WHEN p.relation = 'intake.submissions'::regclass THEN 'default'
                              ELSE 'intake.submissions' END);
    END IF;
    relation := p.relation;
    layout := p.layout;
    RETURN NEXT;
  END LOOP;

  FOR fk IN SELECT * FROM jsonb_to_recordset(fks) AS f (rel text, name text, def text) LOOP
    EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I %s', fk.rel, fk.name, fk.def);
  END LOOP;
END
$$;
COMMENT ON FUNCTION enterprise_lab.distribute() IS
  'On a Citus coordinator: make the reference data reference tables and distribute every lifecycle table by submission_id, colocated with intake.submissions. Returns the tables it converted; a table already converted is left as it is.';
