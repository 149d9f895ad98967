-- The original lab's data contract: its JSON body is accepted as it is,
-- its codes are rows (exact, upper case allowed), and the five "Inspect
-- lifecycle records" queries of its README run unchanged on the demo data.
CREATE EXTENSION enterprise_lab;
\set SHOW_CONTEXT never
SELECT enterprise_lab.load_demo_data();

-- The original's POST /intake/submissions body, unchanged.
SELECT api.submit_request('{
    "intake_method": "manual_form",
    "requester_name": "Demo User",
    "requester_email": "demo.user@example.test",
    "request_description": "Create a generic service request.",
    "request_type": "GENERAL_INQUIRY",
    "priority": "medium",
    "assigned_team": "OPERATIONS_TEAM"
  }') ->> 'request_number' AS request_number;
SELECT integration.process_events(100);
SELECT s.intake_method, s.request_description, s.request_type, s.priority, s.assigned_team,
       c.code AS customer, s.submission_status, r.lifecycle_status, o.processing_status, b.canonical_category
  FROM intake.submissions s
  JOIN reference.customers c ON c.id = s.customer_id
  JOIN source_system.service_requests r ON r.submission_id = s.submission_id
  JOIN operational.operation_cases o ON o.service_request_id = r.id
  JOIN canonical.business_objects b ON b.submission_id = s.submission_id
 WHERE s.requester_email = 'demo.user@example.test';

-- The five queries, exactly as the original README prints them.  Their
-- ids and timestamps differ from run to run, so only the row counts are
-- compared.
\o /dev/null
SELECT submission_id, requester_name, submission_status FROM intake.submissions ORDER BY created_at DESC LIMIT 5;
\o
SELECT :ROW_COUNT AS submissions;
\o /dev/null
SELECT request_number, lifecycle_status FROM source_system.service_requests ORDER BY created_at DESC LIMIT 5;
\o
SELECT :ROW_COUNT AS service_requests;
\o /dev/null
SELECT event_type, source_system, event_status FROM integration.events ORDER BY created_at DESC LIMIT 10;
\o
SELECT :ROW_COUNT AS events;
\o /dev/null
SELECT external_reference, processing_status FROM operational.operation_cases ORDER BY updated_at DESC LIMIT 5;
\o
SELECT :ROW_COUNT AS operation_cases;
\o /dev/null
SELECT object_type, canonical_category, lifecycle_status FROM canonical.business_objects ORDER BY updated_at DESC LIMIT 5;
\o
SELECT :ROW_COUNT AS business_objects;

-- The newest submission is the original's, by its column names.
SELECT requester_name, submission_status FROM intake.submissions ORDER BY created_at DESC, requester_name LIMIT 1;

-- Codes are exact: a code in another case is unknown, and says which exist.
SELECT api.submit_request('{"requester_name": "Demo User", "requester_email": "demo.user@example.test",
  "request_description": "Lower case.", "request_type": "general_inquiry", "priority": "medium",
  "assigned_team": "OPERATIONS_TEAM"}');
SELECT api.submit_request('{"requester_name": "Demo User", "requester_email": "demo.user@example.test",
  "request_description": "Unknown team.", "request_type": "GENERAL_INQUIRY", "priority": "medium",
  "assigned_team": "operations_team"}');
SELECT api.submit_request('{"requester_name": "Demo User", "requester_email": "demo.user@example.test",
  "request_description": "Unknown priority.", "request_type": "GENERAL_INQUIRY", "priority": "MEDIUM",
  "assigned_team": "OPERATIONS_TEAM"}');
SELECT api.submit_request('{"requester_name": "Demo User", "requester_email": "demo.user@example.test",
  "request_description": "Unknown method.", "request_type": "GENERAL_INQUIRY", "priority": "medium",
  "assigned_team": "OPERATIONS_TEAM", "intake_method": "fax"}');
-- A direct insert meets the same checks (the trigger names the column).
INSERT INTO intake.submissions (intake_method, requester_name, requester_email, request_description,
                                request_type, priority, assigned_team, customer_id)
VALUES ('carrier_pigeon', 'Demo User', 'demo.user@example.test', 'Direct insert.', 'GENERAL_INQUIRY', 'medium',
        'OPERATIONS_TEAM', '10000000-0000-4000-8000-000000000000');

-- New codes are rows: upper case and hyphens are fine, junk is not.
INSERT INTO reference.teams (code, name) VALUES ('NIGHT-SHIFT', 'Night shift');
INSERT INTO reference.intake_methods (code, name) VALUES ('FAX', 'Fax');
\set VERBOSITY terse
INSERT INTO reference.request_types (code, name, canonical_category) VALUES ('1_BAD', 'Bad', 'information');
INSERT INTO reference.intake_methods (code, name) VALUES ('has space', 'Bad');
\set VERBOSITY default
SELECT api.submit_request('{"requester_name": "Night User", "requester_email": "night.user@example.test",
  "request_description": "Sent by fax at night.", "request_type": "GENERAL_INQUIRY", "priority": "low",
  "assigned_team": "NIGHT-SHIFT", "intake_method": "FAX"}') ? 'submission_id' AS accepted;
-- An inactive intake method is refused.
UPDATE reference.intake_methods SET active = false WHERE code = 'FAX';
SELECT api.submit_request('{"requester_name": "Night User", "requester_email": "night.user@example.test",
  "request_description": "Sent by fax at night.", "request_type": "GENERAL_INQUIRY", "priority": "low",
  "assigned_team": "NIGHT-SHIFT", "intake_method": "FAX"}');

DROP EXTENSION enterprise_lab;
