-- The operational workflow: allowed moves are data, terminal statuses stay,
-- every change is recorded and published, and the canonical status follows.
CREATE EXTENSION enterprise_lab;

SELECT from_status, to_status FROM operational.status_transitions ORDER BY 1, 2;
SELECT operational_status, canonical_status FROM canonical.status_map ORDER BY 1;

SELECT count(*) FROM intake.submit_request('Ana Sample', 'ana@example.test', 'Printer on floor 2 is offline.',
       'incident', 'medium', 'operations', '10000000-0000-4000-8000-000000000002');
SELECT count(*) FROM intake.submit_request('Ben Sample', 'ben@example.test', 'Close my old account.',
       'service_change', 'low', 'service_desk', '10000000-0000-4000-8000-000000000003',
       '20000000-0000-4000-8000-000000000004');
SELECT integration.process_events();

CREATE FUNCTION pg_temp.case_of(rn text) RETURNS uuid LANGUAGE sql AS
  $$ SELECT c.id FROM operational.operation_cases c JOIN source_system.service_requests r
       ON r.id = c.service_request_id WHERE r.request_number = rn $$;

-- open -> in_progress -> completed
SELECT processing_status FROM operational.set_case_status(pg_temp.case_of('SR-000001'), 'in_progress', 'op.a', 'investigating');
SELECT processing_status FROM operational.set_case_status(pg_temp.case_of('SR-000001'), 'completed', 'op.a', 'replaced cable');
-- open -> rejected
SELECT processing_status FROM operational.set_case_status(pg_temp.case_of('SR-000002'), 'rejected', 'op.b', 'duplicate request');

-- The canonical objects follow only once the events are processed.
SELECT b.source_reference, b.lifecycle_status FROM canonical.business_objects b ORDER BY 1;
SELECT integration.process_events();
SELECT b.source_reference, b.lifecycle_status, b.last_event_seq > 0 AS has_seq FROM canonical.business_objects b ORDER BY 1;

-- A direct UPDATE is validated and recorded the same way (changed_by = current user).
SELECT count(*) FROM intake.submit_request('Cy Sample', 'cy@example.test', 'Reset my password.',
       'access_request', 'critical', 'security', '10000000-0000-4000-8000-000000000001');
SELECT integration.process_events();
UPDATE operational.operation_cases SET processing_status = 'in_progress' WHERE id = pg_temp.case_of('SR-000003');
SELECT previous_status, new_status, changed_by = current_user AS by_current_user, change_reason
  FROM operational.case_status_history WHERE case_id = pg_temp.case_of('SR-000003') ORDER BY id;

-- Per-submission order: two changes queued back to back are applied in order.
SELECT processing_status FROM operational.set_case_status(pg_temp.case_of('SR-000003'), 'completed', 'op.c', 'done');
SELECT event_type, payload ->> 'new_status' AS new_status, event_status FROM integration.events
 WHERE submission_id = (SELECT submission_id FROM source_system.service_requests WHERE request_number = 'SR-000003')
 ORDER BY seq;
-- One call applies only the first unfinished event of each submission...
SELECT integration.process_events();
SELECT lifecycle_status FROM canonical.business_objects WHERE source_reference = 'SR-000003';
-- ...the next call the one after it.
SELECT integration.process_events();
SELECT lifecycle_status FROM canonical.business_objects WHERE source_reference = 'SR-000003';

-- A late (older) event never overwrites a newer state.  Simulate an old
-- in_progress event arriving again after completed was applied: mark it
-- dead-lettered and replay it.
UPDATE integration.events SET event_status = 'dead_letter'
 WHERE payload ->> 'new_status' = 'in_progress'
   AND submission_id = (SELECT submission_id FROM source_system.service_requests WHERE request_number = 'SR-000003');
SELECT event_status FROM integration.replay_event(
  (SELECT id FROM integration.events WHERE payload ->> 'new_status' = 'in_progress'
      AND submission_id = (SELECT submission_id FROM source_system.service_requests WHERE request_number = 'SR-000003')));
SELECT integration.process_events();
SELECT lifecycle_status FROM canonical.business_objects WHERE source_reference = 'SR-000003';
SELECT action, message FROM integration.sync_logs
 WHERE submission_id = (SELECT submission_id FROM source_system.service_requests WHERE request_number = 'SR-000003')
 ORDER BY id DESC LIMIT 1;

SELECT c.external_reference, h.previous_status, h.new_status, h.changed_by, h.change_reason
  FROM operational.case_status_history h JOIN operational.operation_cases c ON c.id = h.case_id
 WHERE h.changed_by <> current_user
 ORDER BY c.external_reference, h.id;

DROP EXTENSION enterprise_lab;
