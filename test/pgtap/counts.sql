-- The maintained counts (dashboard.status_count_slots) equal count(*) of
-- every layer after every kind of write: the lifecycle through the api and
-- the core, direct SQL inserts, updates and deletes, failures, dead
-- letters, replay, skip, retention, a rolled-back savepoint, TRUNCATE and
-- reset_demo(); recount() repairs counts that drifted.  And the dashboard's
-- reads do not scan the big tables.
BEGIN;
CREATE EXTENSION IF NOT EXISTS enterprise_lab;
SELECT plan(31);

-- Every (layer, status) whose maintained count differs from the table.
CREATE TEMP VIEW count_drift AS
WITH actual AS (
  SELECT 'intake' AS layer, submission_status AS status, count(*) AS n FROM intake.submissions GROUP BY submission_status
  UNION ALL
  SELECT 'source_system', lifecycle_status, count(*) FROM source_system.service_requests GROUP BY lifecycle_status
  UNION ALL
  SELECT 'integration', event_status, count(*) FROM integration.events GROUP BY event_status
  UNION ALL
  SELECT 'operational', processing_status, count(*) FROM operational.operation_cases GROUP BY processing_status
  UNION ALL
  SELECT 'canonical', lifecycle_status, count(*) FROM canonical.business_objects GROUP BY lifecycle_status
), maintained AS (
  SELECT layer, status, sum(count) AS n FROM dashboard.status_count_slots GROUP BY layer, status
)
SELECT coalesce(a.layer, m.layer) AS layer, coalesce(a.status, m.status) AS status,
       coalesce(a.n, 0) AS actual, coalesce(m.n, 0) AS maintained
  FROM actual a FULL JOIN maintained m ON m.layer = a.layer AND m.status = a.status
 WHERE coalesce(a.n, 0) <> coalesce(m.n, 0);

SELECT is_empty('SELECT * FROM count_drift', 'counts match the tables to begin with');

-- Submissions through the api, one per statement, and a set-based insert.
SELECT count(*) FROM (
  SELECT intake.submit_request('Count ' || i, 'count' || i || '@example.test', 'Counted request ' || i,
                               'incident', 'high', 'operations', '10000000-0000-4000-8000-000000000001')
    FROM generate_series(1, 30) AS i) s;
INSERT INTO intake.submissions (requester_name, requester_email, request_description, request_type,
                                priority, assigned_team, customer_id)
SELECT 'Bulk ' || i, 'bulk' || i || '@example.test', 'Bulk request ' || i, 'incident', 'low', 'operations',
       '10000000-0000-4000-8000-000000000001'
  FROM generate_series(1, 40) AS i;
SELECT is_empty('SELECT * FROM count_drift', 'after submissions (one per statement and set-based)');
SELECT ok((SELECT sum(count) FROM dashboard.status_count_slots WHERE layer = 'integration' AND status = 'pending') >= 70,
          'the pending events are counted');

-- The core processes them: cases, canonical objects, completions.
SELECT cmp_ok(integration.process_events(1000), '>=', 70, 'the core processed the submissions');
SELECT is_empty('SELECT * FROM count_drift', 'after processing (cases opened, objects created, events completed)');

-- Case status changes, through the api and by direct SQL, then propagated.
SET LOCAL ROLE lab_operator;
SELECT set_config('request.jwt.claims', '{"role": "lab_operator", "sub": "op.count", "teams": ["operations"]}', true) AS claims \gset
SELECT count(*) FROM (
  SELECT api.set_case_status(jsonb_build_object('case_id', c.id, 'new_status', 'in_progress', 'reason', 'picked up'))
    FROM (SELECT id FROM operational.operation_cases WHERE processing_status = 'open' ORDER BY external_reference LIMIT 5) c) x;
RESET ROLE;
UPDATE operational.operation_cases SET processing_status = 'rejected'
 WHERE id IN (SELECT id FROM operational.operation_cases WHERE processing_status = 'open' ORDER BY external_reference LIMIT 7);
SELECT integration.process_events(1000) > 0 AS processed \gset
SELECT is_empty('SELECT * FROM count_drift', 'after case status changes (api and direct SQL) and their propagation');

-- Failures, dead letters, replay and skip.
CREATE FUNCTION pg_temp.failing_handler(e integration.events) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'downstream system unavailable' USING ERRCODE = 'connection_failure';
END $$;
INSERT INTO integration.event_handlers (event_type, handler) VALUES ('CountedFailure', 'pg_temp.failing_handler(integration.events)');
SET LOCAL enterprise_lab.max_attempts = 2;
SELECT count(*) FROM (
  SELECT integration.enqueue_event('CountedFailure', r.submission_id, 'service_request', r.id)
    FROM source_system.service_requests r ORDER BY r.request_number LIMIT 4) x;
SELECT integration.process_events(1000);
SELECT is_empty('SELECT * FROM count_drift', 'after failures (retrying)');
UPDATE integration.events SET next_attempt_at = now() WHERE event_type = 'CountedFailure';
SELECT integration.process_events(1000);
SELECT is((SELECT dead_letters FROM dashboard.processing_metrics), 4::bigint, 'processing_metrics counts the dead letters');
SELECT is((SELECT held_submissions FROM dashboard.processing_metrics), 4::bigint, 'processing_metrics counts the held submissions');
SELECT is_empty('SELECT * FROM count_drift', 'after dead letters');
SELECT id AS replayed FROM integration.events WHERE event_type = 'CountedFailure' ORDER BY seq LIMIT 1 \gset
SELECT event_status FROM integration.replay_event(:'replayed');
SELECT event_status FROM integration.skip_event((SELECT id FROM integration.events WHERE event_status = 'dead_letter' ORDER BY seq LIMIT 1), 'counted');
SELECT is_empty('SELECT * FROM count_drift', 'after replay and skip');
SELECT is((SELECT pending_events FROM dashboard.processing_metrics),
          (SELECT count(*) FROM integration.events WHERE event_status IN ('pending', 'failed')), 'processing_metrics: pending events');
SELECT is((SELECT retrying_events FROM dashboard.processing_metrics),
          (SELECT count(*) FROM integration.events WHERE event_status = 'failed'), 'processing_metrics: retrying events');

-- Retention, direct deletes and updates.
UPDATE integration.events SET processed_at = now() - interval '400 days'
 WHERE id IN (SELECT id FROM integration.events WHERE event_status = 'completed' ORDER BY seq LIMIT 25);
SELECT is(enterprise_lab.purge_completed_events(1000), 25, 'retention purged the old completed events');
DELETE FROM integration.events WHERE id IN (SELECT id FROM integration.events WHERE event_status = 'completed' ORDER BY seq LIMIT 3);
UPDATE integration.events SET event_status = 'skipped' WHERE id IN (SELECT id FROM integration.events WHERE event_status = 'completed' ORDER BY seq LIMIT 2);
DELETE FROM canonical.business_objects WHERE id IN (SELECT id FROM canonical.business_objects ORDER BY id LIMIT 2);
SELECT is_empty('SELECT * FROM count_drift', 'after retention and direct deletes and updates');

-- A rolled-back savepoint takes its deltas with it.
SAVEPOINT undone;
INSERT INTO intake.submissions (requester_name, requester_email, request_description, request_type,
                                priority, assigned_team, customer_id)
SELECT 'Undone ' || i, 'undone' || i || '@example.test', 'Rolled back', 'incident', 'low', 'operations',
       '10000000-0000-4000-8000-000000000001'
  FROM generate_series(1, 5) AS i;
ROLLBACK TO SAVEPOINT undone;
SELECT is_empty('SELECT * FROM count_drift', 'after a rolled-back savepoint');

-- A transaction of many statements spreads its deltas over parts of its
-- slot; folding them back changes no count.
DO $$
BEGIN
  FOR i IN 1 .. 200 LOOP
    UPDATE intake.submissions SET submission_status = submission_status WHERE false;
  END LOOP;
END $$;
INSERT INTO intake.submissions (requester_name, requester_email, request_description, request_type,
                                priority, assigned_team, customer_id)
VALUES ('Late', 'late@example.test', 'After 200 statements', 'incident', 'low', 'operations',
        '10000000-0000-4000-8000-000000000001');
SELECT ok(EXISTS (SELECT 1 FROM dashboard.status_count_slots WHERE slot = enterprise_lab.count_slot() AND part >= 3),
          'a count statement after 200 others in its transaction writes part 3 or later of its slot');
SELECT enterprise_lab.fold_count_parts();
SELECT is_empty($$SELECT * FROM dashboard.status_count_slots WHERE slot = enterprise_lab.count_slot() AND part > 0$$,
                'fold_count_parts() folds the parts into part 0 ...');
SELECT is_empty('SELECT * FROM count_drift', '... and every count stays right');

-- The unfiltered total of the submission list is the maintained count.
SELECT is((api.submissions('{}') ->> 'total')::bigint, (SELECT count(*) FROM intake.submissions),
          'api.submissions: the unfiltered total equals count(*)');
SELECT is((api.submissions('{"team": "operations"}') ->> 'total')::bigint,
          (SELECT count(*) FROM intake.submissions WHERE assigned_team = 'operations'),
          'api.submissions: a filtered total is counted');

-- recount() repairs counts that drifted (rows loaded with triggers off).
SET LOCAL session_replication_role = replica;
INSERT INTO integration.events (submission_id, event_type, source_system, aggregate_type, aggregate_id, event_status)
SELECT gen_random_uuid(), 'Loaded', 'custom', 'service_request', gen_random_uuid(), 'completed'
  FROM generate_series(1, 3);
RESET session_replication_role;
SELECT isnt_empty('SELECT * FROM count_drift', 'rows loaded with triggers off are not counted');
SELECT ok(enterprise_lab.recount() > 0, 'recount() writes the counts');
SELECT is_empty('SELECT * FROM count_drift', 'after recount()');

-- TRUNCATE and reset_demo() (TRUNCATE ... CASCADE, then new demo rows).
TRUNCATE integration.events;
SELECT is_empty('SELECT * FROM count_drift', 'after TRUNCATE');
SELECT enterprise_lab.reset_demo() > 0 AS reloaded \gset
SELECT is_empty('SELECT * FROM count_drift', 'after reset_demo()');

-- The dashboard's reads do not scan the lifecycle tables, whatever their size.
INSERT INTO integration.events (submission_id, event_type, source_system, aggregate_type, aggregate_id, event_status, processed_at)
SELECT gen_random_uuid(), 'Bulk', 'custom', 'service_request', gen_random_uuid(), 'completed', now()
  FROM generate_series(1, 50000);
ANALYZE integration.events;
CREATE FUNCTION pg_temp.scanned_tables(q text) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
  plan json;
BEGIN
  EXECUTE 'EXPLAIN (FORMAT JSON) ' || q INTO plan;
  RETURN QUERY SELECT DISTINCT n ->> 'Schema' || '.' || (n ->> 'Relation Name')
    FROM jsonb_path_query(plan::jsonb, '$.**') AS n
   WHERE jsonb_typeof(n) = 'object' AND n ->> 'Node Type' = 'Seq Scan';
END $$;
SELECT is_empty($$SELECT * FROM pg_temp.scanned_tables('SELECT * FROM dashboard.status_counts')
                   WHERE scanned_tables <> 'dashboard.status_count_slots'$$,
                'status_counts reads the maintained counts only');
SELECT is_empty($$SELECT * FROM pg_temp.scanned_tables('SELECT * FROM dashboard.processing_metrics')
                   WHERE scanned_tables <> 'dashboard.status_count_slots'$$,
                'processing_metrics does not scan integration.events (partial indexes and shared memory)');

-- The count trigger refuses to run where it could not count.
CREATE TABLE pg_temp.miscounted (status text);
CREATE TRIGGER per_row AFTER INSERT ON pg_temp.miscounted
  FOR EACH ROW EXECUTE FUNCTION dashboard.count_statuses('intake', 'status');
SELECT throws_ok($$INSERT INTO pg_temp.miscounted VALUES ('x')$$, '39P01',
                 'dashboard.count_statuses() must be an AFTER ... FOR EACH STATEMENT trigger with two arguments',
                 'count_statuses refuses to be a row trigger');
DROP TRIGGER per_row ON pg_temp.miscounted;
CREATE TRIGGER one_argument AFTER INSERT ON pg_temp.miscounted REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION dashboard.count_statuses('intake');
SELECT throws_ok($$INSERT INTO pg_temp.miscounted VALUES ('x')$$, '39P01', NULL,
                 'count_statuses needs the layer and the status column');
DROP TRIGGER one_argument ON pg_temp.miscounted;
CREATE TRIGGER no_such_column AFTER INSERT ON pg_temp.miscounted REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION dashboard.count_statuses('intake', 'state');
SELECT throws_ok($$INSERT INTO pg_temp.miscounted VALUES ('x')$$, '42703',
                 'column "state" of relation "miscounted" does not exist',
                 'count_statuses names a status column that does not exist');
DROP TABLE pg_temp.miscounted;

SELECT * FROM finish();
ROLLBACK;
