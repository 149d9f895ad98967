-- enterprise_lab 0.2.0 -> 0.3.0.
--
-- Every change to src/sql/ after 0.2.0 must be repeated here: the upgrade
-- suite (test/suites/upgrade) compares an upgraded database with a fresh
-- install of the newest version, object by object.

\echo Use "ALTER EXTENSION enterprise_lab UPDATE TO '0.3.0'" to load this file. \quit

-- reset_demo() empties every lifecycle table (documents and SLA breaches
-- too, and through CASCADE any table added later) and names the objects it
-- leaves in the bucket.
CREATE OR REPLACE FUNCTION enterprise_lab.reset_demo() RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  objects bigint;
BEGIN
  -- Demo databases only.  Every lifecycle table hangs off these by a
  -- foreign key, so CASCADE also empties the ones a later version adds.
  SELECT count(*) INTO objects FROM document_repo.documents WHERE status = 'stored';
  TRUNCATE intake.submissions, source_system.service_requests, integration.events,
           integration.sync_logs, operational.operation_cases, operational.case_status_history,
           operational.sla_breaches, canonical.business_objects, canonical.lineage_records,
           document_repo.documents CASCADE;
  PERFORM setval('source_system.request_number_seq', 1, false);
  IF objects > 0 THEN
    -- The bucket is not emptied here: deleting objects cannot be undone if
    -- this transaction rolls back.
    RAISE NOTICE '% stored document object(s) stay in the bucket', objects
      USING HINT = 'SELECT document_repo.reconcile_storage(grace => ''0 seconds'') removes them (and any upload in flight).';
  END IF;
  RETURN enterprise_lab.load_demo_data();
END $$;
COMMENT ON FUNCTION enterprise_lab.reset_demo() IS
  'Demo databases only: delete every lifecycle row (documents and SLA breaches included; their objects stay in the bucket until reconcile_storage removes them) and load the demo data again; returns how many requests it loaded.';

-- Counts maintained where they change (src/sql/21_counts.sql): the
-- dashboard's refresh no longer counts the tables.  The counts start from
-- the rows already there (recount() at the end).
CREATE FUNCTION enterprise_lab.count_slot() RETURNS integer
  AS 'MODULE_PATHNAME', 'el_count_slot' LANGUAGE C STABLE;
COMMENT ON FUNCTION enterprise_lab.count_slot() IS
  'The counter slot of this backend (its process number, unique among running backends).';

CREATE TABLE dashboard.status_count_slots (
  layer  text NOT NULL,
  status text NOT NULL,
  slot   integer NOT NULL,
  part   integer NOT NULL DEFAULT 0,
  count  bigint NOT NULL,
  CONSTRAINT status_count_slots_pkey PRIMARY KEY (layer, status, slot, part)
) WITH (fillfactor = 50);  -- room for the HOT updates every delta makes
COMMENT ON TABLE dashboard.status_count_slots IS
  'Rows per status in each layer, split into one row per backend slot and summed on read; maintained by triggers, rebuilt by enterprise_lab.recount().';

-- A plain UPDATE, then an INSERT of the statuses it did not find, and not
-- INSERT ... ON CONFLICT DO UPDATE: an upsert locks the row before it
-- updates it, and a worker's chunks run in subtransactions, where a lock
-- and an update of one row by two of them make a MultiXact.  Only this
-- backend writes its slot, so no one inserts the same row in between.
CREATE FUNCTION enterprise_lab.add_status_counts(count_layer text, count_part integer, statuses text[], deltas bigint[])
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  WITH d AS (
    SELECT x.status, x.delta FROM unnest(statuses, deltas) AS x(status, delta) WHERE x.delta <> 0
  ), updated AS (
    UPDATE dashboard.status_count_slots c SET count = c.count + d.delta
      FROM d
     WHERE c.layer = count_layer AND c.status = d.status
       AND c.slot = enterprise_lab.count_slot() AND c.part = count_part
    RETURNING c.status
  )
  INSERT INTO dashboard.status_count_slots (layer, status, slot, part, count)
  SELECT count_layer, d.status, enterprise_lab.count_slot(), count_part, d.delta
    FROM d WHERE d.status NOT IN (SELECT u.status FROM updated u);
END $$;
REVOKE ALL ON FUNCTION enterprise_lab.add_status_counts(text, integer, text[], bigint[]) FROM PUBLIC;
COMMENT ON FUNCTION enterprise_lab.add_status_counts(text, integer, text[], bigint[]) IS
  'Count triggers: add per-status deltas of one layer to this backend''s slot.';

CREATE FUNCTION enterprise_lab.fold_count_parts() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  layers text[];
  statuses text[];
  deltas bigint[];
BEGIN
  WITH moved AS (
    DELETE FROM dashboard.status_count_slots
     WHERE slot = enterprise_lab.count_slot() AND part > 0
    RETURNING layer, status, count
  )
  SELECT array_agg(m.layer), array_agg(m.status), array_agg(m.n) INTO layers, statuses, deltas
    FROM (SELECT layer, status, sum(count)::bigint AS n FROM moved GROUP BY layer, status) m;
  FOR i IN 1 .. coalesce(cardinality(layers), 0) LOOP
    PERFORM enterprise_lab.add_status_counts(layers[i], 0, ARRAY[statuses[i]], ARRAY[deltas[i]]);
  END LOOP;
  PERFORM set_config('enterprise_lab_counts.folded', 'yes', false);
END $$;
REVOKE ALL ON FUNCTION enterprise_lab.fold_count_parts() FROM PUBLIC;
COMMENT ON FUNCTION enterprise_lab.fold_count_parts() IS
  'Count triggers: fold this backend''s extra parts (left by a transaction of many statements) into part 0 of its slot.';

-- One trigger function per counted table, made from one template: the
-- status column differs, and static SQL lets each keep its plans.
DO $do$
DECLARE
  t record;
BEGIN
  FOR t IN SELECT * FROM (VALUES
      ('intake',        'intake.submissions',               'submissions',       'status'),
      ('source_system', 'source_system.service_requests',   'service_requests',  'lifecycle_status'),
      ('integration',   'integration.events',               'events',            'status'),
      ('operational',   'operational.operation_cases',      'operation_cases',   'processing_status'),
      ('canonical',     'canonical.business_objects',       'business_objects',  'lifecycle_status')
    ) AS v(layer, tab, short, col)
  LOOP
    EXECUTE format($f$
      CREATE FUNCTION dashboard.%1$s() RETURNS trigger
      LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
      DECLARE
        -- Count statements of this transaction (a transaction-local setting).
        statements integer := coalesce(nullif(current_setting('enterprise_lab_counts.statements', true), ''), '0')::integer;
        this_part integer := statements / 64;
        statuses text[];
        deltas bigint[];
      BEGIN
        PERFORM set_config('enterprise_lab_counts.statements', (statements + 1)::text, true);
        -- Once per backend (its slot may hold an earlier backend's parts)
        -- and after a transaction that made parts.
        IF statements = 0 AND current_setting('enterprise_lab_counts.folded', true) IS DISTINCT FROM 'yes' THEN
          PERFORM enterprise_lab.fold_count_parts();
        ELSIF statements = 64 THEN
          PERFORM set_config('enterprise_lab_counts.folded', 'no', false);
        END IF;
        IF TG_OP = 'TRUNCATE' THEN
          DELETE FROM dashboard.status_count_slots WHERE layer = %2$L;
          RETURN NULL;
        END IF;
        -- Each branch names only the transition tables its event has.
        IF TG_OP = 'INSERT' THEN
          SELECT array_agg(d.status), array_agg(d.delta) INTO statuses, deltas
            FROM (SELECT r.%3$I AS status, count(*) AS delta FROM new_rows r GROUP BY r.%3$I) d;
        ELSIF TG_OP = 'DELETE' THEN
          SELECT array_agg(d.status), array_agg(d.delta) INTO statuses, deltas
            FROM (SELECT o.%3$I AS status, -count(*) AS delta FROM old_rows o GROUP BY o.%3$I) d;
        ELSE
          SELECT array_agg(d.status), array_agg(d.delta) INTO statuses, deltas
            FROM (SELECT x.status, sum(x.delta)::bigint AS delta
                    FROM (SELECT r.%3$I AS status, 1 AS delta FROM new_rows r
                          UNION ALL
                          SELECT o.%3$I, -1 FROM old_rows o) x
                   GROUP BY x.status) d;
        END IF;
        IF statuses IS NOT NULL THEN
          PERFORM enterprise_lab.add_status_counts(%2$L, this_part, statuses, deltas);
        END IF;
        RETURN NULL;
      END $body$
    $f$, 'count_' || t.short, t.layer, t.col);
    EXECUTE format('COMMENT ON FUNCTION dashboard.%I() IS %L', 'count_' || t.short,
                   format('Trigger: adds the rows per %s of %s changed by a statement to dashboard.status_count_slots.', t.col, t.tab));
    EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %s REFERENCING NEW TABLE AS new_rows
                      FOR EACH STATEMENT EXECUTE FUNCTION dashboard.%I()', t.short || '_count_inserted', t.tab, 'count_' || t.short);
    EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON %s REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
                      FOR EACH STATEMENT EXECUTE FUNCTION dashboard.%I()', t.short || '_count_updated', t.tab, 'count_' || t.short);
    EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON %s REFERENCING OLD TABLE AS old_rows
                      FOR EACH STATEMENT EXECUTE FUNCTION dashboard.%I()', t.short || '_count_deleted', t.tab, 'count_' || t.short);
    EXECUTE format('CREATE TRIGGER %I AFTER TRUNCATE ON %s
                      FOR EACH STATEMENT EXECUTE FUNCTION dashboard.%I()', t.short || '_count_truncated', t.tab, 'count_' || t.short);
  END LOOP;
END $do$;

CREATE FUNCTION enterprise_lab.recount() RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  written integer;
BEGIN
  -- Writers wait until this transaction ends, so the counts and the rows
  -- they count are taken at one moment.
  LOCK TABLE intake.submissions, source_system.service_requests, integration.events,
             operational.operation_cases, canonical.business_objects IN SHARE MODE;
  DELETE FROM dashboard.status_count_slots;
  INSERT INTO dashboard.status_count_slots (layer, status, slot, count)
  SELECT c.layer, c.status, enterprise_lab.count_slot(), c.n
    FROM (SELECT 'intake' AS layer, status, count(*) AS n FROM intake.submissions GROUP BY status
          UNION ALL
          SELECT 'source_system', lifecycle_status, count(*) FROM source_system.service_requests GROUP BY lifecycle_status
          UNION ALL
          SELECT 'integration', status, count(*) FROM integration.events GROUP BY status
          UNION ALL
          SELECT 'operational', processing_status, count(*) FROM operational.operation_cases GROUP BY processing_status
          UNION ALL
          SELECT 'canonical', lifecycle_status, count(*) FROM canonical.business_objects GROUP BY lifecycle_status) c;
  GET DIAGNOSTICS written = ROW_COUNT;
  RETURN written;
END $$;
REVOKE ALL ON FUNCTION enterprise_lab.recount() FROM PUBLIC;
COMMENT ON FUNCTION enterprise_lab.recount() IS
  'Rebuild dashboard.status_count_slots from the tables (after loading rows with triggers disabled, e.g. session_replication_role = replica); returns how many (layer, status) counts it wrote. Blocks writers while it counts.';

-- The dump carries the counts with the rows they count: a restore runs in
-- replica mode, where these triggers do not fire.
SELECT pg_catalog.pg_extension_config_dump('dashboard.status_count_slots', '');

CREATE OR REPLACE VIEW dashboard.status_counts AS
SELECT layer, status, sum(count)::bigint AS count
  FROM dashboard.status_count_slots
 WHERE layer IN ('source_system', 'integration', 'operational', 'canonical')
 GROUP BY layer, status
HAVING sum(count) <> 0;
COMMENT ON VIEW dashboard.status_counts IS 'Row counts per status in each layer (exact; maintained by triggers, see dashboard.status_count_slots).';

-- The dead letters are a small set; this index lists them without reading
-- the others.  Only a dead-lettered event has an entry, so completions do
-- not pay for it.
CREATE INDEX events_dead_letter_idx ON integration.events (processed_at)
  WHERE status = 'dead_letter';

CREATE FUNCTION integration.completed_last_minute() RETURNS bigint
  AS 'MODULE_PATHNAME', 'el_completed_last_minute' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION integration.completed_last_minute() IS
  'Events completed by processing transactions that committed in the last 60 seconds, from a per-second ring in shared memory (counts since the server started; NULL when enterprise_lab is not in shared_preload_libraries).';

CREATE OR REPLACE VIEW dashboard.processing_metrics AS
SELECT (SELECT coalesce(sum(count), 0)::bigint FROM dashboard.status_count_slots
         WHERE layer = 'integration' AND status IN ('pending', 'failed')) AS pending_events,
       (SELECT coalesce(sum(count), 0)::bigint FROM dashboard.status_count_slots
         WHERE layer = 'integration' AND status = 'failed') AS retrying_events,
       (SELECT coalesce(sum(count), 0)::bigint FROM dashboard.status_count_slots
         WHERE layer = 'integration' AND status = 'dead_letter') AS dead_letters,
       -- The oldest by seq is the first entry of the claim's index.
       (SELECT extract(epoch FROM now() - e.created_at)
          FROM integration.events e WHERE e.status IN ('pending', 'failed')
         ORDER BY e.seq LIMIT 1) AS oldest_pending_age_seconds,
       integration.completed_last_minute() AS completed_last_minute,
       (SELECT count(*) FROM integration.events e WHERE e.status = 'dead_letter') AS held_submissions,
       (SELECT count(*) FROM integration.worker_status) AS workers_running;
COMMENT ON VIEW dashboard.processing_metrics IS
  'Queue health: pending and retrying events, dead letters, lag (oldest pending age), throughput (from shared memory), workers. Reads no more rows as the tables grow.';
GRANT SELECT ON dashboard.status_count_slots TO lab_operator, lab_auditor, lab_admin;

-- The unfiltered submission total, health and metrics read the counts; the
-- held submissions listed by metrics are bounded.
CREATE OR REPLACE FUNCTION api.submissions(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
  fn constant text := 'submissions';
  b jsonb := enterprise_lab.api_body(fn, body, ARRAY['status', 'team', 'q', 'limit', 'offset']);
  v_status text := enterprise_lab.api_text(fn, b, 'status', false, 40);
  v_team text := enterprise_lab.api_text(fn, b, 'team', false, 40);
  v_q text := lower(nullif(btrim(enterprise_lab.api_text(fn, b, 'q', false, 200)), ''));
  v_limit integer := enterprise_lab.api_integer(fn, b, 'limit', 50, 1, 200);
  v_offset integer := enterprise_lab.api_integer(fn, b, 'offset', 0, 0, 1000000000);
  emails boolean := enterprise_lab.api_may_see_emails();
  -- Only the filters given, so the planner drops the joins nobody needs
  -- and pages straight off the submitted_at index.  Values are bound
  -- parameters ($1..$4), never part of the SQL text.
  filter text := concat_ws(' AND ', 'true',
    CASE WHEN v_status IS NOT NULL THEN '$1 IN (l.intake_status, l.source_status, l.case_status, l.canonical_status)' END,
    CASE WHEN v_team IS NOT NULL THEN 'l.team_code = $2' END,
    -- A plain substring test: q is text to find, never a pattern.
    CASE WHEN v_q IS NOT NULL THEN
      'strpos(lower(concat_ws('' '', l.request_number, l.case_reference, l.requester_name, l.customer_name,
                               l.description, CASE WHEN $4 THEN l.requester_email END)), $3) > 0' END);
  total bigint;
  items jsonb;
BEGIN
  IF v_status IS NULL AND v_team IS NULL AND v_q IS NULL THEN
    -- The unfiltered total is the maintained count: the list's refresh
    -- does not count every submission.
    SELECT coalesce(sum(c.count), 0) INTO total
      FROM dashboard.status_count_slots c WHERE c.layer = 'intake';
  ELSE
    EXECUTE 'SELECT count(*) FROM dashboard.submission_lifecycle l WHERE ' || filter
       INTO total USING v_status, v_team, v_q, emails;
  END IF;
  EXECUTE $q$
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'submission_id', l.submission_id,
               'submitted_at', l.submitted_at,
               'intake_method', l.intake_method,
               'request_number', l.request_number,
               'requester_name', l.requester_name,
               'requester_email', CASE WHEN $4 THEN l.requester_email END,
               'customer_name', l.customer_name,
               'request_type', l.request_type_code,
               'priority', l.priority_code,
               'team', l.team_code,
               'intake_status', l.intake_status,
               'source_status', l.source_status,
               'case_id', l.case_id,
               'case_reference', l.case_reference,
               'case_status', l.case_status,
               'canonical_status', l.canonical_status,
               'unfinished_events', l.unfinished_events,
               'dead_letters', l.dead_letters)
             ORDER BY p.submitted_at DESC, p.submission_id), '[]')
      FROM (SELECT l.submission_id, l.submitted_at
              FROM dashboard.submission_lifecycle l
             WHERE $q$ || filter || $q$
             ORDER BY l.submitted_at DESC, l.submission_id
             LIMIT $5 OFFSET $6) p
      JOIN dashboard.submission_lifecycle l ON l.submission_id = p.submission_id $q$
     INTO items USING v_status, v_team, v_q, emails, v_limit, v_offset;
  RETURN jsonb_build_object('total', total, 'limit', v_limit, 'offset', v_offset, 'items', items);
END $$;
COMMENT ON FUNCTION api.submissions(jsonb) IS
  'The submission list, newest first: {"status"?, "team"?, "q"?, "limit"? (1..200, default 50), "offset"?}. status matches any layer''s status; q is a substring of number, names, customer or description. Requester e-mails are null for the anonymous role.';

CREATE OR REPLACE FUNCTION api.metrics(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
BEGIN
  PERFORM enterprise_lab.api_body('metrics', body, '{}');
  RETURN jsonb_build_object(
    'status_counts', coalesce((SELECT jsonb_agg(to_jsonb(c) ORDER BY c.layer, c.status)
                                 FROM dashboard.status_counts c), '[]'),
    'processing', (SELECT to_jsonb(m) FROM dashboard.processing_metrics m),
    -- The longest held first, at most 100 (processing.held_submissions
    -- says how many there are).
    'held_submissions', coalesce((SELECT jsonb_agg(to_jsonb(h) ORDER BY h.held_since)
                                    FROM (SELECT * FROM integration.held_submissions
                                           ORDER BY held_since LIMIT 100) h), '[]'),
    'workers', coalesce((SELECT jsonb_agg(to_jsonb(w) ORDER BY w.worker)
                           FROM integration.worker_status w), '[]'));
END $$;
COMMENT ON FUNCTION api.metrics(jsonb) IS
  'Counts per status per layer, queue health (pending, retrying, dead letters, lag, throughput), the 100 longest-held submissions and worker status. Body: {}.';

CREATE OR REPLACE FUNCTION api.health(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
BEGIN
  PERFORM enterprise_lab.api_body('health', body, '{}');
  RETURN jsonb_build_object(
    'status', 'ok',
    'database', true,
    'workers_running', (SELECT count(*) FROM integration.worker_status),
    'pending_events', (SELECT m.pending_events FROM dashboard.processing_metrics m),
    'dead_letters', (SELECT m.dead_letters FROM dashboard.processing_metrics m),
    'version', (SELECT extversion FROM pg_extension WHERE extname = 'enterprise_lab'));
END $$;
COMMENT ON FUNCTION api.health(jsonb) IS
  'Liveness: {"status": "ok", "database": true, workers running, pending events, dead letters, extension version}. Body: {}.';

-- The submission list's order exactly (src/sql/02_intake.sql).
DROP INDEX intake.submissions_submitted_at_idx;
CREATE INDEX submissions_submitted_at_idx ON intake.submissions (submitted_at DESC, id);

SELECT enterprise_lab.recount();

-- The claim's partial indexes stay small: vacuum integration.events by the
-- number of dead rows and always clean its indexes (src/sql/04_integration.sql).
ALTER TABLE integration.events SET (
  autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 20000,
  autovacuum_vacuum_insert_scale_factor = 0, autovacuum_vacuum_insert_threshold = 20000,
  vacuum_index_cleanup = on);
