-- api: the HTTP interface.  PostgREST exposes this schema alone; every
-- function takes one unnamed jsonb argument, so `POST /rpc/<name>` passes
-- the request body through unchanged (the built-in gateway does the same).
-- Bodies are checked strictly before anything is written: unknown keys and
-- wrong JSON types are 22023, missing fields 23502, over-long strings
-- 22001, malformed ids 22P02; strings are stored as given, never executed.
-- Not found is PT404 and a conflict with the current state PT409, which
-- PostgREST answers with HTTP 404 and 409.  See docs/api.md.

CREATE SCHEMA api;
COMMENT ON SCHEMA api IS
  'The HTTP interface (PostgREST, the built-in gateway): functions api.<name>(jsonb) RETURNS jsonb.';

-- Body helpers.  They live outside api so PostgREST does not publish them.

CREATE FUNCTION enterprise_lab.api_body(fn text, body jsonb, allowed text[]) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  unknown text;
BEGIN
  IF body IS NULL THEN
    RETURN '{}';
  END IF;
  IF jsonb_typeof(body) <> 'object' THEN
    RAISE EXCEPTION '%: the request body must be a JSON object', fn
      USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('The body is a JSON %s.', jsonb_typeof(body)),
            HINT = format('Send {} or an object with the keys %s.', coalesce(array_to_string(allowed, ', '), 'none'));
  END IF;
  SELECT k INTO unknown FROM jsonb_object_keys(body) AS k WHERE k <> ALL (allowed) ORDER BY k LIMIT 1;
  IF unknown IS NOT NULL THEN
    RAISE EXCEPTION '%: unknown key "%"', fn, left(unknown, 100)
      USING ERRCODE = 'invalid_parameter_value',
            HINT = CASE WHEN cardinality(allowed) = 0 THEN 'This function takes no keys; send {}.'
                        ELSE format('Allowed keys: %s.', array_to_string(allowed, ', ')) END;
  END IF;
  RETURN body;
END $$;
COMMENT ON FUNCTION enterprise_lab.api_body(text, jsonb, text[]) IS
  'api helper: the body as an object ({} when missing); rejects other JSON types and unknown keys (22023).';

-- A key that is absent or JSON null is "not given".
CREATE FUNCTION enterprise_lab.api_text(fn text, body jsonb, key text, required boolean, max_length integer)
RETURNS text
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v jsonb := body -> key;
  s text;
BEGIN
  IF v IS NULL OR jsonb_typeof(v) = 'null' THEN
    IF required THEN
      RAISE EXCEPTION '%: % is required', fn, key
        USING ERRCODE = 'not_null_violation', COLUMN = key;
    END IF;
    RETURN NULL;
  END IF;
  IF jsonb_typeof(v) <> 'string' THEN
    RAISE EXCEPTION '%: % must be a string', fn, key
      USING ERRCODE = 'invalid_parameter_value', COLUMN = key,
            DETAIL = format('It is a JSON %s.', jsonb_typeof(v));
  END IF;
  s := v #>> '{}';
  IF length(s) > max_length THEN
    RAISE EXCEPTION '%: % is too long', fn, key
      USING ERRCODE = 'string_data_right_truncation', COLUMN = key,
            DETAIL = format('It has %s characters; the limit is %s.', length(s), max_length);
  END IF;
  RETURN s;
END $$;
COMMENT ON FUNCTION enterprise_lab.api_text(text, jsonb, text, boolean, integer) IS
  'api helper: a string field (23502 when required and missing, 22023 when not a string, 22001 when too long).';

CREATE FUNCTION enterprise_lab.api_uuid(fn text, body jsonb, key text, required boolean) RETURNS uuid
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  s text := enterprise_lab.api_text(fn, body, key, required, 100);
BEGIN
  IF s !~* '^\s*\{?[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}\}?\s*$' THEN
    RAISE EXCEPTION '%: % is not a valid id', fn, key
      USING ERRCODE = 'invalid_text_representation', COLUMN = key,
            DETAIL = format('The value given was %s.', quote_literal(s)),
            HINT = 'Ids are UUIDs such as 10000000-0000-4000-8000-000000000001.';
  END IF;
  RETURN s::uuid;
END $$;
COMMENT ON FUNCTION enterprise_lab.api_uuid(text, jsonb, text, boolean) IS
  'api helper: an id field given as a UUID string (22P02 when malformed).';

CREATE FUNCTION enterprise_lab.api_integer(fn text, body jsonb, key text, fallback integer, min_value integer, max_value integer)
RETURNS integer
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v jsonb := body -> key;
  n numeric;
BEGIN
  IF v IS NULL OR jsonb_typeof(v) = 'null' THEN
    RETURN fallback;
  END IF;
  IF jsonb_typeof(v) <> 'number' THEN
    RAISE EXCEPTION '%: % must be a number', fn, key
      USING ERRCODE = 'invalid_parameter_value', COLUMN = key,
            DETAIL = format('It is a JSON %s.', jsonb_typeof(v));
  END IF;
  n := v::numeric;
  IF n <> trunc(n) OR n < min_value OR n > max_value THEN
    RAISE EXCEPTION '%: % must be a whole number from % to %', fn, key, min_value, max_value
      USING ERRCODE = 'invalid_parameter_value', COLUMN = key,
            DETAIL = format('The value given was %s.', left(n::text, 40));
  END IF;
  RETURN n::integer;
END $$;
COMMENT ON FUNCTION enterprise_lab.api_integer(text, jsonb, text, integer, integer, integer) IS
  'api helper: an optional whole-number field within bounds (22023 otherwise).';

CREATE FUNCTION enterprise_lab.api_not_found(what text, id uuid) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  RAISE EXCEPTION '% % does not exist', what, id
    USING ERRCODE = 'PT404', HINT = 'PostgREST answers this error with HTTP 404.';
END $$;
COMMENT ON FUNCTION enterprise_lab.api_not_found(text, uuid) IS 'api helper: raise PT404 (HTTP 404) for a missing object.';

-- Lineage edges of one transaction share created_at: list them in
-- lifecycle order, request -> case -> canonical object.
CREATE FUNCTION enterprise_lab.api_lineage_rank(record_type text) RETURNS integer
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT coalesce(array_position(ARRAY['submission', 'service_request', 'operation_case', 'business_object'], record_type), 5)
$$;
COMMENT ON FUNCTION enterprise_lab.api_lineage_rank(text) IS
  'api helper: the position of a record type in the lifecycle, for ordering lineage edges.';

-- Which requester e-mail addresses a request may see: anonymous callers
-- cannot prove who they are, so they see none.
CREATE FUNCTION enterprise_lab.api_may_see_emails() RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT coalesce(enterprise_lab.request_access() <> 'anon', false)
$$;
COMMENT ON FUNCTION enterprise_lab.api_may_see_emails() IS
  'api helper: false for the anonymous role, which sees no requester e-mail addresses.';

-- Which documents a request may read: their files carry the requester's
-- data as much as the e-mail address does, so an anonymous caller learns
-- that a document exists (its id) and nothing else, least of all a link.
CREATE FUNCTION enterprise_lab.api_may_see_documents() RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT coalesce(enterprise_lab.request_access() IN ('operator', 'auditor', 'admin'), false)
$$;
COMMENT ON FUNCTION enterprise_lab.api_may_see_documents() IS
  'api helper: true for operators, auditors and admins, who see documents'' details and download links; the anonymous role sees only that a document exists.';


CREATE FUNCTION api.reference_data(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
BEGIN
  PERFORM enterprise_lab.api_body('reference_data', body, '{}');
  RETURN jsonb_build_object(
    'customers', coalesce((
      SELECT jsonb_agg(jsonb_build_object(
               'id', c.id, 'code', c.code, 'name', c.name, 'status', c.status,
               'agreements', coalesce((
                 SELECT jsonb_agg(jsonb_build_object(
                          'id', a.id, 'agreement_number', a.agreement_number, 'name', a.name,
                          'valid_from', a.valid_from, 'valid_to', a.valid_to, 'status', a.status,
                          -- What intake.validate_submission accepts today.
                          'current', a.status = 'active' AND current_date >= a.valid_from
                                     AND (a.valid_to IS NULL OR current_date <= a.valid_to))
                        ORDER BY a.agreement_number)
                   FROM reference.agreements a WHERE a.customer_id = c.id), '[]'))
             ORDER BY c.name)
        FROM reference.customers c), '[]'),
    'request_types', coalesce((
      SELECT jsonb_agg(jsonb_build_object('code', t.code, 'name', t.name, 'canonical_category', t.canonical_category,
                                          'description', t.description) ORDER BY t.name)
        FROM reference.request_types t WHERE t.active), '[]'),
    'priorities', coalesce((
      SELECT jsonb_agg(jsonb_build_object('code', p.code, 'name', p.name, 'rank', p.rank) ORDER BY p.rank)
        FROM reference.priorities p), '[]'),
    'teams', coalesce((
      SELECT jsonb_agg(jsonb_build_object('code', t.code, 'name', t.name) ORDER BY t.name)
        FROM reference.teams t WHERE t.active), '[]'),
    'case_statuses', coalesce((
      SELECT jsonb_agg(jsonb_build_object('status', s.status, 'is_terminal', s.is_terminal,
                                          'description', s.description, 'canonical_status', m.canonical_status)
                       ORDER BY s.is_terminal, s.status)
        FROM operational.case_statuses s LEFT JOIN canonical.status_map m ON m.operational_status = s.status), '[]'),
    'transitions', coalesce((
      SELECT jsonb_agg(jsonb_build_object('from_status', t.from_status, 'to_status', t.to_status)
                       ORDER BY t.from_status, t.to_status)
        FROM operational.status_transitions t), '[]'),
    'intake_methods', coalesce((
      SELECT jsonb_agg(m.code ORDER BY m.code COLLATE "C") FROM reference.intake_methods m WHERE m.active), '[]'),
    'document_types', jsonb_build_object(
      'extensions', '["pdf", "txt", "csv", "png", "jpg", "jpeg"]'::jsonb,
      'content_types', '["application/pdf", "text/plain", "text/csv", "image/png", "image/jpeg"]'::jsonb,
      'max_size', pg_size_bytes(coalesce(current_setting('enterprise_lab.max_document_size', true), '10MB')),
      'types', coalesce((
        SELECT jsonb_agg(jsonb_build_object('code', t.code, 'name', t.name, 'description', t.description)
                         ORDER BY t.code <> 'supporting_document', t.name)
          FROM reference.document_types t WHERE t.active), '[]')));
END $$;
COMMENT ON FUNCTION api.reference_data(jsonb) IS
  'Everything the intake form and the workflow panel choose from: customers (status) with their agreements (current: active and valid today), request types, priorities, teams, case statuses, allowed transitions, document types (the accepted files, and the classifications in types). Body: {}.';


CREATE FUNCTION api.submit_request(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
  fn constant text := 'submit_request';
  b jsonb := enterprise_lab.api_body(fn, body,
               ARRAY['requester_name', 'requester_email', 'request_description', 'description', 'request_type',
                     'priority', 'assigned_team', 'team', 'customer_id', 'agreement_id', 'intake_method', 'document']);
  v_name text := enterprise_lab.api_text(fn, b, 'requester_name', true, 200);
  v_email text := enterprise_lab.api_text(fn, b, 'requester_email', true, 254);
  -- The original lab's keys (request_description, assigned_team), or the
  -- shorter ones (description, team); a missing one is named by the first.
  v_description text := coalesce(enterprise_lab.api_text(fn, b, 'request_description', false, 4000),
                                 enterprise_lab.api_text(fn, b, CASE WHEN b ? 'description' THEN 'description' ELSE 'request_description' END, true, 4000));
  v_type text := enterprise_lab.api_text(fn, b, 'request_type', true, 40);
  v_priority text := enterprise_lab.api_text(fn, b, 'priority', true, 40);
  v_team text := coalesce(enterprise_lab.api_text(fn, b, 'assigned_team', false, 40),
                          enterprise_lab.api_text(fn, b, CASE WHEN b ? 'team' THEN 'team' ELSE 'assigned_team' END, true, 40));
  -- The original lab's body names no customer: the seeded UNASSIGNED one.
  v_customer uuid := coalesce(enterprise_lab.api_uuid(fn, b, 'customer_id', false), '10000000-0000-4000-8000-000000000000');
  v_agreement uuid := enterprise_lab.api_uuid(fn, b, 'agreement_id', false);
  v_method text := coalesce(enterprise_lab.api_text(fn, b, 'intake_method', false, 40), 'portal');
  doc jsonb := b -> 'document';
  doc_name text;
  doc_type text;
  doc_class text;
  doc_base64 text;
  doc_content bytea;
  max_size bigint := pg_size_bytes(coalesce(current_setting('enterprise_lab.max_document_size', true), '10MB'));
  v_submission uuid;
  result jsonb;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM reference.intake_methods m WHERE m.code = v_method AND m.active) THEN
    RAISE EXCEPTION '%: intake_method "%" is not known', fn, v_method
      USING ERRCODE = 'invalid_parameter_value', COLUMN = 'intake_method',
            DETAIL = format('Known intake methods: %s.', (SELECT string_agg(m.code, ', ' ORDER BY m.code COLLATE "C")
                                                            FROM reference.intake_methods m WHERE m.active)),
            HINT = 'Choose one of reference.intake_methods.';
  END IF;

  IF doc IS NOT NULL AND jsonb_typeof(doc) <> 'null' THEN
    IF jsonb_typeof(doc) <> 'object' THEN
      RAISE EXCEPTION '%: document must be an object', fn
        USING ERRCODE = 'invalid_parameter_value', COLUMN = 'document',
              DETAIL = format('It is a JSON %s.', jsonb_typeof(doc)),
              HINT = 'Send {"file_name": ..., "content_type": ..., "content_base64": ...}.';
    END IF;
    PERFORM enterprise_lab.api_body(fn || ' document', doc, ARRAY['file_name', 'content_type', 'content_base64', 'document_type']);
    doc_name := enterprise_lab.api_text(fn, doc, 'file_name', true, 255);
    doc_type := enterprise_lab.api_text(fn, doc, 'content_type', true, 100);
    doc_class := coalesce(enterprise_lab.api_text(fn, doc, 'document_type', false, 63), 'supporting_document');
    IF NOT EXISTS (SELECT 1 FROM reference.document_types t WHERE t.code = doc_class AND t.active) THEN
      RAISE EXCEPTION '%: document_type "%" is not known', fn, doc_class
        USING ERRCODE = 'invalid_parameter_value', COLUMN = 'document_type',
              DETAIL = format('Known document types: %s.', (SELECT string_agg(t.code, ', ' ORDER BY t.code COLLATE "C")
                                                              FROM reference.document_types t WHERE t.active)),
              HINT = 'Choose one of reference.document_types, or leave it out for supporting_document.';
    END IF;
    -- base64 is 4 characters per 3 bytes, plus line breaks some encoders add.
    doc_base64 := enterprise_lab.api_text(fn, doc, 'content_base64', true,
                                          ((max_size + 2) / 3 * 4 + (max_size / 57 + 1) * 2)::integer);
    BEGIN
      doc_content := decode(doc_base64, 'base64');
    EXCEPTION WHEN invalid_parameter_value THEN
      RAISE EXCEPTION '%: document.content_base64 is not valid base64', fn
        USING ERRCODE = 'invalid_parameter_value', COLUMN = 'content_base64',
              DETAIL = SQLERRM, HINT = 'Encode the file''s bytes with standard base64 (RFC 4648).';
    END;
  END IF;

  INSERT INTO intake.submissions AS s
         (intake_method, requester_name, requester_email, request_description,
          request_type, priority, assigned_team, customer_id, agreement_id, submitted_by)
  VALUES (v_method, v_name, v_email, v_description, v_type, v_priority, v_team,
          v_customer, v_agreement, enterprise_lab.request_subject())
  RETURNING s.submission_id INTO v_submission;

  SELECT jsonb_build_object('submission_id', v_submission,
                            'service_request_id', r.id,
                            'request_number', r.request_number,
                            'event_id', e.id,
                            'document_id', NULL)
    INTO result
    FROM source_system.service_requests r
    JOIN integration.events e ON e.submission_id = r.submission_id AND e.event_type = 'RequestCreated'
   WHERE r.submission_id = v_submission;

  IF doc_content IS NOT NULL THEN
    result := result || jsonb_build_object('document_id',
      document_repo.upload_document(v_submission, doc_name, doc_type, doc_content, doc_class));
  END IF;
  RETURN result;
END $$;
COMMENT ON FUNCTION api.submit_request(jsonb) IS
  'Submit an intake request: {"requester_name", "requester_email", "request_description" (or "description"), "request_type", "priority", "assigned_team" (or "team"), "customer_id"? (default: the UNASSIGNED customer), "agreement_id"?, "intake_method"? (default portal), "document"?}, the document being {file_name, content_type, content_base64, document_type? (from reference.document_types, default supporting_document)}. Creates the submission, its service request, the RequestCreated event and the document in one transaction. Returns their ids and the request number.';


CREATE FUNCTION api.set_case_status(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
  fn constant text := 'set_case_status';
  b jsonb := enterprise_lab.api_body(fn, body, ARRAY['case_id', 'new_status', 'reason']);
  v_case uuid := enterprise_lab.api_uuid(fn, b, 'case_id', true);
  v_status text := enterprise_lab.api_text(fn, b, 'new_status', true, 40);
  v_reason text := enterprise_lab.api_text(fn, b, 'reason', false, 1000);
  before operational.operation_cases;
  after operational.operation_cases;
  msg text;
  det text;
  hnt text;
BEGIN
  SELECT * INTO before FROM operational.operation_cases WHERE id = v_case;
  IF NOT FOUND THEN
    PERFORM enterprise_lab.api_not_found('case', v_case);
  END IF;
  -- Who may change the case is decided here, where the request's role and
  -- claims are, before anything is written: on Citus the UPDATE runs on a
  -- worker node, in a session that knows neither.
  IF NOT enterprise_lab.request_may_change_team(before.team_code) THEN
    RAISE EXCEPTION '%: not allowed to change case % of team %', fn, before.external_reference, before.team_code
      USING ERRCODE = 'insufficient_privilege',
            DETAIL = format('Your teams: %s.',
                            coalesce(nullif(array_to_string(enterprise_lab.request_teams(), ', '), ''), 'none')),
            HINT = 'An operator changes the cases of its teams: the "teams" (or "team") claim of its JWT, or for a direct login the rows of operational.role_teams.';
  END IF;

  BEGIN
    after := operational.set_case_status(v_case, v_status, enterprise_lab.request_subject(), v_reason);
  EXCEPTION
    WHEN object_not_in_prerequisite_state THEN
      GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
      RAISE EXCEPTION '%', msg USING ERRCODE = 'PT409', DETAIL = det, HINT = hnt;
  END;

  RETURN jsonb_build_object('case_id', after.id,
                            'external_reference', after.external_reference,
                            'team', after.team_code,
                            'previous_status', before.processing_status,
                            'processing_status', after.processing_status,
                            'changed_by', after.status_changed_by,
                            'change_reason', after.status_change_reason,
                            'status_changed_at', after.status_changed_at);
END $$;
COMMENT ON FUNCTION api.set_case_status(jsonb) IS
  'Move an operational case: {"case_id", "new_status", "reason"?}. Operators may change the cases of the teams in their JWT claims, admins all; changed_by is the JWT subject. Records history and enqueues OperationalCaseStatusChanged.';


CREATE FUNCTION api.submissions(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
  fn constant text := 'submissions';
  b jsonb := enterprise_lab.api_body(fn, body, ARRAY['status', 'team', 'q', 'limit', 'offset']);
  v_status text := enterprise_lab.api_text(fn, b, 'status', false, 40);
  v_team text := enterprise_lab.api_text(fn, b, 'team', false, 40);
  v_q text := lower(nullif(btrim(enterprise_lab.api_text(fn, b, 'q', false, 200)), ''));
  v_limit integer := enterprise_lab.api_integer(fn, b, 'limit', 50, 1, 200);
  v_offset integer := enterprise_lab.api_integer(fn, b, 'offset', 0, 0, 1000000000);
  emails boolean := enterprise_lab.api_may_see_emails();
  -- Only the filters given, so the planner drops the joins nobody needs
  -- and pages straight off the submitted_at index.  Values are bound
  -- parameters ($1..$4), never part of the SQL text.
  filter text := concat_ws(' AND ', 'true',
    CASE WHEN v_status IS NOT NULL THEN '$1 IN (l.intake_status, l.source_status, l.case_status, l.canonical_status)' END,
    CASE WHEN v_team IS NOT NULL THEN 'l.team_code = $2' END,
    -- A plain substring test: q is text to find, never a pattern.
    CASE WHEN v_q IS NOT NULL THEN
      'strpos(lower(concat_ws('' '', l.request_number, l.case_reference, l.requester_name, l.customer_name,
                               l.description, CASE WHEN $4 THEN l.requester_email END)), $3) > 0' END);
  total bigint;
  items jsonb;
BEGIN
  IF v_status IS NULL AND v_team IS NULL AND v_q IS NULL THEN
    -- The unfiltered total is the maintained count: the list's refresh
    -- does not count every submission.
    SELECT coalesce(sum(c.count), 0) INTO total
      FROM enterprise_lab.node_status_counts() c WHERE c.layer = 'intake';
  ELSE
    EXECUTE 'SELECT count(*) FROM dashboard.submission_lifecycle l WHERE ' || filter
       INTO total USING v_status, v_team, v_q, emails;
  END IF;
  EXECUTE $q$
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'submission_id', l.submission_id,
               'submitted_at', l.submitted_at,
               'intake_method', l.intake_method,
               'request_number', l.request_number,
               'requester_name', l.requester_name,
               'requester_email', CASE WHEN $4 THEN l.requester_email END,
               'customer_name', l.customer_name,
               'request_type', l.request_type_code,
               'priority', l.priority_code,
               'team', l.team_code,
               'intake_status', l.intake_status,
               'source_status', l.source_status,
               'case_id', l.case_id,
               'case_reference', l.case_reference,
               'case_status', l.case_status,
               'canonical_status', l.canonical_status,
               'unfinished_events', l.unfinished_events,
               'dead_letters', l.dead_letters)
             ORDER BY p.submitted_at DESC, p.submission_id), '[]')
      FROM (SELECT l.submission_id, l.submitted_at
              FROM dashboard.submission_lifecycle l
             WHERE $q$ || filter || $q$
             ORDER BY l.submitted_at DESC, l.submission_id
             LIMIT $5 OFFSET $6) p
      JOIN dashboard.submission_lifecycle l ON l.submission_id = p.submission_id $q$
     INTO items USING v_status, v_team, v_q, emails, v_limit, v_offset;
  RETURN jsonb_build_object('total', total, 'limit', v_limit, 'offset', v_offset, 'items', items);
END $$;
COMMENT ON FUNCTION api.submissions(jsonb) IS
  'The submission list, newest first: {"status"?, "team"?, "q"?, "limit"? (1..200, default 50), "offset"?}. status matches any layer''s status; q is a substring of number, names, customer or description. Requester e-mails are null for the anonymous role.';


CREATE FUNCTION api.submission_detail(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
  fn constant text := 'submission_detail';
  b jsonb := enterprise_lab.api_body(fn, body, ARRAY['submission_id']);
  v_id uuid := enterprise_lab.api_uuid(fn, b, 'submission_id', true);
  emails boolean := enterprise_lab.api_may_see_emails();
  see_documents boolean := enterprise_lab.api_may_see_documents();
  submission jsonb;
  request jsonb;
  operational_case jsonb;
  documents jsonb := '[]';
  d record;
  url text;
BEGIN
  SELECT to_jsonb(s) || jsonb_build_object(
           'requester_email', CASE WHEN emails THEN s.requester_email END,
           'customer_code', c.code, 'customer_name', c.name,
           'agreement_number', a.agreement_number, 'agreement_name', a.name)
    INTO submission
    FROM intake.submissions s
    JOIN reference.customers c ON c.id = s.customer_id
    LEFT JOIN reference.agreements a ON a.id = s.agreement_id
   WHERE s.submission_id = v_id;
  IF NOT FOUND THEN
    PERFORM enterprise_lab.api_not_found('submission', v_id);
  END IF;

  FOR d IN SELECT to_jsonb(x) AS doc, x.id, x.status FROM document_repo.documents x
            WHERE x.submission_id = v_id ORDER BY x.uploaded_at, x.id LOOP
    IF see_documents THEN
      url := CASE WHEN d.status = 'stored' THEN document_repo.presigned_url(d.id, interval '15 minutes') END;
      documents := documents || jsonb_build_array(d.doc || jsonb_build_object('download_url', url));
    ELSE
      documents := documents || jsonb_build_array(jsonb_build_object('id', d.id, 'download_url', NULL));
    END IF;
  END LOOP;

  SELECT to_jsonb(r), to_jsonb(c) INTO request, operational_case
    FROM source_system.service_requests r
    LEFT JOIN operational.operation_cases c ON c.submission_id = r.submission_id AND c.service_request_id = r.id
   WHERE r.submission_id = v_id;

  RETURN jsonb_build_object(
    'submission', submission,
    'service_request', request,
    'case', operational_case,
    'status_history', coalesce((SELECT jsonb_agg(to_jsonb(h) ORDER BY h.id)
                                  FROM operational.case_status_history h
                                 WHERE h.submission_id = v_id AND h.case_id = (operational_case ->> 'id')::uuid), '[]'),
    'canonical', (SELECT to_jsonb(o) FROM canonical.business_objects o
                   WHERE o.submission_id = v_id AND o.object_type = 'service_request'),
    'documents', documents,
    'events', coalesce((SELECT jsonb_agg(to_jsonb(e) ORDER BY e.seq)
                          FROM integration.events e WHERE e.submission_id = v_id), '[]'),
    'sync_logs', coalesce((SELECT jsonb_agg(to_jsonb(l) ORDER BY l.id)
                             FROM integration.sync_logs l WHERE l.submission_id = v_id), '[]'),
    'lineage', coalesce((SELECT jsonb_agg(to_jsonb(l) ORDER BY l.created_at, enterprise_lab.api_lineage_rank(l.from_type),
                                          l.from_type, l.to_type, l.relationship)
                           FROM canonical.lineage_records l WHERE l.submission_id = v_id), '[]'),
    'deliveries', coalesce((SELECT jsonb_agg(to_jsonb(dl) - 'payload' || jsonb_build_object('subscription_name', sub.name)
                                             ORDER BY dl.event_seq, sub.name)
                              FROM integration.deliveries dl
                              JOIN integration.subscriptions sub ON sub.id = dl.subscription_id
                             WHERE dl.submission_id = v_id
                               AND enterprise_lab.request_access() IN ('operator', 'auditor', 'admin')), '[]'));
END $$;
COMMENT ON FUNCTION api.submission_detail(jsonb) IS
  'One submission across every layer: {"submission_id"} -> submission, service_request, case, status_history, canonical, documents (for operators, auditors and admins with a 15-minute presigned download_url; only their ids for the anonymous role), events, sync_logs, lineage, webhook deliveries (not for the anonymous role). PT404 (HTTP 404) when unknown.';


CREATE FUNCTION api.metrics(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
BEGIN
  PERFORM enterprise_lab.api_body('metrics', body, '{}');
  RETURN jsonb_build_object(
    'status_counts', coalesce((SELECT jsonb_agg(to_jsonb(c) ORDER BY c.layer, c.status)
                                 FROM dashboard.status_counts c), '[]'),
    'processing', (SELECT to_jsonb(m) FROM dashboard.processing_metrics m),
    -- The longest held first, at most 100 (processing.held_submissions
    -- says how many there are).
    'held_submissions', coalesce((SELECT jsonb_agg(to_jsonb(h) ORDER BY h.held_since)
                                    FROM (SELECT * FROM integration.held_submissions
                                           ORDER BY held_since LIMIT 100) h), '[]'),
    'workers', coalesce((SELECT jsonb_agg(to_jsonb(w) ORDER BY w.node, w.worker)
                           FROM enterprise_lab.node_worker_status() w), '[]'));
END $$;
COMMENT ON FUNCTION api.metrics(jsonb) IS
  'Counts per status per layer, queue health (pending, retrying, dead letters, lag, throughput), the 100 longest-held submissions and worker status. Body: {}.';


CREATE FUNCTION api.health(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
  workers bigint;
  pending bigint;
  dead bigint;
BEGIN
  PERFORM enterprise_lab.api_body('health', body, '{}');
  -- Anyone may ask, as often as they like: the counts walk partial indexes
  -- and stop at 10000, so an answer costs the same however many events
  -- there are.
  -- One statement per number: Citus plans a statement that reads a
  -- distributed table as a whole, and refuses one that also calls a
  -- function returning records.
  SELECT count(*) INTO workers FROM enterprise_lab.node_worker_status() w WHERE w.worker IS NOT NULL;
  -- A column in the subquery's list: Citus cannot run an empty one.
  SELECT count(*) INTO pending FROM (SELECT 1 FROM integration.events
                                      WHERE event_status IN ('pending', 'failed') LIMIT 10000) AS e;
  SELECT count(*) INTO dead FROM (SELECT 1 FROM integration.events WHERE event_status = 'dead_letter' LIMIT 10000) AS e;
  RETURN jsonb_build_object(
    'status', 'ok',
    'database', true,
    'workers_running', workers,
    'pending_events', pending,
    'dead_letters', dead,
    'version', (SELECT extversion FROM pg_extension WHERE extname = 'enterprise_lab'));
END $$;
COMMENT ON FUNCTION api.health(jsonb) IS
  'Liveness: {"status": "ok", "database": true, workers running (on every node), pending events and dead letters (each counted up to 10000), extension version}. Body: {}.';


CREATE FUNCTION api.replay_event(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
  fn constant text := 'replay_event';
  b jsonb := enterprise_lab.api_body(fn, body, ARRAY['event_id']);
  v_event uuid := enterprise_lab.api_uuid(fn, b, 'event_id', true);
  msg text;
  det text;
BEGIN
  RETURN to_jsonb(integration.replay_event(v_event));
EXCEPTION
  WHEN no_data_found THEN
    PERFORM enterprise_lab.api_not_found('event', v_event);
  WHEN object_not_in_prerequisite_state THEN
    GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
    RAISE EXCEPTION '%', msg USING ERRCODE = 'PT409', DETAIL = det;
END $$;
COMMENT ON FUNCTION api.replay_event(jsonb) IS
  'Operators and admins: put a dead-lettered, failed or skipped event back to pending: {"event_id"}. Returns the event. PT409 (HTTP 409) when the event is not replayable.';


-- Who may call what.  PostgREST answers a missing EXECUTE privilege with
-- 401 for the anonymous role and 403 for the others.
DO $$
DECLARE
  f regprocedure;
BEGIN
  FOR f IN SELECT p.oid::regprocedure FROM pg_proc p WHERE p.pronamespace = 'api'::regnamespace LOOP
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
  END LOOP;
END $$;
GRANT USAGE ON SCHEMA api TO lab_anon, lab_operator, lab_auditor, lab_admin;
GRANT EXECUTE ON FUNCTION
  api.reference_data(jsonb), api.submit_request(jsonb), api.submissions(jsonb),
  api.submission_detail(jsonb), api.metrics(jsonb), api.health(jsonb)
  TO lab_anon, lab_operator, lab_auditor, lab_admin;
GRANT EXECUTE ON FUNCTION api.set_case_status(jsonb), api.replay_event(jsonb) TO lab_operator, lab_admin;
