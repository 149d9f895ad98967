-- openapi: an OpenAPI 3.1 description of the HTTP interface, generated from
-- the catalog at each call, so it cannot drift from what is served: every
-- function of schema api taking one jsonb argument is POST /rpc/<name>,
-- described by its COMMENT, and every route of the gateway's route table
-- (src/http_routes.c, shown by enterprise_lab.http_routes()) is its own
-- path.  The gateway serves it as GET /openapi.json; GET /docs shows it in
-- Swagger UI.

CREATE FUNCTION enterprise_lab.http_routes(
  OUT method text, OUT path text, OUT api_function text, OUT summary text,
  OUT query_parameters text, OUT content_types text, OUT needs_token boolean, OUT ok_status integer)
RETURNS SETOF record
  AS 'MODULE_PATHNAME', 'el_http_routes' LANGUAGE C STABLE;
COMMENT ON FUNCTION enterprise_lab.http_routes() IS
  'The built-in gateway''s routes besides POST /rpc/<name>, from its route table: method, path ({name} marks a path parameter), the api function it calls, a summary (NULL: the function''s COMMENT), query parameters and request content types (comma-separated; NULL content types: application/json), whether it needs a token, and the status of a success.';

-- The summary of an operation: the first sentence of a description.
CREATE FUNCTION enterprise_lab.openapi_summary(description text) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT left(coalesce(substring(description FROM '^(.*?)[.:](\s|$)'), description), 120)
$$;
COMMENT ON FUNCTION enterprise_lab.openapi_summary(text) IS
  'api.openapi() helper: the first sentence of a COMMENT (up to its first period or colon, without it), at most 120 characters.';

CREATE FUNCTION enterprise_lab.openapi_document(routes jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  anon name := coalesce(nullif(current_setting('enterprise_lab.http_anon_role', true), ''), 'lab_anon');
  -- PostgREST's statuses for SQLSTATEs (src/http_response.c), each with its error body.
  errors constant jsonb := jsonb_build_object(
    '400', jsonb_build_object('$ref', '#/components/responses/BadRequest'),
    '401', jsonb_build_object('$ref', '#/components/responses/Unauthorized'),
    '403', jsonb_build_object('$ref', '#/components/responses/Forbidden'),
    '404', jsonb_build_object('$ref', '#/components/responses/NotFound'),
    '409', jsonb_build_object('$ref', '#/components/responses/Conflict'),
    '413', jsonb_build_object('$ref', '#/components/responses/ContentTooLarge'),
    '500', jsonb_build_object('$ref', '#/components/responses/ServerError'),
    '503', jsonb_build_object('$ref', '#/components/responses/Unavailable'));
  ok constant jsonb := jsonb_build_object('200', jsonb_build_object(
    'description', 'The function''s result.',
    'content', jsonb_build_object('application/json', jsonb_build_object('schema', '{}'::jsonb))));
  bad record;
  paths jsonb;
BEGIN
  IF routes IS NULL OR jsonb_typeof(routes) <> 'array' THEN
    RAISE EXCEPTION 'openapi_document: routes must be a JSON array'
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Pass ''[]'' for none, or the rows of enterprise_lab.http_routes() as JSON.';
  END IF;
  SELECT r.method, r.path, r.api_function INTO bad
    FROM jsonb_to_recordset(routes) AS r(method text, path text, api_function text, ok_status integer)
   WHERE r.method IS NULL OR r.method <> ALL (ARRAY['GET', 'POST', 'PUT', 'PATCH', 'DELETE'])
      OR r.path IS NULL OR r.path !~ '^(/([A-Za-z0-9_-][A-Za-z0-9_.-]*|\{[a-z_][a-z0-9_]*\}))+$'
      OR r.api_function IS NULL OR r.api_function !~ '^[a-z_][a-z0-9_]*$'
      OR r.ok_status NOT BETWEEN 200 AND 299
   LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'openapi_document: route % % (api.%) is not valid', bad.method, bad.path, bad.api_function
      USING ERRCODE = 'invalid_parameter_value',
            DETAIL = 'A route has a method GET, POST, PUT, PATCH or DELETE, a path of plain segments or {name} parameters (no empty, dot-first or percent-encoded segment) a function name of lower-case letters, digits and underscores, and a success status from 200 to 299 (or none: 200).';
  END IF;

  WITH fn AS (
    SELECT p.oid, p.proname::text AS name,
           coalesce(obj_description(p.oid, 'pg_proc'), format('api.%s(jsonb)', p.proname)) AS description,
           -- Callable without a token when the anonymous role may execute it.
           (SELECT count(*) > 0 FROM pg_roles r WHERE r.rolname = anon
               AND has_function_privilege(r.oid, p.oid, 'EXECUTE')) AS anonymous
      FROM pg_proc p
     WHERE p.pronamespace = 'api'::regnamespace AND p.prokind = 'f'
       AND p.pronargs = 1 AND p.proargtypes[0] = 'jsonb'::regtype
  ), operation AS (
    -- POST /rpc/<name>
    SELECT '/rpc/' || fn.name AS path, 'post' AS method, jsonb_build_object(
             'operationId', fn.name,
             'tags', jsonb_build_array('rpc'),
             'summary', enterprise_lab.openapi_summary(fn.description),
             'description', fn.description,
             'security', CASE WHEN fn.anonymous THEN '[{}, {"bearerAuth": []}]'::jsonb
                              ELSE '[{"bearerAuth": []}]'::jsonb END,
             'requestBody', jsonb_build_object(
               'required', false,
               'content', jsonb_build_object('application/json', jsonb_build_object(
                 'schema', jsonb_build_object('type', 'object')))),
             'responses', ok || errors) AS op
      FROM fn
    UNION ALL
    -- The gateway's other routes
    SELECT r.path, lower(r.method), jsonb_strip_nulls(jsonb_build_object(
             'operationId', lower(r.method) || regexp_replace(r.path, '[^A-Za-z0-9]+', '_', 'g'),
             'tags', jsonb_build_array(split_part(r.path, '/', 2)),
             'summary', coalesce(r.summary, enterprise_lab.openapi_summary(fn.description)),
             'description', coalesce(fn.description, format('Calls api.%s(jsonb).', r.api_function)),
             'security', CASE WHEN fn.anonymous AND NOT coalesce(r.needs_token, false)
                              THEN '[{}, {"bearerAuth": []}]'::jsonb
                              ELSE '[{"bearerAuth": []}]'::jsonb END,
             'parameters', nullif(
               coalesce((SELECT jsonb_agg(jsonb_build_object('name', m[1], 'in', 'path', 'required', true,
                                                              'schema', jsonb_build_object('type', 'string')))
                           FROM regexp_matches(r.path, '\{([a-z_][a-z0-9_]*)\}', 'g') AS m), '[]')
               || coalesce((SELECT jsonb_agg(jsonb_build_object('name', q, 'in', 'query', 'required', false,
                                                                 'schema', jsonb_build_object('type', 'string')))
                              FROM unnest(string_to_array(r.query_parameters, ',')) AS q), '[]'),
               '[]'),
             'requestBody', CASE WHEN r.method IN ('POST', 'PUT', 'PATCH') THEN jsonb_build_object(
               'required', true,
               'content', (SELECT jsonb_object_agg(ct, jsonb_build_object('schema', jsonb_build_object('type', 'object')))
                             FROM unnest(string_to_array(coalesce(r.content_types, 'application/json'), ',')) AS ct)) END,
             'responses', jsonb_build_object(coalesce(r.ok_status, 200)::text, ok -> '200') || errors))
      FROM jsonb_to_recordset(routes) AS r(method text, path text, api_function text, summary text,
                                           query_parameters text, content_types text,
                                           needs_token boolean, ok_status integer)
      LEFT JOIN fn ON fn.name = r.api_function
  )
  SELECT jsonb_object_agg(o.path, o.ops ORDER BY o.path) INTO paths
    FROM (SELECT path, jsonb_object_agg(method, op) AS ops FROM operation GROUP BY path) o;

  RETURN jsonb_build_object(
    'openapi', '3.1.0',
    'info', jsonb_build_object(
      'title', 'enterprise_lab',
      'version', (SELECT extversion FROM pg_extension WHERE extname = 'enterprise_lab'),
      'description', 'The HTTP interface of the enterprise_lab extension: every function of schema api as POST /rpc/<name> (PostgREST''s contract, one transaction per call), and the built-in gateway''s other routes. Generated from the database''s catalog by api.openapi().'),
    'servers', '[{"url": "/"}]'::jsonb,
    'tags', '[{"name": "rpc", "description": "Functions of schema api, called with POST /rpc/<name> and a JSON object."}]'::jsonb,
    'paths', coalesce(paths, '{}'),
    'components', jsonb_build_object(
      'securitySchemes', '{"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT", "description": "HS256 token whose role claim names lab_operator, lab_auditor or lab_admin; without a token a request runs as the anonymous role."}}'::jsonb,
      'schemas', '{"Error": {"type": "object", "description": "PostgREST''s error body.", "required": ["code", "message"], "properties": {"code": {"type": "string", "description": "SQLSTATE, or PGRSTnnn for the gateway''s own refusals."}, "message": {"type": "string"}, "details": {"type": ["string", "null"]}, "hint": {"type": ["string", "null"]}}}}'::jsonb,
      'responses', (SELECT jsonb_object_agg(e.name, jsonb_build_object(
                             'description', e.description,
                             'content', '{"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}'::jsonb))
                      FROM (VALUES
                        ('BadRequest', 'Invalid input (SQLSTATE 22xxx, 23502, 23514, P0001, ...).'),
                        ('Unauthorized', 'No token, or a refused one, for a function the anonymous role may not call (42501).'),
                        ('Forbidden', 'The token''s role may not call the function or change the row (42501).'),
                        ('NotFound', 'No such function or row.'),
                        ('Conflict', 'Duplicate or dangling reference (23505, 23503).'),
                        ('ContentTooLarge', 'The body exceeds enterprise_lab.http_max_body.'),
                        ('ServerError', 'An error on the server''s side; the server log has the details.'),
                        ('Unavailable', 'The database or the extension is not available.')) AS e(name, description))));
END $$;
COMMENT ON FUNCTION enterprise_lab.openapi_document(jsonb) IS
  'api.openapi() helper: the OpenAPI 3.1 document of the api functions and the given routes (a JSON array of enterprise_lab.http_routes() rows; missing keys are NULL); rejects a malformed route (22023).';
REVOKE ALL ON FUNCTION enterprise_lab.openapi_document(jsonb) FROM PUBLIC;

CREATE FUNCTION api.openapi(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
BEGIN
  PERFORM enterprise_lab.api_body('openapi', body, '{}');
  RETURN enterprise_lab.openapi_document(
    coalesce((SELECT jsonb_agg(to_jsonb(r)) FROM enterprise_lab.http_routes() r), '[]'));
END $$;
COMMENT ON FUNCTION api.openapi(jsonb) IS
  'OpenAPI 3.1 description of the HTTP interface, generated from the catalog: every api function as POST /rpc/<name> (summary and description from its COMMENT) and the built-in gateway''s other routes (enterprise_lab.http_routes()). GET /openapi.json serves it. Body: {}.';
REVOKE ALL ON FUNCTION api.openapi(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.openapi(jsonb) TO lab_anon, lab_operator, lab_auditor, lab_admin;
