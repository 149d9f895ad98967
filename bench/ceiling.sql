-- The set-based ceiling of bench/run: the writes the processing core makes
-- for a batch of RequestCreated events (src/handlers.c, src/process.c), by
-- hand, in two statements (the claim, then all the writes) on the product's
-- own tables, with none of the
-- product's safeguards (no per-submission order check, no chunks and
-- subtransactions, no retry bookkeeping, no plan reuse).  The same rows with
-- the same content: bench/fingerprint.sql must give the same hash after a
-- drain by the workers and after one by this function.  The count triggers
-- fire on these statements as they do on the handlers'.
CREATE SCHEMA bench;

-- The claimed ids go to the writes as an array, as the handlers get them:
-- joined to a CTE instead, the events and requests are hashed whole.
CREATE FUNCTION bench.ceiling_batch(batch_size integer) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  ids uuid[];
  n bigint;
BEGIN
  SELECT array_agg(c.id) INTO ids
    FROM (SELECT e.id
            FROM integration.events e
           WHERE e.event_status IN ('pending', 'failed') AND e.event_type = 'RequestCreated'
           ORDER BY e.seq
           LIMIT batch_size
             FOR UPDATE SKIP LOCKED) c;
  IF ids IS NULL THEN
    RETURN 0;
  END IF;

  WITH requests AS (
  UPDATE source_system.service_requests r
     SET lifecycle_status = 'integrated', integrated_at = coalesce(r.integrated_at, now()), updated_at = now()
    FROM integration.events e
   WHERE e.id = ANY (ids) AND r.id = e.aggregate_id
  RETURNING r.id, r.submission_id, r.source_system, r.request_number, r.request_type_code, r.priority_code,
            r.team_code, r.customer_id, r.agreement_id, r.summary,
            e.id AS event_id, e.seq AS event_seq, e.attempts + 1 AS attempt
), cases AS (
  INSERT INTO operational.operation_cases
         (submission_id, service_request_id, external_reference, request_type_code, priority_code, team_code,
          processing_status)
  SELECT r.submission_id, r.id, 'OC-' || substr(r.request_number, 4), r.request_type_code, r.priority_code,
         r.team_code, 'open'
    FROM requests r
  RETURNING id, submission_id, service_request_id, external_reference, team_code
), history AS (
  INSERT INTO operational.case_status_history
         (submission_id, case_id, previous_status, new_status, changed_by, change_reason, team_code)
  SELECT submission_id, id, NULL, 'open', 'enterprise_lab', 'case opened from the service request', team_code
    FROM cases
), objects AS (
  INSERT INTO canonical.business_objects
         (submission_id, object_type, source_system, source_reference, canonical_category, lifecycle_status,
          attributes, last_event_seq)
  SELECT r.submission_id, 'service_request', r.source_system, r.request_number, rt.canonical_category,
         sm.canonical_status,
         jsonb_build_object('request_number', r.request_number, 'request_type', r.request_type_code,
                            'priority', r.priority_code, 'team', r.team_code, 'customer_code', cu.code,
                            'customer_name', cu.name, 'agreement_number', ag.agreement_number,
                            'summary', r.summary),
         r.event_seq
    FROM requests r
    JOIN reference.request_types rt ON rt.code = r.request_type_code
    JOIN reference.customers cu ON cu.id = r.customer_id
    LEFT JOIN reference.agreements ag ON ag.id = r.agreement_id
    JOIN canonical.status_map sm ON sm.operational_status = 'open'
  RETURNING id, source_system, source_reference, lifecycle_status
), linked AS (
  SELECT r.event_id, r.submission_id, r.attempt, r.id AS request_id, r.request_number,
         c.id AS case_id, c.external_reference, o.id AS object_id, o.lifecycle_status
    FROM requests r
    JOIN cases c ON c.service_request_id = r.id
    JOIN objects o ON o.source_system = r.source_system AND o.source_reference = r.request_number
), edges AS (
  INSERT INTO canonical.lineage_records (submission_id, from_type, from_id, to_type, to_id, relationship, event_id)
  SELECT l.submission_id, x.from_type, x.from_id, x.to_type, x.to_id, x.relationship, l.event_id
    FROM linked l CROSS JOIN LATERAL (VALUES
         ('service_request', l.request_id, 'operation_case', l.case_id, 'synchronized_to'),
         ('operation_case', l.case_id, 'business_object', l.object_id, 'normalized_to'))
         AS x(from_type, from_id, to_type, to_id, relationship)
), logs AS (
  INSERT INTO integration.sync_logs (submission_id, event_id, event_type, action, outcome, message, details, attempt)
  SELECT l.submission_id, l.event_id, 'RequestCreated', 'request_integrated', 'success',
         format('%s integrated: case %s, canonical object %s', l.request_number, l.external_reference,
                l.lifecycle_status),
         jsonb_build_object('service_request_id', l.request_id, 'case_id', l.case_id,
                            'business_object_id', l.object_id),
         l.attempt
    FROM linked l
), completed AS (
  UPDATE integration.events e
     SET event_status = 'completed', attempts = e.attempts + 1, processed_at = clock_timestamp(), last_error = NULL
   WHERE e.id = ANY (ids)
  RETURNING e.id
  )
  SELECT count(*) INTO n FROM completed;
  RETURN n;
END $$;
