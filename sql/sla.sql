-- SLA escalation: per-priority deadlines are data; a case still open past
-- its deadline is flagged once, and the breach reaches the canonical object
-- through the OperationalCaseSlaBreached event and its registered handler.
CREATE EXTENSION enterprise_lab;
\set VERBOSITY default
\set SHOW_CONTEXT never

SELECT priority_code, resolution_time FROM operational.sla_policies
  JOIN reference.priorities ON code = priority_code ORDER BY rank;
SELECT event_type, handler, enabled FROM integration.event_handlers;

-- One request per priority, integrated.
SELECT count(*) FROM (
  SELECT intake.submit_request('Requester ' || p, p || '@example.test', 'A ' || p || ' request',
                               'incident', p, 'operations', '10000000-0000-4000-8000-000000000001')
    FROM unnest(ARRAY['critical', 'high', 'medium', 'low']) AS p) s;
SELECT integration.process_events(100);

-- Nothing is overdue yet.
SELECT operational.escalate_sla_breaches();

-- Five hours later: only the critical case (4 hours) is overdue.
UPDATE operational.operation_cases SET opened_at = opened_at - interval '5 hours', status_changed_at = status_changed_at - interval '5 hours';
SELECT * FROM dashboard.sla_metrics;
SELECT operational.escalate_sla_breaches();
SELECT c.external_reference, b.priority_code, b.case_status, b.deadline = c.opened_at + interval '4 hours' AS deadline_ok,
       b.event_id IS NOT NULL AS published
  FROM operational.sla_breaches b JOIN operational.operation_cases c ON c.id = b.case_id;

-- Flagged once: running the escalation again changes nothing.
SELECT operational.escalate_sla_breaches();
SELECT count(*) AS breaches, (SELECT count(*) FROM integration.events WHERE event_type = 'OperationalCaseSlaBreached') AS events
  FROM operational.sla_breaches;

-- The event is processed by the registered handler into the canonical object.
SELECT integration.process_events(100);
SELECT e.event_status, l.action, l.outcome, l.message
  FROM integration.events e JOIN integration.sync_logs l ON l.event_id = e.id
 WHERE e.event_type = 'OperationalCaseSlaBreached';
SELECT b.attributes ->> 'priority' AS priority, b.lifecycle_status,
       b.attributes #>> '{sla,status}' AS sla_status, b.attributes #>> '{sla,case_status}' AS case_status,
       (b.attributes #>> '{sla,deadline}')::timestamptz = s.deadline AS deadline_recorded
  FROM canonical.business_objects b JOIN operational.sla_breaches s ON s.submission_id = b.submission_id;

-- Four days on: high (1 day) and medium (3 days) are overdue, but the
-- medium case was completed in time and a completed case is not escalated.
SELECT count(*) FROM (
  SELECT operational.set_case_status(id, 'in_progress', 'operator', 'picked up'),
         operational.set_case_status(id, 'completed', 'operator', 'done')
    FROM operational.operation_cases WHERE priority_code = 'medium') s;
UPDATE operational.operation_cases SET opened_at = opened_at - interval '4 days';
SELECT operational.escalate_sla_breaches();
SELECT priority_code, case_status FROM operational.sla_breaches ORDER BY priority_code;
SELECT integration.process_events(100);
SELECT priority_code, open_cases, overdue_cases, open_breaches, total_breaches FROM dashboard.sla_metrics;
SELECT b.attributes ->> 'priority' AS priority, b.attributes #>> '{sla,status}' AS sla
  FROM canonical.business_objects b ORDER BY 1;

-- Deadlines are data: an operator tightens the low priority to 1 hour.
UPDATE operational.sla_policies SET resolution_time = interval '1 hour' WHERE priority_code = 'low';
SELECT operational.escalate_sla_breaches();
SELECT priority_code FROM operational.sla_breaches ORDER BY 1;

-- Rejections.
SELECT operational.escalate_sla_breaches(0);
\echo :LAST_ERROR_SQLSTATE
UPDATE operational.sla_policies SET resolution_time = interval '0' WHERE priority_code = 'low';
\echo :LAST_ERROR_SQLSTATE
INSERT INTO operational.sla_policies (priority_code, resolution_time) VALUES ('urgent', interval '1 hour');
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY terse
INSERT INTO operational.sla_breaches (submission_id, case_id, priority_code, case_status, opened_at, deadline)
SELECT submission_id, case_id, priority_code, case_status, opened_at, deadline FROM operational.sla_breaches LIMIT 1;
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY default

-- The handler refuses an event whose submission has no canonical object.
SELECT integration.enqueue_event('OperationalCaseSlaBreached', '00000000-0000-4000-8000-0000000000aa',
                                 'operation_case', '00000000-0000-4000-8000-0000000000bb') IS NOT NULL AS enqueued;
SET enterprise_lab.max_attempts = 1;
SELECT integration.process_events(100);
SELECT event_status, last_error FROM integration.events WHERE event_status = 'dead_letter';

DROP EXTENSION enterprise_lab;
