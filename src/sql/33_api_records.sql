-- api: the lifecycle records across submissions (events, sync logs,
-- lineage), paged newest first, and the document types the intake form
-- offers.  A page is read off an index in created order with LIMIT, and
-- the next one starts below the last row shown (keyset paging), so a page
-- costs the same with ten rows or ten million and nothing is counted: the
-- answer says whether there is a next page, not how many rows there are.

-- How a document is classified; the intake form's selector lists the active ones.
CREATE TABLE reference.document_types (
  code        text PRIMARY KEY CONSTRAINT document_types_code_format CHECK (code ~ '^[a-z][a-z0-9_]{0,62}$'),
  name        text NOT NULL CONSTRAINT document_types_name_not_blank CHECK (name ~ '\S'),
  description text,
  active      boolean NOT NULL DEFAULT true,
  seeded      boolean NOT NULL DEFAULT false,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE reference.document_types IS
  'Classifications of supporting documents (document_repo.documents.document_type); api.submit_request accepts the active ones.';
CREATE TRIGGER document_types_10_user_modified BEFORE UPDATE ON reference.document_types
  FOR EACH ROW EXECUTE FUNCTION enterprise_lab.mark_user_modified();
CREATE TRIGGER document_types_20_touch BEFORE UPDATE ON reference.document_types
  FOR EACH ROW EXECUTE FUNCTION enterprise_lab.touch_updated_at();
INSERT INTO reference.document_types (code, name, description, seeded) VALUES
  ('supporting_document', 'Supporting document', 'Any document that explains the request.', true),
  ('contract', 'Contract or agreement', 'A signed agreement, addendum or order form.', true),
  ('invoice', 'Invoice', 'An invoice or billing statement.', true),
  ('screenshot', 'Screenshot', 'A picture of what the requester sees.', true),
  ('report', 'Report or export', 'A report, log or data export.', true);
SELECT pg_catalog.pg_extension_config_dump('reference.document_types', '');
GRANT SELECT ON reference.document_types TO lab_operator, lab_auditor, lab_admin;

-- The global lineage table pages newest first off this index; the primary
-- key's columns make the position of a row unique.
CREATE INDEX lineage_records_created_idx
  ON canonical.lineage_records (created_at, from_id, to_id, relationship);

-- A page position: a positive whole JSON number, or absent.
CREATE FUNCTION enterprise_lab.api_position(fn text, body jsonb, key text) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v jsonb := body -> key;
  n numeric;
BEGIN
  IF v IS NULL OR jsonb_typeof(v) = 'null' THEN
    RETURN NULL;
  END IF;
  IF jsonb_typeof(v) <> 'number' THEN
    RAISE EXCEPTION '%: % must be a number', fn, key
      USING ERRCODE = 'invalid_parameter_value', COLUMN = key,
            DETAIL = format('It is a JSON %s.', jsonb_typeof(v)),
            HINT = 'Send the "next" object of the previous page back as it came.';
  END IF;
  n := v::numeric;
  IF n <> trunc(n) OR n < 1 OR n > 9223372036854775807 THEN
    RAISE EXCEPTION '%: % must be a whole number from 1 to 9223372036854775807', fn, key
      USING ERRCODE = 'invalid_parameter_value', COLUMN = key,
            DETAIL = format('The value given was %s.', left(n::text, 40)),
            HINT = 'Send the "next" object of the previous page back as it came.';
  END IF;
  RETURN n::bigint;
END $$;
COMMENT ON FUNCTION enterprise_lab.api_position(text, jsonb, text) IS
  'api helper: an optional keyset position (a positive whole number; 22023 otherwise).';


-- One event as the api shows it: every column, its request number and the
-- commit-to-processed latency.
-- It takes the row as jsonb: Citus runs the query on the shards, where a
-- row of integration.events has the type of its shard.
CREATE FUNCTION enterprise_lab.api_event_row(e jsonb, request_number text) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT e || jsonb_build_object(
           'event_id', e -> 'id',
           'request_number', request_number,
           'latency_ms', round((extract(epoch FROM ((e ->> 'processed_at')::timestamptz - (e ->> 'created_at')::timestamptz))
                                * 1000)::numeric, 1))
$$;
COMMENT ON FUNCTION enterprise_lab.api_event_row(jsonb, text) IS
  'api helper: an event (to_jsonb of its row) as api.events returns it (its columns, event_id, request_number, latency_ms).';


CREATE FUNCTION api.events(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
  fn constant text := 'events';
  b jsonb := enterprise_lab.api_body(fn, body, ARRAY['submission_id', 'status', 'limit', 'before_seq']);
  v_submission uuid := enterprise_lab.api_uuid(fn, b, 'submission_id', false);
  v_status text := enterprise_lab.api_text(fn, b, 'status', false, 40);
  v_limit integer := enterprise_lab.api_integer(fn, b, 'limit', 100, 1, 1000);
  -- No position: from the newest.  A constant, never "IS NULL OR", so
  -- the condition is always an index condition on seq.
  v_before bigint := coalesce(enterprise_lab.api_position(fn, b, 'before_seq'), 9223372036854775807);
  page jsonb[];
BEGIN
  IF v_status NOT IN ('pending', 'completed', 'failed', 'dead_letter', 'skipped') THEN
    RAISE EXCEPTION '%: status "%" is not an event status', fn, v_status
      USING ERRCODE = 'invalid_parameter_value', COLUMN = 'status',
            HINT = 'Use pending, completed, failed, dead_letter or skipped.';
  END IF;
  -- One row more than asked for says whether there is a next page.
  IF v_submission IS NOT NULL THEN
    SELECT array_agg(x ORDER BY (x ->> 'seq')::bigint DESC) INTO page
      FROM (SELECT enterprise_lab.api_event_row(to_jsonb(e), r.request_number) AS x
              FROM integration.events e
              LEFT JOIN source_system.service_requests r ON r.submission_id = e.submission_id
             WHERE e.submission_id = v_submission AND e.seq < v_before
               AND (v_status IS NULL OR e.event_status = v_status)
             ORDER BY e.seq DESC LIMIT v_limit + 1) p;
  ELSE
    SELECT array_agg(x ORDER BY (x ->> 'seq')::bigint DESC) INTO page
      FROM (SELECT enterprise_lab.api_event_row(to_jsonb(e), r.request_number) AS x
              FROM integration.events e
              LEFT JOIN source_system.service_requests r ON r.submission_id = e.submission_id
             WHERE e.seq < v_before
               AND (v_status IS NULL OR e.event_status = v_status)
             ORDER BY e.seq DESC LIMIT v_limit + 1) p;
  END IF;
  RETURN jsonb_build_object(
    'limit', v_limit,
    'items', coalesce(to_jsonb(page[1:v_limit]), '[]'),
    'next', CASE WHEN cardinality(page) > v_limit
                 THEN jsonb_build_object('before_seq', (page[v_limit] ->> 'seq')::bigint) END);
END $$;
COMMENT ON FUNCTION api.events(jsonb) IS
  'Integration events, newest first, with request number, attempts, last error and latency: {"submission_id"?, "status"?, "limit"? (1..1000, default 100), "before_seq"?}. Returns {items, limit, next}: next is null on the last page, else the keys to add to the body for the next page.';


CREATE FUNCTION api.sync_logs(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
  fn constant text := 'sync_logs';
  b jsonb := enterprise_lab.api_body(fn, body, ARRAY['submission_id', 'limit', 'before_id']);
  v_submission uuid := enterprise_lab.api_uuid(fn, b, 'submission_id', false);
  v_limit integer := enterprise_lab.api_integer(fn, b, 'limit', 100, 1, 1000);
  v_before bigint := coalesce(enterprise_lab.api_position(fn, b, 'before_id'), 9223372036854775807);
  page jsonb[];
BEGIN
  IF v_submission IS NOT NULL THEN
    SELECT array_agg(x ORDER BY (x ->> 'id')::bigint DESC) INTO page
      FROM (SELECT to_jsonb(l) || jsonb_build_object('request_number', r.request_number) AS x
              FROM integration.sync_logs l
              LEFT JOIN source_system.service_requests r ON r.submission_id = l.submission_id
             WHERE l.submission_id = v_submission AND l.id < v_before
             ORDER BY l.id DESC LIMIT v_limit + 1) p;
  ELSE
    SELECT array_agg(x ORDER BY (x ->> 'id')::bigint DESC) INTO page
      FROM (SELECT to_jsonb(l) || jsonb_build_object('request_number', r.request_number) AS x
              FROM integration.sync_logs l
              LEFT JOIN source_system.service_requests r ON r.submission_id = l.submission_id
             WHERE l.id < v_before
             ORDER BY l.id DESC LIMIT v_limit + 1) p;
  END IF;
  RETURN jsonb_build_object(
    'limit', v_limit,
    'items', coalesce(to_jsonb(page[1:v_limit]), '[]'),
    'next', CASE WHEN cardinality(page) > v_limit
                 THEN jsonb_build_object('before_id', (page[v_limit] ->> 'id')::bigint) END);
END $$;
COMMENT ON FUNCTION api.sync_logs(jsonb) IS
  'Processing outcomes (sync logs), newest first, with request number: {"submission_id"?, "limit"? (1..1000, default 100), "before_id"?}. Returns {items, limit, next}: next is null on the last page, else the keys to add to the body for the next page.';


-- One lineage edge as the api shows it.
CREATE FUNCTION enterprise_lab.api_lineage_row(l canonical.lineage_records, request_number text) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT jsonb_build_object('submission_id', l.submission_id, 'from_type', l.from_type, 'from_id', l.from_id,
                            'to_type', l.to_type, 'to_id', l.to_id, 'relationship', l.relationship,
                            'event_id', l.event_id, 'created_at', l.created_at)
         || CASE WHEN request_number IS NOT NULL THEN jsonb_build_object('request_number', request_number) ELSE '{}' END
$$;
COMMENT ON FUNCTION enterprise_lab.api_lineage_row(canonical.lineage_records, text) IS
  'api helper: a lineage edge as api.lineage returns it.';


CREATE FUNCTION api.lineage(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
  fn constant text := 'lineage';
  b jsonb := enterprise_lab.api_body(fn, body, ARRAY['submission_id', 'limit', 'before']);
  v_submission uuid := enterprise_lab.api_uuid(fn, b, 'submission_id', false);
  v_limit integer := enterprise_lab.api_integer(fn, b, 'limit', 100, 1, 1000);
  before jsonb := b -> 'before';
  c_at timestamptz;
  c_from uuid;
  c_to uuid;
  c_rel text;
  page jsonb[];
BEGIN
  IF v_submission IS NOT NULL THEN
    IF b ? 'before' OR b ? 'limit' THEN
      RAISE EXCEPTION '%: one submission''s lineage is not paged', fn
        USING ERRCODE = 'invalid_parameter_value', COLUMN = CASE WHEN b ? 'before' THEN 'before' ELSE 'limit' END,
              HINT = 'Send {"submission_id"} alone, or leave it out to page through every submission''s lineage.';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM intake.submissions WHERE submission_id = v_submission) THEN
      PERFORM enterprise_lab.api_not_found('submission', v_submission);
    END IF;
    RETURN jsonb_build_object('items', coalesce((
      SELECT jsonb_agg(enterprise_lab.api_lineage_row(l, NULL)
                       ORDER BY l.created_at, enterprise_lab.api_lineage_rank(l.from_type),
                                l.from_type, l.to_type, l.relationship)
        FROM canonical.lineage_records l WHERE l.submission_id = v_submission), '[]'),
      'next', NULL);
  END IF;

  IF before IS NOT NULL AND jsonb_typeof(before) <> 'null' THEN
    IF jsonb_typeof(before) <> 'object' THEN
      RAISE EXCEPTION '%: before must be an object', fn
        USING ERRCODE = 'invalid_parameter_value', COLUMN = 'before',
              DETAIL = format('It is a JSON %s.', jsonb_typeof(before)),
              HINT = 'Send the "next" object of the previous page back as it came.';
    END IF;
    PERFORM enterprise_lab.api_body(fn || ' before', before, ARRAY['created_at', 'from_id', 'to_id', 'relationship']);
    BEGIN
      c_at := enterprise_lab.api_text(fn, before, 'created_at', true, 64)::timestamptz;
    EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow THEN
      RAISE EXCEPTION '%: before.created_at is not a timestamp', fn
        USING ERRCODE = 'invalid_datetime_format', COLUMN = 'created_at', DETAIL = SQLERRM,
              HINT = 'Send the "next" object of the previous page back as it came.';
    END;
    c_from := enterprise_lab.api_uuid(fn, before, 'from_id', true);
    c_to := enterprise_lab.api_uuid(fn, before, 'to_id', true);
    c_rel := enterprise_lab.api_text(fn, before, 'relationship', true, 200);
    SELECT array_agg(x ORDER BY n) INTO page
      FROM (SELECT enterprise_lab.api_lineage_row(l, r.request_number) AS x,
                   row_number() OVER (ORDER BY l.created_at DESC, l.from_id DESC, l.to_id DESC, l.relationship DESC) AS n
              FROM (SELECT * FROM canonical.lineage_records l
                     WHERE (l.created_at, l.from_id, l.to_id, l.relationship) < (c_at, c_from, c_to, c_rel)
                     ORDER BY l.created_at DESC, l.from_id DESC, l.to_id DESC, l.relationship DESC
                     LIMIT v_limit + 1) l
              LEFT JOIN source_system.service_requests r ON r.submission_id = l.submission_id) p;
  ELSE
    SELECT array_agg(x ORDER BY n) INTO page
      FROM (SELECT enterprise_lab.api_lineage_row(l, r.request_number) AS x,
                   row_number() OVER (ORDER BY l.created_at DESC, l.from_id DESC, l.to_id DESC, l.relationship DESC) AS n
              FROM (SELECT * FROM canonical.lineage_records l
                     ORDER BY l.created_at DESC, l.from_id DESC, l.to_id DESC, l.relationship DESC
                     LIMIT v_limit + 1) l
              LEFT JOIN source_system.service_requests r ON r.submission_id = l.submission_id) p;
  END IF;
  RETURN jsonb_build_object(
    'limit', v_limit,
    'items', coalesce(to_jsonb(page[1:v_limit]), '[]'),
    'next', CASE WHEN cardinality(page) > v_limit
                 THEN jsonb_build_object('before', page[v_limit] - 'submission_id' - 'request_number' - 'from_type'
                                                   - 'to_type' - 'event_id') END);
END $$;
COMMENT ON FUNCTION api.lineage(jsonb) IS
  'Lineage edges (service_request -> operation_case -> business_object, documents): {"submission_id"} -> every edge of one submission in lifecycle order (404 when unknown); without it every submission''s, newest first, with request number: {"limit"? (1..1000, default 100), "before"?}. Returns {items, limit, next}: next is null on the last page, else the keys to add to the body for the next page.';


REVOKE ALL ON FUNCTION api.events(jsonb), api.sync_logs(jsonb), api.lineage(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.events(jsonb), api.sync_logs(jsonb), api.lineage(jsonb)
  TO lab_anon, lab_operator, lab_auditor, lab_admin;
