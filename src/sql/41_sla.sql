-- operational (SLA): per-priority resolution deadlines, breach detection
-- and escalation.  A case still in a non-terminal status past its deadline
-- is flagged once (operational.sla_breaches) and an
-- OperationalCaseSlaBreached event carries the breach to the canonical
-- object, through the registered handler canonical.record_sla_breach().

CREATE TABLE operational.sla_policies (
  priority_code   text PRIMARY KEY REFERENCES reference.priorities (code),
  resolution_time interval NOT NULL
                  CONSTRAINT sla_policies_resolution_time_positive CHECK (resolution_time > interval '0'),
  description     text,
  seeded          boolean NOT NULL DEFAULT false
);
COMMENT ON TABLE operational.sla_policies IS
  'How long a case of each priority may stay open (not in a terminal status) before its SLA is breached. Priorities without a row have no SLA.';

INSERT INTO operational.sla_policies (priority_code, resolution_time, description, seeded) VALUES
  ('critical', interval '4 hours', 'Critical: resolve within 4 hours.', true),
  ('high', interval '1 day', 'High: resolve within 1 day.', true),
  ('medium', interval '3 days', 'Medium: resolve within 3 days.', true),
  ('low', interval '7 days', 'Low: resolve within 7 days.', true);

CREATE TRIGGER sla_policies_10_user_modified BEFORE UPDATE ON operational.sla_policies
  FOR EACH ROW EXECUTE FUNCTION enterprise_lab.mark_user_modified();

CREATE TABLE operational.sla_breaches (
  id            uuid NOT NULL DEFAULT enterprise_lab.uuid_v7(),
  submission_id uuid NOT NULL,
  case_id       uuid NOT NULL,
  priority_code text NOT NULL,
  case_status   text NOT NULL,
  opened_at     timestamptz NOT NULL,
  deadline      timestamptz NOT NULL,
  detected_at   timestamptz NOT NULL DEFAULT now(),
  event_id      uuid,
  CONSTRAINT sla_breaches_pkey PRIMARY KEY (id, submission_id),
  CONSTRAINT sla_breaches_case_id_fkey FOREIGN KEY (case_id, submission_id)
    REFERENCES operational.operation_cases (id, submission_id),
  CONSTRAINT sla_breaches_once_per_case UNIQUE (case_id, submission_id)
);
CREATE INDEX sla_breaches_submission_idx ON operational.sla_breaches (submission_id);
COMMENT ON TABLE operational.sla_breaches IS
  'One row per case that missed its SLA deadline (flagged once: the unique key on case_id), with the event that published it.';
COMMENT ON COLUMN operational.sla_breaches.case_status IS 'The case status when the breach was detected.';

-- The escalation looks at non-terminal cases by status and age.
-- What the SLA job and dashboard.sla_metrics read: the open cases of each
-- status and priority, oldest first.
CREATE INDEX operation_cases_sla_idx ON operational.operation_cases (processing_status, priority_code, opened_at);

CREATE FUNCTION operational.escalate_sla_breaches(max_cases integer DEFAULT 1000) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  pair record;
  flagged_now integer;
  n integer := 0;
BEGIN
  IF max_cases IS NULL OR max_cases < 1 THEN
    RAISE EXCEPTION 'max_cases must be at least 1'
      USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('The value given was %s.', coalesce(max_cases::text, 'NULL'));
  END IF;

  -- The job runs every minute, so it must not read every open case: for
  -- each policy (most urgent priority first) and open status, it reads the
  -- cases opened before now() - resolution_time, oldest first, a range of
  -- operation_cases_sla_idx planned with the bound's value.  That bound and
  -- the deadline, opened_at + resolution_time, agree except around a
  -- daylight saving change, where a case may be flagged up to an hour late,
  -- never early.
  --
  -- The unique key on case_id flags a breach once, even when two
  -- escalations run at the same time; the event's idempotency key makes its
  -- publication once as well.
  FOR pair IN
    SELECT p.priority_code, p.resolution_time, s.status
      FROM operational.sla_policies p
      JOIN reference.priorities pr ON pr.code = p.priority_code
      JOIN operational.case_statuses s ON NOT s.is_terminal
     ORDER BY pr.rank, s.status
  LOOP
    EXIT WHEN n >= max_cases;
    WITH overdue AS (
      SELECT c.id, c.submission_id, c.external_reference, c.priority_code, c.processing_status,
             c.opened_at, c.opened_at + pair.resolution_time AS deadline,
             enterprise_lab.uuid_v7() AS breach_id, enterprise_lab.uuid_v7() AS event_id
        FROM operational.operation_cases c
       WHERE c.processing_status = pair.status
         AND c.priority_code = pair.priority_code
         AND c.opened_at < now() - pair.resolution_time
         AND c.opened_at + pair.resolution_time < now()
         AND NOT EXISTS (SELECT 1 FROM operational.sla_breaches b
                          WHERE b.submission_id = c.submission_id AND b.case_id = c.id)
       ORDER BY c.opened_at
       LIMIT max_cases - n
    ), flagged AS (
      INSERT INTO operational.sla_breaches AS b
             (id, submission_id, case_id, priority_code, case_status, opened_at, deadline, event_id)
      SELECT o.breach_id, o.submission_id, o.id, o.priority_code, o.processing_status, o.opened_at,
             o.deadline, o.event_id
        FROM overdue o
      ON CONFLICT ON CONSTRAINT sla_breaches_once_per_case DO NOTHING
      RETURNING b.*
    )
    INSERT INTO integration.events AS e
           (id, submission_id, event_type, source_system, aggregate_type, aggregate_id, payload, idempotency_key)
    SELECT f.event_id, f.submission_id, 'OperationalCaseSlaBreached', 'operational', 'operation_case', f.case_id,
           jsonb_build_object('breach_id', f.id,
                              'case_id', f.case_id,
                              'external_reference', o.external_reference,
                              'priority', f.priority_code,
                              'case_status', f.case_status,
                              'opened_at', f.opened_at,
                              'deadline', f.deadline,
                              'detected_at', f.detected_at),
           'sla_breached:' || f.case_id
      FROM flagged f JOIN overdue o ON o.submission_id = f.submission_id AND o.id = f.case_id
    ON CONFLICT ON CONSTRAINT events_idempotency_key_unique DO NOTHING;
    GET DIAGNOSTICS flagged_now = ROW_COUNT;
    n := n + flagged_now;
  END LOOP;
  IF n > 0 THEN
    RAISE LOG 'enterprise_lab: % case(s) breached their SLA', n;
  END IF;
  RETURN n;
END $$;
COMMENT ON FUNCTION operational.escalate_sla_breaches(integer) IS
  'The SLA escalation job: flag up to max_cases non-terminal cases past their deadline (once each; the most urgent priority first, oldest first) and enqueue OperationalCaseSlaBreached for each; returns how many were flagged.';

CREATE FUNCTION canonical.record_sla_breach(e integration.events) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  UPDATE canonical.business_objects b
     SET attributes = b.attributes || jsonb_build_object('sla', jsonb_build_object(
           'status', 'breached',
           'priority', e.payload -> 'priority',
           'deadline', e.payload -> 'deadline',
           'breached_at', e.payload -> 'detected_at',
           'case_status', e.payload -> 'case_status')),
         updated_at = now()
   WHERE b.submission_id = e.submission_id AND b.object_type = 'service_request';
  IF NOT FOUND THEN
    RAISE EXCEPTION 'submission % has no canonical object yet', e.submission_id
      USING ERRCODE = 'no_data_found',
            DETAIL = format('Event %s reports an SLA breach of case %s.', e.id, e.payload ->> 'case_id'),
            HINT = 'Process or replay the submission''s RequestCreated event first.';
  END IF;
END $$;
COMMENT ON FUNCTION canonical.record_sla_breach(integration.events) IS
  'Handler of OperationalCaseSlaBreached: writes the breach into the canonical object''s attributes (key "sla").';

INSERT INTO integration.event_handlers (event_type, handler, description, seeded) VALUES
  ('OperationalCaseSlaBreached', 'canonical.record_sla_breach(integration.events)',
   'Records an SLA breach in the canonical object''s attributes.', true);

-- Counts grouped in subqueries, not correlated to each policy: Citus runs
-- each as one distributed aggregate, and a case and its breach are joined
-- on submission_id as well.
CREATE VIEW dashboard.sla_metrics AS
SELECT p.priority_code,
       p.resolution_time,
       coalesce(o.open_cases, 0) AS open_cases,
       coalesce(o.overdue_cases, 0) AS overdue_cases,
       coalesce(b.open_breaches, 0) AS open_breaches,
       coalesce(b.total_breaches, 0) AS total_breaches
  FROM operational.sla_policies p
  JOIN reference.priorities pr ON pr.code = p.priority_code
  LEFT JOIN (SELECT c.priority_code, count(*) AS open_cases,
                    count(*) FILTER (WHERE c.opened_at + cp.resolution_time < now()) AS overdue_cases
               FROM operational.operation_cases c
               JOIN operational.sla_policies cp ON cp.priority_code = c.priority_code
              WHERE c.processing_status IN (SELECT status FROM operational.case_statuses WHERE NOT is_terminal)
              GROUP BY c.priority_code) o ON o.priority_code = p.priority_code
  LEFT JOIN (SELECT x.priority_code, count(*) AS total_breaches,
                    count(*) FILTER (WHERE c.processing_status IN (SELECT status FROM operational.case_statuses
                                                                   WHERE NOT is_terminal)) AS open_breaches
               FROM operational.sla_breaches x
               LEFT JOIN operational.operation_cases c ON c.submission_id = x.submission_id AND c.id = x.case_id
              GROUP BY x.priority_code) b ON b.priority_code = p.priority_code
 ORDER BY pr.rank;
COMMENT ON VIEW dashboard.sla_metrics IS
  'SLA per priority: open cases, overdue cases, breaches still open and breaches ever flagged.';

SELECT pg_catalog.pg_extension_config_dump('operational.sla_policies', '');
SELECT pg_catalog.pg_extension_config_dump('operational.sla_breaches', '');
