-- enterprise_lab (distribute): the conversion to Citus's distributed layout,
-- run once on a Citus coordinator.  Reference data becomes reference tables
-- (a copy on every node); every lifecycle table is distributed by its root
-- key, submission_id, colocated with intake.submissions, so one request's
-- rows sit on one node (docs/architecture.md, Scale-out: Citus).

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
      ('reference.intake_methods', 'reference', NULL),
      ('reference.document_types', 'reference', NULL),
      ('operational.case_statuses', 'reference', NULL),
      ('operational.status_transitions', 'reference', NULL),
      ('operational.role_teams', 'reference', NULL),
      ('operational.sla_policies', 'reference', NULL),
      ('canonical.status_map', 'reference', NULL),
      ('integration.event_handlers', 'reference', NULL),
      ('integration.subscriptions', 'reference', NULL),
      ('integration.subscription_secrets', 'reference', NULL),
      ('intake.submissions', 'distributed', 'submission_id'),
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

-- After the conversion the lifecycle's triggers and workers run on the
-- worker nodes, where a default such as nextval('integration.event_seq')
-- draws from that node's own copy of the sequence, which CREATE EXTENSION
-- made there starting at 1: request numbers would repeat across nodes, and
-- a submission's next event could get a seq below those of its events made
-- on one node before the conversion.  So each worker node draws from a
-- range of its own above the coordinator's, (group id << 48) + 1 on, as
-- Citus does for the sequences it distributes itself.
CREATE FUNCTION enterprise_lab.distribute_sequences() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  failed text;
BEGIN
  SELECT string_agg(format('%s:%s: %s', w.nodename, w.nodeport, w.result), '; ') INTO failed
    FROM pg_catalog.run_command_on_workers($cmd$
      DO $do$
      DECLARE
        floor bigint := (SELECT groupid FROM pg_catalog.pg_dist_local_group)::bigint << 48;
        s regclass;
      BEGIN
        FOR s IN SELECT d.objid::regclass FROM pg_catalog.pg_depend d
                  WHERE d.refclassid = 'pg_catalog.pg_extension'::regclass
                    AND d.refobjid = (SELECT oid FROM pg_catalog.pg_extension WHERE extname = 'enterprise_lab')
                    AND d.classid = 'pg_catalog.pg_class'::regclass AND d.deptype = 'e'
                    AND (SELECT relkind FROM pg_catalog.pg_class WHERE oid = d.objid) = 'S'
        LOOP
          IF coalesce((SELECT q.last_value FROM pg_catalog.pg_sequences q
                        WHERE format('%I.%I', q.schemaname, q.sequencename)::regclass = s), 0) < floor THEN
            PERFORM pg_catalog.setval(s, floor);
          END IF;
        END LOOP;
      END $do$
    $cmd$) w
   WHERE NOT w.success;
  IF failed IS NOT NULL THEN
    RAISE EXCEPTION 'a worker node could not move its sequences to its own range'
      USING ERRCODE = 'object_not_in_prerequisite_state', DETAIL = failed,
            HINT = 'Every worker node must be reachable and have enterprise_lab at the coordinator''s version.';
  END IF;
END $$;
REVOKE ALL ON FUNCTION enterprise_lab.distribute_sequences() FROM PUBLIC;
COMMENT ON FUNCTION enterprise_lab.distribute_sequences() IS
  'enterprise_lab.distribute(): on every worker node, move each sequence of the extension to that node''s own range, (group id << 48) + 1 on, unless it is there already.';

CREATE FUNCTION enterprise_lab.distribute() RETURNS TABLE (relation regclass, layout text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  p record;
  fk record;
  todo regclass[];
  fks jsonb := '[]';
  trg record;
  quiet jsonb := '[]';
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

  -- Also for a worker node added since the last call.
  PERFORM enterprise_lab.distribute_sequences();

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
  -- One connection per node for the whole transaction: Citus requires it
  -- once a table in it has a foreign key to a reference table, and the
  -- foreign keys come back at the end of this one.
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

  -- Citus copies the rows of a table into its shards, where the table's
  -- triggers fire: the lifecycle's own (a submission's service request, a
  -- request's event) would write again what is already there, into the
  -- worker nodes' copies of tables not yet converted.  They are off for the
  -- copy.  The count triggers stay on: each node counts the rows copied to
  -- it, and the coordinator, which keeps none of them, forgets its counts.
  FOR trg IN
    SELECT t.tgrelid::regclass AS rel, t.tgname
      FROM pg_trigger t
     WHERE t.tgrelid = ANY (todo) AND NOT t.tgisinternal AND t.tgenabled <> 'D'
       AND t.tgfoid <> ALL (ARRAY(SELECT f.oid FROM pg_proc f
                                   WHERE f.pronamespace = 'dashboard'::regnamespace AND f.proname LIKE 'count\_%'))
     ORDER BY 1, 2
  LOOP
    EXECUTE format('ALTER TABLE %s DISABLE TRIGGER %I', trg.rel, trg.tgname);
    quiet := quiet || jsonb_build_object('rel', trg.rel::text, 'name', trg.tgname);
  END LOOP;
  DELETE FROM dashboard.status_count_slots c
   USING (VALUES ('intake', 'intake.submissions'), ('source_system', 'source_system.service_requests'),
                 ('integration', 'integration.events'), ('operational', 'operational.operation_cases'),
                 ('canonical', 'canonical.business_objects')) AS l (layer, rel)
   WHERE c.layer = l.layer AND l.rel::regclass = ANY (todo);

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

  FOR trg IN SELECT * FROM jsonb_to_recordset(quiet) AS q (rel text, name text) LOOP
    EXECUTE format('ALTER TABLE %s ENABLE TRIGGER %I', trg.rel, trg.name);
  END LOOP;
  -- The coordinator's copy of the rows is no longer read: Citus reads the
  -- shards.  (No foreign key refers to them at this point.)
  FOR p IN SELECT * FROM enterprise_lab.distribution_plan() d
            WHERE d.relation = ANY (todo) AND d.layout = 'distributed' ORDER BY d.step DESC LOOP
    PERFORM pg_catalog.truncate_local_data_after_distributing_table(p.relation);
  END LOOP;

  FOR fk IN SELECT * FROM jsonb_to_recordset(fks) AS f (rel text, name text, def text) LOOP
    EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I %s', fk.rel, fk.name, fk.def);
  END LOOP;
END
$$;
COMMENT ON FUNCTION enterprise_lab.distribute() IS
  'On a Citus coordinator: make the reference data reference tables and distribute every lifecycle table by submission_id, colocated with intake.submissions. Returns the tables it converted; a table already converted is left as it is.';
