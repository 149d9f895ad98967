-- openapi: an OpenAPI 3.1 description of the HTTP interface, generated from
-- the catalog at each call, so it cannot drift from what is served: every
-- function of schema api taking one jsonb argument is POST /rpc/<name>,
-- described by its COMMENT, and every row of enterprise_lab.http_routes is
-- its own path.  The gateway serves it as GET /openapi.json; GET /docs shows
-- it in Swagger UI.

-- The summary of an operation: the first sentence of a description.
CREATE FUNCTION enterprise_lab.openapi_summary(description text) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT left(coalesce(substring(description FROM '^(.*?)[.:](\s|$)'), description), 120)
$$;
COMMENT ON FUNCTION enterprise_lab.openapi_summary(text) IS
  'api.openapi() helper: the first sentence of a COMMENT (up to its first period or colon, without it), at most 120 characters.';

CREATE FUNCTION api.openapi(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
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
  paths jsonb;
BEGIN
  PERFORM enterprise_lab.api_body('openapi', body, '{}');

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
    -- The routes of enterprise_lab.http_routes
    SELECT r.path, lower(r.method), jsonb_strip_nulls(jsonb_build_object(
             'operationId', lower(r.method) || regexp_replace(r.path, '[^A-Za-z0-9]+', '_', 'g'),
             'tags', jsonb_build_array(split_part(r.path, '/', 2)),
             'summary', coalesce(r.summary, enterprise_lab.openapi_summary(fn.description)),
             'description', coalesce(fn.description, format('Calls api.%s(jsonb).', r.api_function)),
             'security', CASE WHEN fn.anonymous THEN '[{}, {"bearerAuth": []}]'::jsonb
                              ELSE '[{"bearerAuth": []}]'::jsonb END,
             'parameters', nullif(
               coalesce((SELECT jsonb_agg(jsonb_build_object('name', m[1], 'in', 'path', 'required', true,
                                                              'schema', jsonb_build_object('type', 'string')))
                           FROM regexp_matches(r.path, '\{([a-z_][a-z0-9_]*)\}', 'g') AS m), '[]')
               || coalesce((SELECT jsonb_agg(jsonb_build_object('name', q, 'in', 'query', 'required', false,
                                                                 'schema', jsonb_build_object('type', 'string')))
                              FROM unnest(r.query_parameters) AS q), '[]'),
               '[]'),
             'requestBody', CASE WHEN r.method IN ('POST', 'PUT', 'PATCH') THEN jsonb_build_object(
               'required', true,
               'content', (SELECT jsonb_object_agg(ct, jsonb_build_object('schema', jsonb_build_object('type', 'object')))
                             FROM unnest(r.content_types) AS ct)) END,
             'responses', ok || errors))
      FROM enterprise_lab.http_routes r
      LEFT JOIN fn ON fn.name = r.api_function
  )
  SELECT jsonb_object_agg(o.path, o.ops ORDER BY o.path) INTO paths
    FROM (SELECT path, jsonb_object_agg(method, op) AS ops FROM operation GROUP BY path) o;

  RETURN jsonb_build_object(
    'openapi', '3.1.0',
    'info', jsonb_build_object(
      'title', 'enterprise_lab',
      'version', (SELECT extversion FROM pg_extension WHERE extname = 'enterprise_lab'),
      'description', 'The HTTP interface of the enterprise_lab extension: every function of schema api as POST /rpc/<name> (PostgREST''s contract, one transaction per call), and the routes of enterprise_lab.http_routes. Generated from the database''s catalog by api.openapi().'),
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
COMMENT ON FUNCTION api.openapi(jsonb) IS
  'OpenAPI 3.1 description of the HTTP interface, generated from the catalog: every api function as POST /rpc/<name> (summary and description from its COMMENT) and the routes of enterprise_lab.http_routes. GET /openapi.json serves it. Body: {}.';
REVOKE ALL ON FUNCTION api.openapi(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.openapi(jsonb) TO lab_anon, lab_operator, lab_auditor, lab_admin;
