-- api.original_*: the original Enterprise Integration Lab's HTTP routes as
-- api functions.  The built-in gateway maps each route (POST
-- /intake/submissions, PATCH /operational/cases/{id}/status, GET
-- /dashboard/..., GET /reference/...) onto one of them (http_original.c);
-- PostgREST users reach the same through POST /rpc/original_<name>.  They
-- take the original's field names and answer with them, and run on top of
-- the api functions above, so the rules (checks, rights, redaction) are
-- the same whichever way a request comes.  See docs/api.md.

-- Rename keys of a JSON object, old name -> original name, where the old
-- name is present and the original one is not.
CREATE FUNCTION enterprise_lab.api_original_keys(obj jsonb, pairs text[]) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  i integer;
BEGIN
  IF jsonb_typeof(obj) IS DISTINCT FROM 'object' THEN
    RETURN obj;
  END IF;
  FOR i IN 1 .. coalesce(array_length(pairs, 1), 0) LOOP
    IF obj ? pairs[i][1] AND NOT obj ? pairs[i][2] THEN
      obj := obj - pairs[i][1] || jsonb_build_object(pairs[i][2], obj -> pairs[i][1]);
    END IF;
  END LOOP;
  RETURN obj;
END $$;
COMMENT ON FUNCTION enterprise_lab.api_original_keys(jsonb, text[]) IS
  'api helper: renames keys of a JSON object (pairs {{old, original}, ...}) where the old key is present and the original one is not.';

-- A row of api.submissions' list with the original's names (the table
-- has them; the list keeps the shorter ones /rpc/submissions answers with).
CREATE FUNCTION enterprise_lab.api_original_submission(obj jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT enterprise_lab.api_original_keys(obj,
    '{{team,assigned_team},{intake_status,submission_status},{submitted_at,created_at}}')
$$;
COMMENT ON FUNCTION enterprise_lab.api_original_submission(jsonb) IS
  'api helper: a submission of api.submissions with the original lab''s names (assigned_team, submission_status, created_at).';

-- Paging of the list routes: limit 1..200 (default 50), offset >= 0.
CREATE FUNCTION enterprise_lab.api_original_page(fn text, body jsonb, OUT page_limit integer, OUT page_offset integer)
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT enterprise_lab.api_integer(fn, body, 'limit', 50, 1, 200),
         enterprise_lab.api_integer(fn, body, 'offset', 0, 0, 1000000000)
$$;
COMMENT ON FUNCTION enterprise_lab.api_original_page(text, jsonb) IS
  'api helper: limit (1..200, default 50) and offset (>= 0, default 0) of a list route; 22023 out of range.';


CREATE FUNCTION api.original_submit_request(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
  fn constant text := 'original_submit_request';
  b jsonb := enterprise_lab.api_body(fn, body,
               ARRAY['intake_method', 'requester_name', 'requester_email', 'request_description', 'request_type',
                     'priority', 'assigned_team', 'customer_id', 'agreement_id', 'document']);
  result jsonb;
BEGIN
  -- api.submit_request takes the original's keys (and files a request
  -- without customer_id under the UNASSIGNED customer).
  result := api.submit_request(b);
  RETURN result || (SELECT jsonb_build_object('submission_status', s.submission_status)
                      FROM intake.submissions s WHERE s.submission_id = (result ->> 'submission_id')::uuid);
END $$;
COMMENT ON FUNCTION api.original_submit_request(jsonb) IS
  'POST /intake/submissions of the original: {"intake_method"?, "requester_name", "requester_email", "request_description", "request_type", "priority", "assigned_team", "customer_id"?, "agreement_id"?, "document"?}; runs api.submit_request (without customer_id: the UNASSIGNED customer) and adds the submission_status.';


CREATE FUNCTION api.original_set_case_status(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
  fn constant text := 'original_set_case_status';
  b jsonb := enterprise_lab.api_body(fn, body,
               ARRAY['operation_case_id', 'new_status', 'changed_by', 'change_reason']);
  v_changed_by text := enterprise_lab.api_text(fn, b, 'changed_by', false, 200);
  claims text := current_setting('request.jwt.claims', true);
  result jsonb;
BEGIN
  -- changed_by is taken as given only from a caller who may act for
  -- others (an admin whose token the gateway or PostgREST checked);
  -- everyone else is recorded as the token's subject.
  IF v_changed_by IS NOT NULL AND enterprise_lab.request_access() = 'admin'
     AND enterprise_lab.request_trusts_claims() THEN
    PERFORM set_config('request.jwt.claims',
                       (enterprise_lab.request_claims() || jsonb_build_object('sub', v_changed_by))::text, true);
  END IF;
  result := api.set_case_status(jsonb_strip_nulls(jsonb_build_object(
              'case_id', b -> 'operation_case_id', 'new_status', b -> 'new_status',
              'reason', b -> 'change_reason')));
  PERFORM set_config('request.jwt.claims', coalesce(claims, ''), true);
  RETURN enterprise_lab.api_original_keys(result,
           '{{case_id,operation_case_id},{team,assigned_team},{processing_status,new_status}}');
END $$;
COMMENT ON FUNCTION api.original_set_case_status(jsonb) IS
  'PATCH /operational/cases/{operation_case_id}/status of the original: {"operation_case_id", "new_status", "changed_by"?, "change_reason"?}; runs api.set_case_status. changed_by is recorded as given for admins, otherwise the token''s subject is.';


CREATE FUNCTION api.original_submissions(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
  fn constant text := 'original_submissions';
  b jsonb := enterprise_lab.api_body(fn, body, ARRAY['limit', 'offset']);
  page record := enterprise_lab.api_original_page(fn, b);
BEGIN
  RETURN coalesce((
    SELECT jsonb_agg(enterprise_lab.api_original_submission(i) ORDER BY n)
      FROM jsonb_array_elements(api.submissions(jsonb_build_object('limit', page.page_limit,
                                                                   'offset', page.page_offset)) -> 'items')
           WITH ORDINALITY AS x(i, n)), '[]');
END $$;
COMMENT ON FUNCTION api.original_submissions(jsonb) IS
  'GET /dashboard/submissions of the original: the submissions with their lifecycle, newest first, {"limit"? (1..200, default 50), "offset"?}; runs api.submissions.';


CREATE FUNCTION api.original_submission(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
  fn constant text := 'original_submission';
  b jsonb := enterprise_lab.api_body(fn, body, ARRAY['submission_id']);
  d jsonb := api.submission_detail(b);
BEGIN
  RETURN d || jsonb_build_object(
    'case', enterprise_lab.api_original_keys(d -> 'case', '{{id,operation_case_id}}'),
    'events', coalesce((SELECT jsonb_agg(enterprise_lab.api_original_keys(e, '{{id,event_id}}') ORDER BY n)
                          FROM jsonb_array_elements(d -> 'events') WITH ORDINALITY AS x(e, n)), '[]'));
END $$;
COMMENT ON FUNCTION api.original_submission(jsonb) IS
  'GET /dashboard/submissions/{submission_id} of the original: one submission across every layer, {"submission_id"}; runs api.submission_detail.';


CREATE FUNCTION api.original_events(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
  fn constant text := 'original_events';
  b jsonb := enterprise_lab.api_body(fn, body, ARRAY['limit', 'offset']);
  page record := enterprise_lab.api_original_page(fn, b);
BEGIN
  RETURN coalesce((
    SELECT jsonb_agg(enterprise_lab.api_original_keys(to_jsonb(e), '{{id,event_id}}')
                     ORDER BY e.seq DESC)
      FROM (SELECT * FROM integration.events ORDER BY seq DESC
             LIMIT page.page_limit OFFSET page.page_offset) e), '[]');
END $$;
COMMENT ON FUNCTION api.original_events(jsonb) IS
  'GET /dashboard/events of the original: integration events of every submission, newest first, {"limit"? (1..200, default 50), "offset"?}.';


CREATE FUNCTION api.original_sync_logs(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
  fn constant text := 'original_sync_logs';
  b jsonb := enterprise_lab.api_body(fn, body, ARRAY['limit', 'offset']);
  page record := enterprise_lab.api_original_page(fn, b);
BEGIN
  RETURN coalesce((
    SELECT jsonb_agg(enterprise_lab.api_original_keys(to_jsonb(l), '{{id,sync_log_id}}') ORDER BY l.id DESC)
      FROM (SELECT * FROM integration.sync_logs ORDER BY id DESC
             LIMIT page.page_limit OFFSET page.page_offset) l), '[]');
END $$;
COMMENT ON FUNCTION api.original_sync_logs(jsonb) IS
  'GET /dashboard/sync-logs of the original: processing outcomes of every submission, newest first, {"limit"? (1..200, default 50), "offset"?}.';


CREATE FUNCTION api.original_lineage(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
  fn constant text := 'original_lineage';
  b jsonb := enterprise_lab.api_body(fn, body, ARRAY['limit', 'offset']);
  page record := enterprise_lab.api_original_page(fn, b);
BEGIN
  RETURN coalesce((
    SELECT jsonb_agg(to_jsonb(l) ORDER BY l.created_at DESC, l.from_id DESC, l.to_id DESC, l.relationship DESC)
      FROM (SELECT * FROM canonical.lineage_records r
             -- lineage_records_created_idx, read backwards
             ORDER BY r.created_at DESC, r.from_id DESC, r.to_id DESC, r.relationship DESC
             LIMIT page.page_limit OFFSET page.page_offset) l), '[]');
END $$;
COMMENT ON FUNCTION api.original_lineage(jsonb) IS
  'GET /dashboard/lineage of the original: lineage records of every submission, newest first, {"limit"? (1..200, default 50), "offset"?}.';


-- The reference reads: the lists of api.reference_data, one route each.
CREATE FUNCTION api.original_reference(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
  fn constant text := 'original_reference';
  b jsonb := enterprise_lab.api_body(fn, body, ARRAY['list']);
  v_list text := enterprise_lab.api_text(fn, b, 'list', true, 40);
  ref jsonb;
BEGIN
  IF v_list NOT IN ('customers', 'agreements', 'request_types', 'priorities', 'teams') THEN
    RAISE EXCEPTION '%: list "%" is not known', fn, v_list
      USING ERRCODE = 'invalid_parameter_value', COLUMN = 'list',
            HINT = 'Use customers, agreements, request_types, priorities or teams.';
  END IF;
  ref := api.reference_data('{}');
  IF v_list = 'customers' THEN
    RETURN coalesce((SELECT jsonb_agg(enterprise_lab.api_original_keys(c - 'agreements', '{{id,customer_id}}') ORDER BY n)
                       FROM jsonb_array_elements(ref -> 'customers') WITH ORDINALITY AS x(c, n)), '[]');
  ELSIF v_list = 'agreements' THEN
    RETURN coalesce((SELECT jsonb_agg(enterprise_lab.api_original_keys(a, '{{id,agreement_id}}')
                                      || jsonb_build_object('customer_id', c -> 'id') ORDER BY n, m)
                       FROM jsonb_array_elements(ref -> 'customers') WITH ORDINALITY AS x(c, n),
                            jsonb_array_elements(c -> 'agreements') WITH ORDINALITY AS y(a, m)), '[]');
  END IF;
  RETURN ref -> v_list;
END $$;
COMMENT ON FUNCTION api.original_reference(jsonb) IS
  'GET /reference/{customers,agreements,request-types,priorities,teams} of the original: {"list"}, one list of api.reference_data.';


REVOKE ALL ON FUNCTION api.original_submit_request(jsonb), api.original_set_case_status(jsonb),
  api.original_submissions(jsonb), api.original_submission(jsonb), api.original_events(jsonb),
  api.original_sync_logs(jsonb), api.original_lineage(jsonb), api.original_reference(jsonb)
  FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.original_submit_request(jsonb), api.original_submissions(jsonb),
  api.original_submission(jsonb), api.original_events(jsonb), api.original_sync_logs(jsonb),
  api.original_lineage(jsonb), api.original_reference(jsonb)
  TO lab_anon, lab_operator, lab_auditor, lab_admin;
GRANT EXECUTE ON FUNCTION api.original_set_case_status(jsonb) TO lab_operator, lab_admin;
