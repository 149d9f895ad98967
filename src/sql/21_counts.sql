-- counts: rows per status of every layer, maintained where they change, so
-- the dashboard's refresh (status_counts, processing_metrics, the total of
-- the submission list) costs the same with ten rows or ten million.
--
-- Statement-level AFTER triggers with transition tables add one delta per
-- status per statement (a worker's batch is a handful of statements, a
-- submission three).  Each backend adds to its own slot (its process
-- number), so no row is updated by two transactions at once: no hot row, no
-- lock waits, no deadlocks between submissions and workers.  A read sums
-- the slots.  The deltas are part of the writing transaction: a rollback,
-- or a chunk's subtransaction rolled back, takes its deltas with it.
--
-- A row updated again and again by one transaction keeps every version
-- until the transaction ends, and each update walks them all: a bulk
-- INSERT whose row triggers write one service request and one event per
-- row would cost time quadratic in its rows.  So a transaction moves on to
-- a new part of its slot after every 64 count statements, and the first
-- count statement of its next transaction folds the parts back into part 0
-- (only this backend writes its slot, so that takes no one's locks).

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
END $$;
REVOKE ALL ON FUNCTION enterprise_lab.fold_count_parts() FROM PUBLIC;
COMMENT ON FUNCTION enterprise_lab.fold_count_parts() IS
  'Count triggers: fold this backend''s extra parts (left by a transaction of many statements) into part 0 of its slot.';

-- One trigger function for every counted table (src/status_counts.c): its
-- arguments are the layer and the status column.  SECURITY DEFINER so that
-- any role that may write a counted table may add to the counts; it runs
-- only schema-qualified statements, so it sets no search_path.
CREATE FUNCTION dashboard.count_statuses() RETURNS trigger
  AS 'MODULE_PATHNAME', 'el_count_statuses' LANGUAGE C SECURITY DEFINER;
COMMENT ON FUNCTION dashboard.count_statuses() IS
  'Trigger (layer, status column): adds the rows per status changed by a statement to dashboard.status_count_slots.';

DO $do$
DECLARE
  t record;
BEGIN
  FOR t IN SELECT * FROM (VALUES
      ('intake',        'intake.submissions',               'submissions',       'submission_status'),
      ('source_system', 'source_system.service_requests',   'service_requests',  'lifecycle_status'),
      ('integration',   'integration.events',               'events',            'event_status'),
      ('operational',   'operational.operation_cases',      'operation_cases',   'processing_status'),
      ('canonical',     'canonical.business_objects',       'business_objects',  'lifecycle_status')
    ) AS v(layer, tab, short, col)
  LOOP
    EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %s REFERENCING NEW TABLE AS new_rows
                      FOR EACH STATEMENT EXECUTE FUNCTION dashboard.count_statuses(%L, %L)', t.short || '_count_inserted', t.tab, t.layer, t.col);
    EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON %s REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
                      FOR EACH STATEMENT EXECUTE FUNCTION dashboard.count_statuses(%L, %L)', t.short || '_count_updated', t.tab, t.layer, t.col);
    EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON %s REFERENCING OLD TABLE AS old_rows
                      FOR EACH STATEMENT EXECUTE FUNCTION dashboard.count_statuses(%L, %L)', t.short || '_count_deleted', t.tab, t.layer, t.col);
    EXECUTE format('CREATE TRIGGER %I AFTER TRUNCATE ON %s
                      FOR EACH STATEMENT EXECUTE FUNCTION dashboard.count_statuses(%L, %L)', t.short || '_count_truncated', t.tab, t.layer, t.col);
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
    FROM (SELECT 'intake' AS layer, submission_status AS status, count(*) AS n FROM intake.submissions GROUP BY submission_status
          UNION ALL
          SELECT 'source_system', lifecycle_status, count(*) FROM source_system.service_requests GROUP BY lifecycle_status
          UNION ALL
          SELECT 'integration', event_status, count(*) FROM integration.events GROUP BY event_status
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

CREATE VIEW dashboard.status_counts AS
SELECT layer, status, sum(count)::bigint AS count
  FROM enterprise_lab.node_status_counts()
 WHERE layer IN ('source_system', 'integration', 'operational', 'canonical')
 GROUP BY layer, status
HAVING sum(count) <> 0;
COMMENT ON VIEW dashboard.status_counts IS 'Row counts per status in each layer, summed over every node (exact; maintained by triggers, see dashboard.status_count_slots and enterprise_lab.node_status_counts()).';

-- The dead letters are a small set; this index lists them without reading
-- the others.  Only a dead-lettered event has an entry, so completions do
-- not pay for it.
CREATE INDEX events_dead_letter_idx ON integration.events (processed_at)
  WHERE event_status = 'dead_letter';

CREATE FUNCTION integration.completed_last_minute() RETURNS bigint
  AS 'MODULE_PATHNAME', 'el_completed_last_minute' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION integration.completed_last_minute() IS
  'Events completed by processing transactions that committed in the last 60 seconds, from a per-second ring in shared memory (counts since the server started; NULL when enterprise_lab is not in shared_preload_libraries).';

-- The counts of every node, read once.
CREATE VIEW dashboard.processing_metrics AS
WITH events AS (
  SELECT status, sum(count)::bigint AS n FROM enterprise_lab.node_status_counts()
   WHERE layer = 'integration' GROUP BY status
)
SELECT (SELECT coalesce(sum(n), 0)::bigint FROM events WHERE status IN ('pending', 'failed')) AS pending_events,
       (SELECT coalesce(sum(n), 0)::bigint FROM events WHERE status = 'failed') AS retrying_events,
       (SELECT coalesce(sum(n), 0)::bigint FROM events WHERE status = 'dead_letter') AS dead_letters,
       -- The oldest by seq is the first entry of the claim's index.
       (SELECT extract(epoch FROM now() - e.created_at)
          FROM integration.events e WHERE e.event_status IN ('pending', 'failed')
         ORDER BY e.seq LIMIT 1) AS oldest_pending_age_seconds,
       (SELECT sum(completed)::bigint FROM enterprise_lab.node_completed_last_minute()) AS completed_last_minute,
       (SELECT count(*) FROM integration.events e WHERE e.event_status = 'dead_letter') AS held_submissions,
       (SELECT count(*) FROM enterprise_lab.node_worker_status() w WHERE w.worker IS NOT NULL) AS workers_running;
COMMENT ON VIEW dashboard.processing_metrics IS
  'Queue health: pending and retrying events, dead letters, lag (oldest pending age), throughput (from shared memory), workers. Reads no more rows as the tables grow.';
