-- A hash of what processing RequestCreated events derived (bench/run): every
-- written row's content without its generated ids and timestamps, with each
-- reference to another row replaced by that row's natural key (request
-- number, case reference) or checked to point at the right one.  Two drains
-- of the same load give the same hash only if they wrote the same rows.
SELECT md5(string_agg(line, E'\n' ORDER BY line))
  FROM (
  SELECT concat_ws('|', 'request', r.request_number, r.lifecycle_status, r.integrated_at IS NOT NULL) AS line
    FROM source_system.service_requests r
  UNION ALL
  SELECT concat_ws('|', 'event', r.request_number, e.event_type, e.event_status, e.attempts, e.last_error,
                   e.processed_at IS NOT NULL)
    FROM integration.events e JOIN source_system.service_requests r ON r.id = e.aggregate_id
  UNION ALL
  SELECT concat_ws('|', 'case', r.request_number, c.external_reference, c.request_type_code, c.priority_code,
                   c.team_code, c.processing_status, c.submission_id = r.submission_id)
    FROM operational.operation_cases c JOIN source_system.service_requests r ON r.id = c.service_request_id
  UNION ALL
  SELECT concat_ws('|', 'history', c.external_reference, h.previous_status, h.new_status, h.changed_by,
                   h.change_reason, h.team_code, h.submission_id = c.submission_id)
    FROM operational.case_status_history h JOIN operational.operation_cases c ON c.id = h.case_id
  UNION ALL
  SELECT concat_ws('|', 'object', b.object_type, b.source_system, b.source_reference, b.canonical_category,
                   b.lifecycle_status, b.attributes::text, b.last_event_seq = e.seq,
                   b.submission_id = r.submission_id)
    FROM canonical.business_objects b
    JOIN source_system.service_requests r ON r.source_system = b.source_system AND r.request_number = b.source_reference
    JOIN integration.events e ON e.aggregate_id = r.id AND e.event_type = 'RequestCreated'
  UNION ALL
  SELECT concat_ws('|', 'edge', l.relationship, l.from_type, l.to_type, rv.request_number,
                   coalesce(fr.request_number, fc.external_reference), coalesce(tc.external_reference, tb.source_reference),
                   l.submission_id = ev.submission_id)
    FROM canonical.lineage_records l
    JOIN integration.events ev ON ev.id = l.event_id
    JOIN source_system.service_requests rv ON rv.id = ev.aggregate_id
    LEFT JOIN source_system.service_requests fr ON fr.id = l.from_id
    LEFT JOIN operational.operation_cases fc ON fc.id = l.from_id
    LEFT JOIN operational.operation_cases tc ON tc.id = l.to_id
    LEFT JOIN canonical.business_objects tb ON tb.id = l.to_id
  UNION ALL
  SELECT concat_ws('|', 'sync', rv.request_number, s.event_type, s.action, s.outcome, s.message, s.attempt,
                   s.submission_id = ev.submission_id,
                   (SELECT string_agg(k, ',' ORDER BY k) FROM jsonb_object_keys(s.details) k),
                   s.details ->> 'service_request_id' = rv.id::text, s.details ->> 'case_id' = c.id::text,
                   s.details ->> 'business_object_id' = b.id::text)
    FROM integration.sync_logs s
    JOIN integration.events ev ON ev.id = s.event_id
    JOIN source_system.service_requests rv ON rv.id = ev.aggregate_id
    LEFT JOIN operational.operation_cases c ON c.service_request_id = rv.id
    LEFT JOIN canonical.business_objects b ON b.source_system = rv.source_system AND b.source_reference = rv.request_number
  UNION ALL
  SELECT concat_ws('|', 'count', layer, status, count) FROM dashboard.status_counts
  ) x;
