-- routes: HTTP routes other than POST /rpc/<name>, each mapped onto one api
-- function.  The one list the gateway's route handlers and the OpenAPI
-- description (api.openapi(), src/sql/47_openapi.sql) both read, so a route
-- is declared once; the files that add routes insert their rows here.

CREATE TABLE enterprise_lab.http_routes (
  method        text NOT NULL
                CONSTRAINT http_routes_method_valid CHECK (method IN ('GET', 'POST', 'PUT', 'PATCH', 'DELETE')),
  path          text NOT NULL
                CONSTRAINT http_routes_path_valid CHECK (path ~ '^(/([A-Za-z0-9_-][A-Za-z0-9_.-]*|\{[a-z_][a-z0-9_]*\}))+$'),
  api_function  text NOT NULL
                CONSTRAINT http_routes_function_valid CHECK (api_function ~ '^[a-z_][a-z0-9_]*$'),
  summary       text,
  query_parameters text[] NOT NULL DEFAULT '{}',
  content_types text[] NOT NULL DEFAULT '{application/json}',
  CONSTRAINT http_routes_pkey PRIMARY KEY (method, path)
);
COMMENT ON TABLE enterprise_lab.http_routes IS
  'HTTP routes besides POST /rpc/<name>: method, path ({name} marks a path parameter), the api function (schema api, one jsonb argument) it calls, a summary (NULL: the function''s COMMENT), query parameters and request content types. Read by the gateway and by api.openapi().';
