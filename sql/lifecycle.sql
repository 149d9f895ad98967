-- The lifecycle end to end, driven by integration.process_events():
-- submission -> service request -> RequestCreated -> case, canonical object,
-- lineage, sync log -> status changes -> canonical status.
CREATE EXTENSION enterprise_lab;

-- A submission creates its service request and event in the same transaction.
SELECT request_number, event_id IS NOT NULL AS has_event
  FROM intake.submit_request(
         requester_name  => 'Dana Example',
         requester_email => 'dana@example.test',
         description     => 'Please grant VPN access to the new contractor.',
         request_type    => 'access_request',
         priority        => 'high',
         team            => 'service_desk',
         customer_id     => '10000000-0000-4000-8000-000000000001',
         agreement_id    => '20000000-0000-4000-8000-000000000001');

SELECT request_number, lifecycle_status, summary FROM source_system.service_requests;
SELECT event_type, source_system, aggregate_type, event_status, attempts,
       payload ->> 'request_number' AS request_number
  FROM integration.events;

-- Nothing downstream exists until the event is processed.
SELECT count(*) AS cases FROM operational.operation_cases;

SELECT integration.process_events();

SELECT event_type, event_status, attempts, processed_at IS NOT NULL AS processed FROM integration.events;
SELECT r.lifecycle_status, c.external_reference, c.processing_status, b.lifecycle_status AS canonical_status,
       b.canonical_category, b.attributes ->> 'customer_code' AS customer
  FROM source_system.service_requests r
  JOIN operational.operation_cases c ON c.service_request_id = r.id
  JOIN canonical.business_objects b ON b.submission_id = r.submission_id;
SELECT from_type, to_type, relationship FROM canonical.lineage_records ORDER BY from_type DESC;
SELECT event_type, action, outcome, message FROM integration.sync_logs ORDER BY id;
SELECT previous_status, new_status, changed_by, change_reason FROM operational.case_status_history ORDER BY id;

-- An operator works the case; each change is recorded and published.
SELECT processing_status
  FROM operational.set_case_status((SELECT id FROM operational.operation_cases), 'in_progress', 'operator.one', 'picked up');
SELECT integration.process_events();
SELECT lifecycle_status FROM canonical.business_objects;

SELECT processing_status
  FROM operational.set_case_status((SELECT id FROM operational.operation_cases), 'completed', 'operator.one', 'access granted');
SELECT integration.process_events();

SELECT previous_status, new_status, changed_by, change_reason FROM operational.case_status_history ORDER BY id;
SELECT event_type, event_status, payload ->> 'new_status' AS new_status FROM integration.events ORDER BY seq;
SELECT action, message FROM integration.sync_logs ORDER BY id;
SELECT request_number, source_status, case_status, canonical_status, event_count, unfinished_events
  FROM dashboard.submission_lifecycle;
SELECT layer, status, count FROM dashboard.status_counts ORDER BY layer, status;

-- Nothing left to do.
SELECT integration.process_events();

-- A rolled-back submission leaves nothing behind.
BEGIN;
SELECT count(*) FROM intake.submit_request('Rolled Back', 'rb@example.test', 'never committed',
       'incident', 'low', 'operations', '10000000-0000-4000-8000-000000000002');
ROLLBACK;
SELECT (SELECT count(*) FROM intake.submissions) AS submissions,
       (SELECT count(*) FROM source_system.service_requests) AS requests,
       (SELECT count(*) FROM integration.events) AS events;

DROP EXTENSION enterprise_lab;
SELECT count(*) AS leftover_schemas FROM pg_namespace
 WHERE nspname IN ('reference', 'intake', 'source_system', 'integration', 'operational', 'canonical', 'dashboard', 'enterprise_lab');
