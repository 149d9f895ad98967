-- The shape of the extension: boundaries, keys that make processing
-- idempotent, what pg_dump keeps, and the settings users see.
BEGIN;
CREATE EXTENSION IF NOT EXISTS enterprise_lab;
SELECT plan(29);

SELECT has_schema(s) FROM unnest(ARRAY['reference', 'intake', 'source_system', 'integration',
                                        'operational', 'canonical', 'dashboard', 'enterprise_lab']) s;

SELECT col_is_unique('source_system', 'service_requests', 'submission_id', 'one service request per submission');
SELECT col_is_unique('source_system', 'service_requests', 'request_number', 'request numbers are unique');
SELECT col_is_unique('operational', 'operation_cases', 'service_request_id', 'one case per service request');
SELECT col_is_unique('operational', 'operation_cases', 'external_reference', 'case references are unique');
SELECT col_is_unique('canonical', 'business_objects', ARRAY['source_system', 'source_reference'],
  'one canonical object per source record');
SELECT col_is_pk('canonical', 'lineage_records', ARRAY['from_id', 'to_id', 'relationship'],
  'one lineage row per edge');
SELECT col_is_unique('integration', 'events', 'seq', 'event sequence numbers are unique');
SELECT col_is_unique('integration', 'events', ARRAY['submission_id', 'idempotency_key'],
  'idempotency keys are unique per submission');

-- Every lifecycle table carries the root key (see docs: scale-out).
SELECT bag_eq(
  $$ SELECT table_schema || '.' || table_name FROM information_schema.columns
      WHERE column_name = 'submission_id' AND table_schema IN ('source_system', 'integration', 'operational', 'canonical')
        AND table_name IN (SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE') $$,
  ARRAY['source_system.service_requests', 'integration.events', 'integration.sync_logs', 'integration.deliveries',
        'operational.operation_cases', 'operational.case_status_history', 'operational.sla_breaches',
        'canonical.business_objects', 'canonical.lineage_records'],
  'every lifecycle table carries submission_id');

-- pg_dump keeps every table that holds user data.
SELECT bag_eq(
  $$ SELECT c.oid::regclass::text FROM pg_extension e, unnest(e.extconfig) AS c(oid)
      WHERE e.extname = 'enterprise_lab' AND c.oid IN (SELECT oid FROM pg_class WHERE relkind = 'r') $$,
  ARRAY['reference.customers', 'reference.agreements', 'reference.request_types', 'reference.priorities',
        'reference.teams', 'reference.intake_methods', 'reference.document_types', 'intake.submissions',
        'source_system.service_requests', 'integration.events',
        'integration.sync_logs', 'integration.event_handlers', 'operational.operation_cases',
        'operational.case_status_history', 'canonical.status_map', 'canonical.business_objects',
        'canonical.lineage_records', 'document_repo.documents', 'operational.case_statuses',
        'operational.status_transitions', 'operational.sla_policies', 'operational.sla_breaches',
        'enterprise_lab.deleted_config_rows', 'operational.role_teams', 'integration.subscriptions',
        'integration.subscription_secrets', 'integration.deliveries', 'dashboard.status_count_slots'],
  'user tables are registered with pg_extension_config_dump');

SELECT ok((SELECT bool_and(short_desc IS NOT NULL AND short_desc <> '') FROM pg_settings
            WHERE name IN ('enterprise_lab.database', 'enterprise_lab.worker_count', 'enterprise_lab.batch_size',
                           'enterprise_lab.chunk_size', 'enterprise_lab.naptime', 'enterprise_lab.max_attempts',
                           'enterprise_lab.backoff_base', 'enterprise_lab.backoff_max')),
  'settings appear in pg_settings with descriptions');
SELECT is((SELECT count(*)::int FROM pg_settings WHERE name LIKE 'enterprise_lab.%'
             AND name IN ('enterprise_lab.database', 'enterprise_lab.worker_count', 'enterprise_lab.batch_size',
                          'enterprise_lab.chunk_size', 'enterprise_lab.naptime', 'enterprise_lab.max_attempts',
                          'enterprise_lab.backoff_base', 'enterprise_lab.backoff_max')), 8,
  'all eight processing settings exist');

SELECT is((SELECT count(*)::int FROM reference.customers WHERE contact_email NOT LIKE '%example.test'), 0,
  'example data uses example.test addresses only');

SELECT has_function('integration', 'process_events', ARRAY['integer']);
SELECT has_function('integration', 'replay_event', ARRAY['uuid']);
SELECT has_function('integration', 'replay_dead_letters', ARRAY[]::text[]);
SELECT has_function('operational', 'set_case_status', ARRAY['uuid', 'text', 'text', 'text']);
SELECT has_view('dashboard', 'submission_lifecycle', 'one row per submission across every layer');
SELECT has_view('dashboard', 'processing_metrics', 'queue metrics');
SELECT has_view('integration', 'held_submissions', 'held submissions are visible');
SELECT is((SELECT count(*)::int FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE n.nspname IN ('intake', 'source_system', 'integration', 'operational', 'enterprise_lab')
              AND p.prolang = (SELECT oid FROM pg_language WHERE lanname = 'plpgsql')
              AND p.prokind <> 'p'  -- a procedure that commits cannot have a SET clause
              AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c LIKE 'search_path=%')), 0,
  'every PL/pgSQL function pins its search_path');

SELECT * FROM finish();
ROLLBACK;
