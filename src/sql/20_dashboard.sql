-- dashboard: read models over every boundary, for psql, the api schema and
-- the web dashboard.

CREATE SCHEMA dashboard;
COMMENT ON SCHEMA dashboard IS 'Read models: one row per submission across every layer, event flow, counts, metrics.';

CREATE VIEW dashboard.submission_lifecycle AS
SELECT s.submission_id,
       s.created_at          AS submitted_at,
       s.intake_method,
       s.requester_name,
       s.requester_email,
       s.request_description AS description,
       s.request_type        AS request_type_code,
       s.priority            AS priority_code,
       s.assigned_team       AS team_code,
       cu.code               AS customer_code,
       cu.name               AS customer_name,
       ag.agreement_number,
       s.submission_status   AS intake_status,
       r.id                  AS service_request_id,
       r.request_number,
       r.lifecycle_status    AS source_status,
       c.id                  AS case_id,
       c.external_reference  AS case_reference,
       c.processing_status   AS case_status,
       b.id                  AS business_object_id,
       b.lifecycle_status    AS canonical_status,
       (SELECT count(*) FROM integration.events e WHERE e.submission_id = s.submission_id) AS event_count,
       -- The statuses are filters, not conditions: with a condition on the
       -- status the planner may read a partial index (events_due_idx) whole,
       -- dead entries and all, for every row, instead of the submission's
       -- few events.
       (SELECT count(*) FILTER (WHERE e.event_status IN ('pending', 'failed')) FROM integration.events e
         WHERE e.submission_id = s.submission_id) AS unfinished_events,
       (SELECT count(*) FILTER (WHERE e.event_status = 'dead_letter') FROM integration.events e
         WHERE e.submission_id = s.submission_id) AS dead_letters,
       (SELECT max(l.created_at) FROM integration.sync_logs l WHERE l.submission_id = s.submission_id) AS last_synced_at
  FROM intake.submissions s
  JOIN reference.customers cu ON cu.id = s.customer_id
  LEFT JOIN reference.agreements ag ON ag.id = s.agreement_id
  LEFT JOIN source_system.service_requests r ON r.submission_id = s.submission_id
  -- Every join of two lifecycle tables is on submission_id as well, which
  -- keeps it on one node after enterprise_lab.distribute().
  LEFT JOIN operational.operation_cases c ON c.submission_id = s.submission_id AND c.service_request_id = r.id
  LEFT JOIN canonical.business_objects b ON b.submission_id = s.submission_id AND b.object_type = 'service_request';
COMMENT ON VIEW dashboard.submission_lifecycle IS 'One row per submission with its state in every layer.';

CREATE VIEW dashboard.event_flow AS
SELECT e.seq,
       e.id AS event_id,
       e.submission_id,
       r.request_number,
       e.event_type,
       e.source_system,
       e.aggregate_type,
       e.aggregate_id,
       e.event_status AS status,
       e.attempts,
       e.last_error,
       e.created_at,
       e.next_attempt_at,
       e.processed_at,
       round((extract(epoch FROM (e.processed_at - e.created_at)) * 1000)::numeric, 1) AS latency_ms
  FROM integration.events e
  LEFT JOIN source_system.service_requests r ON r.submission_id = e.submission_id;
COMMENT ON VIEW dashboard.event_flow IS 'Events with their request number, status and commit-to-processed latency.';

-- dashboard.status_counts and dashboard.processing_metrics read the
-- maintained counts: src/sql/21_counts.sql.
