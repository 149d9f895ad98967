-- api.submission_detail and the read functions over a processed
-- submission: every layer is there and agrees with the tables.
BEGIN;
CREATE EXTENSION IF NOT EXISTS enterprise_lab;
SELECT plan(42);

-- Submitted anonymously, integrated by the core, moved by an operator,
-- synchronized again: the whole lifecycle.
SET LOCAL ROLE lab_anon;
SELECT set_config('request.jwt.claims', '{"role": "lab_anon"}', true) AS claims \gset
SELECT api.submit_request('{"requester_name": "Dana Example", "requester_email": "dana@example.test",
  "description": "Grant VPN access to the new contractor.", "request_type": "access_request",
  "priority": "high", "team": "security", "customer_id": "10000000-0000-4000-8000-000000000001",
  "agreement_id": "20000000-0000-4000-8000-000000000001"}') AS submitted \gset
RESET ROLE;
SELECT :'submitted'::jsonb ->> 'submission_id' AS sub \gset
SELECT is(:'submitted'::jsonb ->> 'document_id', NULL, 'submit_request: document_id is null without a document');
SELECT is((SELECT id::text FROM source_system.service_requests WHERE submission_id = :'sub'),
          :'submitted'::jsonb ->> 'service_request_id', 'submit_request: returns the service request id');
SELECT is((SELECT id::text FROM integration.events WHERE submission_id = :'sub'),
          :'submitted'::jsonb ->> 'event_id', 'submit_request: returns the RequestCreated event id');

SELECT integration.process_events() AS processed \gset
SELECT id AS case_id FROM operational.operation_cases WHERE submission_id = :'sub' \gset
SET LOCAL ROLE lab_operator;
SELECT set_config('request.jwt.claims', '{"role": "lab_operator", "sub": "operator.one", "teams": ["security"]}', true) AS claims \gset
SELECT api.set_case_status(jsonb_build_object('case_id', :'case_id', 'new_status', 'in_progress', 'reason', 'picked up')) AS moved \gset
RESET ROLE;
SELECT integration.process_events() AS processed \gset

SET LOCAL ROLE lab_auditor;
SELECT set_config('request.jwt.claims', '{"role": "lab_auditor", "sub": "auditor.one"}', true) AS claims \gset
SELECT api.submission_detail(jsonb_build_object('submission_id', :'sub')) AS d \gset

SELECT set_eq(format($$SELECT jsonb_object_keys(%L::jsonb)$$, :'d'),
              ARRAY['submission', 'service_request', 'case', 'status_history', 'canonical', 'documents',
                    'events', 'sync_logs', 'lineage', 'deliveries'], 'detail: has every layer');
-- intake
SELECT is(:'d'::jsonb #>> '{submission,submission_id}', :'sub', 'intake: the submission');
SELECT is(:'d'::jsonb #>> '{submission,requester_email}', 'dana@example.test', 'intake: the e-mail (auditor)');
SELECT is(:'d'::jsonb #>> '{submission,customer_name}', 'Northwind Components', 'intake: the customer''s name');
SELECT is(:'d'::jsonb #>> '{submission,agreement_number}', 'AGR-NW-001', 'intake: the agreement number');
SELECT is(:'d'::jsonb #>> '{submission,submitted_by}', 'lab_anon', 'intake: submitted by the anonymous role');
-- source system
SELECT is(:'d'::jsonb #>> '{service_request,request_number}', :'submitted'::jsonb ->> 'request_number', 'source: the request number');
SELECT is(:'d'::jsonb #>> '{service_request,lifecycle_status}', 'integrated', 'source: integrated');
-- operational
SELECT is(:'d'::jsonb #>> '{case,id}', :'case_id', 'operational: the case');
SELECT is(:'d'::jsonb #>> '{case,processing_status}', 'in_progress', 'operational: in progress');
SELECT is(:'d'::jsonb #>> '{case,status_changed_by}', 'operator.one', 'operational: changed by the JWT subject');
SELECT is(jsonb_array_length(:'d'::jsonb -> 'status_history'), 2, 'history: opened, then moved');
SELECT is(:'d'::jsonb #>> '{status_history,1,new_status}', 'in_progress', 'history: the move, in order');
SELECT is(:'d'::jsonb #>> '{status_history,1,changed_by}', 'operator.one', 'history: who');
SELECT is(:'d'::jsonb #>> '{status_history,1,change_reason}', 'picked up', 'history: why');
-- canonical
SELECT is(:'d'::jsonb #>> '{canonical,lifecycle_status}', 'in_progress', 'canonical: follows the case');
SELECT is(:'d'::jsonb #>> '{canonical,canonical_category}', 'access', 'canonical: the category of the request type');
-- documents
SELECT is(:'d'::jsonb -> 'documents', '[]'::jsonb, 'documents: none submitted');
-- integration
SELECT is(jsonb_array_length(:'d'::jsonb -> 'events'), 2, 'events: RequestCreated and the status change');
SELECT results_eq(format($$SELECT e ->> 'event_type', e ->> 'event_status' FROM jsonb_array_elements(%L::jsonb -> 'events') e$$, :'d'),
                  $$VALUES ('RequestCreated', 'completed'), ('OperationalCaseStatusChanged', 'completed')$$,
                  'events: both completed, in order');
SELECT is(jsonb_array_length(:'d'::jsonb -> 'sync_logs'), 2, 'sync logs: one per processed event');
SELECT ok((SELECT bool_and(l ->> 'outcome' = 'success') FROM jsonb_array_elements(:'d'::jsonb -> 'sync_logs') l),
          'sync logs: all successful');
-- lineage
SELECT results_eq(format($$SELECT l ->> 'from_type', l ->> 'to_type' FROM jsonb_array_elements(%L::jsonb -> 'lineage') l$$, :'d'),
                  $$VALUES ('service_request', 'operation_case'), ('operation_case', 'business_object')$$,
                  'lineage: request -> case -> canonical object');
SELECT is(:'d'::jsonb #>> '{lineage,1,to_id}', :'d'::jsonb #>> '{canonical,id}', 'lineage: ends at the canonical object');

-- The other read functions say the same.
SELECT results_eq(
  format($$SELECT i ->> 'from_id', i ->> 'to_id', i ->> 'relationship'
             FROM jsonb_array_elements(api.lineage('{"submission_id": "%s"}') -> 'items') i$$, :'sub'),
  format($$SELECT l ->> 'from_id', l ->> 'to_id', l ->> 'relationship' FROM jsonb_array_elements(%L::jsonb -> 'lineage') l$$, :'d'),
  'lineage: the same edges as the detail');
SELECT is(jsonb_array_length(api.events(jsonb_build_object('submission_id', :'sub')) -> 'items'), 2, 'events: by submission');
SELECT is(api.events(jsonb_build_object('submission_id', :'sub', 'limit', 1)) #>> '{items,0,event_type}',
          'OperationalCaseStatusChanged', 'events: newest first, limited');
SELECT is(api.events(jsonb_build_object('submission_id', :'sub')) #>> '{items,1,request_number}',
          :'submitted'::jsonb ->> 'request_number', 'events: carry the request number');
SELECT is(jsonb_array_length(api.events('{"status": "pending"}') -> 'items'), 0, 'events: by status');
SELECT is(jsonb_array_length(api.sync_logs(jsonb_build_object('submission_id', :'sub')) -> 'items'), 2, 'sync_logs: by submission');
SELECT is((SELECT i ->> 'case_status' FROM jsonb_array_elements(api.submissions('{}') -> 'items') i
            WHERE i ->> 'submission_id' = :'sub'), 'in_progress', 'submissions: the list shows the case status');
SELECT is((SELECT i ->> 'canonical_status' FROM jsonb_array_elements(api.submissions('{"status": "in_progress"}') -> 'items') i
            WHERE i ->> 'submission_id' = :'sub'), 'in_progress', 'submissions: filtered by a status of any layer');
SELECT is((SELECT c ->> 'count' FROM jsonb_array_elements(api.metrics() -> 'status_counts') c
            WHERE c ->> 'layer' = 'operational' AND c ->> 'status' = 'in_progress'), '1', 'metrics: counts per layer and status');
SELECT is(api.metrics() #>> '{processing,pending_events}', '0', 'metrics: processing metrics');
SELECT is(jsonb_typeof(api.metrics() -> 'workers'), 'array', 'metrics: worker status');
SELECT is(api.health() - 'version' - 'workers_running',
          '{"status": "ok", "database": true, "pending_events": 0, "dead_letters": 0}'::jsonb, 'health: the shape of the contract');
SELECT is(api.health() ->> 'version', (SELECT extversion FROM pg_extension WHERE extname = 'enterprise_lab'), 'health: the version');
SELECT is(jsonb_array_length(api.reference_data() -> 'transitions'), 4, 'reference_data: the allowed transitions');
SELECT is((SELECT jsonb_array_length(c -> 'agreements') FROM jsonb_array_elements(api.reference_data() -> 'customers') c
            WHERE c ->> 'code' = 'NORTHWIND'), 2, 'reference_data: customers carry their agreements');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
