-- Properties of the operations concern: everything a backup must keep is
-- registered with pg_extension_config_dump, seed-row tables carry the
-- restore triggers, and the maintenance functions reject bad input.
BEGIN;
CREATE EXTENSION IF NOT EXISTS enterprise_lab;
SELECT plan(21);

CREATE TEMP VIEW extension_relations AS
SELECT c.oid, c.relkind, c.oid::regclass::text AS name
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_depend d ON d.classid = 'pg_namespace'::regclass AND d.objid = n.oid AND d.deptype = 'e'
  JOIN pg_extension x ON x.oid = d.refobjid AND x.extname = 'enterprise_lab';

SELECT is_empty(
  $$SELECT name FROM extension_relations
     WHERE relkind IN ('r', 'p')
       AND oid <> ALL ((SELECT extconfig FROM pg_extension WHERE extname = 'enterprise_lab')::oid[])$$,
  'every table of the extension''s schemas is registered with pg_extension_config_dump');
SELECT is_empty(
  $$SELECT name FROM extension_relations
     WHERE relkind = 'S'
       AND oid <> ALL ((SELECT extconfig FROM pg_extension WHERE extname = 'enterprise_lab')::oid[])$$,
  'every sequence of the extension''s schemas is registered, so its position is dumped');
SELECT is_empty(
  $$SELECT c FROM pg_extension, unnest(extcondition) AS c WHERE extname = 'enterprise_lab' AND c <> ''$$,
  'every registered table is dumped whole (seed rows too: a restore replaces the recreated ones)');
SELECT is_empty(
  $$SELECT r.name FROM extension_relations r
     WHERE r.relkind = 'r'
       AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = r.oid AND a.attname = 'seeded')
       AND (NOT EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = r.oid AND t.tgname LIKE '%\_restore\_seeded' AND t.tgenabled = 'A')
            OR NOT EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = r.oid AND t.tgname LIKE '%\_remember\_deleted'))$$,
  'every table with seed rows has the restore trigger (ENABLE ALWAYS) and remembers deletions');
SELECT is_empty(
  $$SELECT r.name FROM extension_relations r
     WHERE r.relkind = 'r'
       AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = r.oid AND a.attname = 'seeded')
       AND NOT EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = r.oid AND t.tgfoid = 'enterprise_lab.mark_user_modified()'::regprocedure)$$,
  'every table with seed rows marks a changed seed row as user data');

SELECT results_eq(
  $$SELECT setting, unit, context FROM pg_settings WHERE name = 'enterprise_lab.event_retention'$$,
  $$VALUES ('2592000'::text, 's'::text, 'superuser'::text)$$,
  'enterprise_lab.event_retention: 30 days by default, in seconds, superuser-only');

SELECT throws_ok($$SELECT * FROM enterprise_lab.schedule_maintenance()$$, '55000', NULL,
  'schedule_maintenance() without pg_cron: object_not_in_prerequisite_state');
SELECT throws_ok($$SELECT enterprise_lab.unschedule_maintenance()$$, '55000', NULL,
  'unschedule_maintenance() without pg_cron: object_not_in_prerequisite_state');
SELECT throws_ok($$SELECT enterprise_lab.purge_completed_events(0)$$, '22023', 'batch_size must be at least 1',
  'purge_completed_events() rejects a batch size below 1');
SELECT throws_ok($$SELECT enterprise_lab.purge_completed_events(NULL)$$, '22023', 'batch_size must be at least 1',
  'purge_completed_events() rejects a NULL batch size');
SELECT throws_ok($$SELECT operational.escalate_sla_breaches(0)$$, '22023', 'max_cases must be at least 1',
  'escalate_sla_breaches() rejects max_cases below 1');
SELECT throws_ok($$UPDATE operational.sla_policies SET resolution_time = interval '-1 hour' WHERE priority_code = 'low'$$,
  '23514', NULL, 'an SLA resolution time must be positive');
SELECT throws_ok($$INSERT INTO reference.priorities (code, name, rank) VALUES ('high', 'High again', 99)$$,
  '23505', NULL, 'a second row with a seed key is refused outside a restore');

SELECT col_is_unique('operational', 'sla_breaches', ARRAY['case_id', 'submission_id'], 'a case breaches its SLA at most once');
SELECT results_eq(
  $$SELECT handler::text FROM integration.event_handlers WHERE event_type = 'OperationalCaseSlaBreached'$$,
  $$VALUES ('canonical.record_sla_breach(integration.events)')$$,
  'OperationalCaseSlaBreached is handled by canonical.record_sla_breach');
SELECT ok((SELECT count(*) FROM enterprise_lab.status() s WHERE s ? 'version' AND s ? 'workers' AND s ? 'events'
           AND s ? 's3' AND s ? 'scheduled_jobs') = 1, 'status() answers with version, workers, events, s3 and scheduled_jobs');

-- A run flags at most max_cases, the most urgent priority first, and reads
-- the open cases by operation_cases_sla_idx.
SELECT count(*) FROM (
  SELECT intake.submit_request('SLA ' || p, p || '@example.test', 'An old ' || p || ' request', 'incident', p,
                               'operations', '10000000-0000-4000-8000-000000000001')
    FROM unnest(ARRAY['low', 'critical', 'high']) AS p) s;
SELECT integration.process_events(100) >= 0;
UPDATE operational.operation_cases SET opened_at = opened_at - interval '8 days';
SELECT is(operational.escalate_sla_breaches(1), 1, 'escalate_sla_breaches(1) flags one overdue case');
SELECT results_eq($$SELECT priority_code FROM operational.sla_breaches$$, $$VALUES ('critical')$$,
  'the most urgent priority is flagged first');
SELECT is(operational.escalate_sla_breaches(), 2, 'the next run flags the other two');
SELECT ok(EXISTS (SELECT 1 FROM pg_indexes WHERE indexname = 'operation_cases_sla_idx'
                   AND indexdef LIKE '%(processing_status, priority_code, opened_at)'),
  'operation_cases_sla_idx orders the open cases of a status and priority by opening time');

SELECT ok(EXISTS (SELECT 1 FROM pg_indexes WHERE indexname = 'events_retention_idx'
                   AND indexdef LIKE '%(processed_at) WHERE (event_status = ''completed''::text)'),
  'events_retention_idx gives retention the completed events oldest first');

SELECT * FROM finish();
ROLLBACK;
