-- The original lab's processing model, for comparison: an external client
-- that polls for one pending event per transaction and does the lifecycle
-- work with one statement per step.  Run by pgbench (bench/run).
BEGIN;
SELECT id AS event_id, aggregate_id AS request_id, seq AS event_seq
  FROM integration.events
 WHERE event_status = 'pending' AND event_type = 'RequestCreated'
 ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED \gset
INSERT INTO operational.operation_cases (submission_id, service_request_id, external_reference,
                                         request_type_code, priority_code, team_code)
SELECT submission_id, id, 'OC-' || substr(request_number, 4), request_type_code, priority_code, team_code
  FROM source_system.service_requests WHERE id = ':request_id'::uuid
ON CONFLICT (service_request_id) DO NOTHING;
INSERT INTO operational.case_status_history (submission_id, case_id, previous_status, new_status, changed_by, change_reason)
SELECT submission_id, id, NULL, 'open', 'poller', 'case opened from the service request'
  FROM operational.operation_cases WHERE service_request_id = ':request_id'::uuid;
INSERT INTO canonical.business_objects (submission_id, object_type, source_system, source_reference,
                                        canonical_category, lifecycle_status, attributes, last_event_seq)
SELECT r.submission_id, 'service_request', r.source_system, r.request_number, t.canonical_category, 'active',
       jsonb_build_object('request_number', r.request_number), :event_seq
  FROM source_system.service_requests r JOIN reference.request_types t ON t.code = r.request_type_code
 WHERE r.id = ':request_id'::uuid
ON CONFLICT (source_system, source_reference) DO NOTHING;
INSERT INTO canonical.lineage_records (submission_id, from_type, from_id, to_type, to_id, relationship, event_id)
SELECT c.submission_id, 'service_request', c.service_request_id, 'operation_case', c.id, 'synchronized_to', ':event_id'::uuid
  FROM operational.operation_cases c WHERE c.service_request_id = ':request_id'::uuid
ON CONFLICT DO NOTHING;
INSERT INTO canonical.lineage_records (submission_id, from_type, from_id, to_type, to_id, relationship, event_id)
SELECT c.submission_id, 'operation_case', c.id, 'business_object', b.id, 'normalized_to', ':event_id'::uuid
  FROM operational.operation_cases c JOIN canonical.business_objects b ON b.submission_id = c.submission_id
 WHERE c.service_request_id = ':request_id'::uuid
ON CONFLICT DO NOTHING;
INSERT INTO integration.sync_logs (submission_id, event_id, event_type, action, outcome, message)
SELECT submission_id, ':event_id'::uuid, 'RequestCreated', 'request_integrated', 'success', 'integrated by the poller'
  FROM source_system.service_requests WHERE id = ':request_id'::uuid;
UPDATE source_system.service_requests SET lifecycle_status = 'integrated', integrated_at = now() WHERE id = ':request_id'::uuid;
UPDATE integration.events SET event_status = 'completed', attempts = attempts + 1, processed_at = clock_timestamp()
 WHERE id = ':event_id'::uuid;
COMMIT;
