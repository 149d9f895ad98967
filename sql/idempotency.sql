-- Idempotency: processing the same event twice changes nothing.  Unique
-- keys on every derived row and INSERT ... ON CONFLICT make it a property
-- of the schema.
CREATE EXTENSION enterprise_lab;

SELECT count(*) FROM intake.submit_request('Ida Sample', 'ida@example.test', 'Duplicate me.',
       'incident', 'high', 'operations', '10000000-0000-4000-8000-000000000002');
SELECT integration.process_events();

CREATE TEMP VIEW counts AS
SELECT (SELECT count(*) FROM operational.operation_cases) AS cases,
       (SELECT count(*) FROM canonical.business_objects) AS objects,
       (SELECT count(*) FROM canonical.lineage_records) AS lineage,
       (SELECT count(*) FROM operational.case_status_history) AS history,
       (SELECT count(*) FROM source_system.service_requests) AS requests;
SELECT * FROM counts;

-- Inject a duplicate RequestCreated for the existing request (as an
-- at-least-once upstream would) and process it.
INSERT INTO integration.events (submission_id, event_type, source_system, aggregate_type, aggregate_id, payload)
SELECT submission_id, event_type, source_system, aggregate_type, aggregate_id, payload
  FROM integration.events WHERE event_type = 'RequestCreated';
SELECT integration.process_events();
SELECT event_type, event_status FROM integration.events ORDER BY seq;
SELECT * FROM counts;

-- Twice more, in one batch with a status change in between.
SELECT processing_status FROM operational.set_case_status((SELECT id FROM operational.operation_cases), 'in_progress', 'op', NULL);
INSERT INTO integration.events (submission_id, event_type, source_system, aggregate_type, aggregate_id, payload)
SELECT submission_id, event_type, source_system, aggregate_type, aggregate_id, payload
  FROM integration.events WHERE event_type = 'RequestCreated' ORDER BY seq LIMIT 1;
SELECT integration.process_events();
SELECT integration.process_events();
SELECT * FROM counts;
-- The replayed RequestCreated did not reset the case or the canonical status.
SELECT c.processing_status, b.lifecycle_status FROM operational.operation_cases c, canonical.business_objects b;
SELECT action, count(*) FROM integration.sync_logs GROUP BY action ORDER BY action;

-- An idempotency key makes enqueueing itself idempotent.
SELECT integration.enqueue_event('Ping', submission_id, 'service_request', id, '{}', 'custom', 'ping-1')
     = integration.enqueue_event('Ping', submission_id, 'service_request', id, '{}', 'custom', 'ping-1') AS same_event
  FROM source_system.service_requests;
SELECT count(*) AS ping_events FROM integration.events WHERE event_type = 'Ping';

DROP VIEW counts;
DROP EXTENSION enterprise_lab;
