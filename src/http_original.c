/*
 * http_original.c
 *		The original Enterprise Integration Lab's HTTP routes, beside
 *		POST /rpc/<name>.  Each route names an api.original_* function
 *		(src/sql/32_api_original.sql) and how its jsonb argument is built:
 *		the request body, the form fields of a multipart post
 *		(http_multipart.c), the path's {parameter} and the query string.
 *		The call itself runs exactly as /rpc does (el_answer_api).
 */
#include "postgres.h"

#include <ctype.h>

#include "lib/stringinfo.h"
#include "utils/json.h"

#include "gateway.h"

/* Query-string values that are plain digits, at most this many, are numbers. */
#define EL_QUERY_NUMBER_DIGITS 9

typedef struct ElRoute
{
	const char *method;			/* GET routes answer HEAD too */
	const char *pattern;		/* "{}" is one path segment */
	const char *param;			/* key the {} segment is passed as */
	const char *function;		/* api.<function>(jsonb) */
	const char *fixed;			/* JSON keys the route always passes, or NULL */
	const char *query;			/* query-string keys it takes, comma-separated (OpenAPI) */
	bool		needs_token;	/* refused without a token */
	unsigned int ok_status;
} ElRoute;

static const ElRoute el_routes[] = {
	{"POST", "/intake/submissions", NULL, "original_submit_request", NULL, NULL, false, MHD_HTTP_CREATED},
	{"PATCH", "/operational/cases/{}/status", "operation_case_id", "original_set_case_status", NULL, NULL, true, MHD_HTTP_OK},
	{"GET", "/dashboard/submissions", NULL, "original_submissions", NULL, "limit,offset", false, MHD_HTTP_OK},
	{"GET", "/dashboard/submissions/{}", "submission_id", "original_submission", NULL, NULL, false, MHD_HTTP_OK},
	{"GET", "/dashboard/events", NULL, "original_events", NULL, "limit,offset", false, MHD_HTTP_OK},
	{"GET", "/dashboard/lineage", NULL, "original_lineage", NULL, "limit,offset", false, MHD_HTTP_OK},
	{"GET", "/dashboard/sync-logs", NULL, "original_sync_logs", NULL, "limit,offset", false, MHD_HTTP_OK},
	{"GET", "/reference/customers", NULL, "original_reference", "\"list\":\"customers\"", NULL, false, MHD_HTTP_OK},
	{"GET", "/reference/agreements", NULL, "original_reference", "\"list\":\"agreements\"", NULL, false, MHD_HTTP_OK},
	{"GET", "/reference/request-types", NULL, "original_reference", "\"list\":\"request_types\"", NULL, false, MHD_HTTP_OK},
	{"GET", "/reference/priorities", NULL, "original_reference", "\"list\":\"priorities\"", NULL, false, MHD_HTTP_OK},
	{"GET", "/reference/teams", NULL, "original_reference", "\"list\":\"teams\"", NULL, false, MHD_HTTP_OK},
};

/* The one route that also takes a form post (http_multipart.c). */
static bool
el_takes_form(const ElRoute *route)
{
	return strcmp(route->function, "original_submit_request") == 0;
}

/*
 * The route table for api.openapi() (http_routes.c): each pattern's "{}"
 * named after its parameter, and the request body types.
 */
/* The route's path as documented: "{}" named after its parameter. */
static const char *
el_route_path(const ElRoute *r)
{
	const char *brace = strstr(r->pattern, "{}");

	return brace == NULL ? r->pattern
		: psprintf("%.*s{%s}%s", (int) (brace - r->pattern), r->pattern, r->param, brace + 2);
}

int
el_route_infos(ElRouteInfo **routes)
{
	ElRouteInfo *infos = palloc0(sizeof(ElRouteInfo) * lengthof(el_routes));

	for (size_t i = 0; i < lengthof(el_routes); i++)
	{
		const ElRoute *r = &el_routes[i];

		infos[i].method = r->method;
		infos[i].path = el_route_path(r);
		infos[i].api_function = r->function;
		infos[i].query_parameters = r->query;
		infos[i].content_types = el_takes_form(r) ? "application/json,multipart/form-data" : NULL;
		infos[i].needs_token = r->needs_token;
		infos[i].ok_status = r->ok_status;
	}
	*routes = infos;
	return (int) lengthof(el_routes);
}

static const char *const el_original_prefixes[] = {
	"/intake/", "/operational/", "/dashboard/", "/reference/",
};

bool
el_is_original_path(const char *url)
{
	for (size_t i = 0; i < lengthof(el_original_prefixes); i++)
		if (strncmp(url, el_original_prefixes[i], strlen(el_original_prefixes[i])) == 0)
			return true;
	return false;
}

/*
 * Does url match pattern?  A "{}" matches one non-empty segment, which is
 * returned in *segment (palloc'd).
 */
static bool
el_route_matches(const char *pattern, const char *url, char **segment)
{
	const char *p = pattern;
	const char *u = url;

	*segment = NULL;
	while (*p)
	{
		if (p[0] == '{' && p[1] == '}')
		{
			size_t		len = strcspn(u, "/");

			if (len == 0)
				return false;
			*segment = pnstrdup(u, len);
			u += len;
			p += 2;
			continue;
		}
		if (*p != *u)
			return false;
		p++;
		u++;
	}
	return *u == '\0';
}

static bool
el_method_is(const ElRoute *route, const char *method)
{
	if (strcmp(route->method, method) == 0)
		return true;
	return strcmp(route->method, MHD_HTTP_METHOD_GET) == 0 &&
		strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
}

static bool
el_is_query_number(const char *value)
{
	size_t		len = strlen(value);

	if (len == 0 || len > EL_QUERY_NUMBER_DIGITS)
		return false;
	for (const char *c = value; *c; c++)
		if (!isdigit((unsigned char) *c))
			return false;
	return true;
}

/*
 * One query-string argument as a key of the overlay: digits as a number,
 * anything else as a string, for the api function to accept or refuse
 * (an unknown key or a non-number limit is its 22023).
 */
static enum MHD_Result
el_add_query_argument(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	StringInfo	buf = (StringInfo) cls;

	if (buf->len > 1)
		appendStringInfoChar(buf, ',');
	escape_json(buf, key);
	appendStringInfoChar(buf, ':');
	if (value == NULL)
		appendStringInfoString(buf, "null");
	else if (el_is_query_number(value))
		appendStringInfoString(buf, value);
	else
		escape_json(buf, value);
	return MHD_YES;
}

/*
 * The query string's arguments, the path's segment and the route's fixed
 * keys, in that order of precedence from lowest: a query argument cannot
 * replace the path's id.
 */
static char *
el_route_overlay(struct MHD_Connection *conn, const ElRoute *route, const char *segment)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	(void) MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, el_add_query_argument, &buf);
	if (route->param && segment)
	{
		if (buf.len > 1)
			appendStringInfoChar(&buf, ',');
		escape_json(&buf, route->param);
		appendStringInfoChar(&buf, ':');
		escape_json(&buf, segment);
	}
	if (route->fixed)
	{
		if (buf.len > 1)
			appendStringInfoChar(&buf, ',');
		appendStringInfoString(&buf, route->fixed);
	}
	appendStringInfoChar(&buf, '}');
	return buf.data;
}

static bool
el_content_type_is_json(struct MHD_Connection *conn)
{
	const char *type = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
	size_t		len;

	if (type == NULL)
		return true;
	len = strcspn(type, ";");
	while (len > 0 && isspace((unsigned char) type[len - 1]))
		len--;
	return len == 16 && pg_strncasecmp(type, "application/json", 16) == 0;
}

enum MHD_Result
el_handle_original(struct MHD_Connection *conn, const char *url, const char *method,
				   ElRequest *req)
{
	const ElRoute *route = NULL;
	char	   *segment = NULL;
	StringInfoData allow;
	StringInfoData form;
	ElAuth		auth;
	ElApiCall	call = {0};

	initStringInfo(&allow);
	for (size_t i = 0; i < lengthof(el_routes); i++)
	{
		char	   *s;

		if (!el_route_matches(el_routes[i].pattern, url, &s))
			continue;
		if (el_method_is(&el_routes[i], method))
		{
			route = &el_routes[i];
			segment = s;
			break;
		}
		appendStringInfo(&allow, "%s%s", allow.len > 0 ? ", " : "", el_routes[i].method);
		if (strcmp(el_routes[i].method, MHD_HTTP_METHOD_GET) == 0)
			appendStringInfoString(&allow, ", HEAD");
	}
	if (route == NULL && allow.len > 0)
		return el_respond_not_allowed(conn, allow.data, method, url);
	if (route == NULL)
		return el_respond_error(conn, MHD_HTTP_NOT_FOUND, "PGRST125",
								"Invalid path specified in request URL",
								psprintf("No route is %s.", url),
								"docs/api.md lists the routes; functions are called with POST /rpc/<name>.");

	el_authenticate(conn, &auth);
	if (auth.status != MHD_HTTP_OK)
		return auth.status == MHD_HTTP_UNAUTHORIZED
			? el_respond_unauthorized(conn, auth.code, auth.message)
			: el_respond_error(conn, auth.status, auth.code, auth.message, NULL, NULL);
	if (route->needs_token && auth.anonymous)
		return el_respond_error(conn, MHD_HTTP_UNAUTHORIZED, "42501",
								psprintf("%s %s needs an operator token", method, el_route_path(route)),
								"Requests without a token run as the anonymous role, which may not change cases.",
								"Send \"Authorization: Bearer <token>\" with a token of role lab_operator or lab_admin; ./scripts/demo prints one, and ./scripts/demo token prints another.");

	call.name = route->function;
	call.body = &req->body;
	call.auth = &auth;
	call.method = route->method;
	call.path = url;
	call.ok_status = route->ok_status;
	call.overlay = el_route_overlay(conn, route, segment);

	if (strcmp(route->method, MHD_HTTP_METHOD_GET) == 0)
	{
		/* A GET's arguments are its path and query string. */
		if (req->body.len > 0)
			return el_respond_error(conn, MHD_HTTP_BAD_REQUEST, "PGRST102",
									"A GET request has no body",
									NULL, "Pass limit and offset in the query string.");
	}
	else if (el_is_form_post(conn) && el_takes_form(route))
	{
		ElRefusal	refusal;

		initStringInfo(&form);
		if (!el_form_to_json(conn, &req->body, &form, &refusal))
			return el_respond_error(conn, refusal.status, refusal.code, refusal.message, NULL,
									"Send the fields and at most one file named \"file\" as multipart/form-data.");
		call.body = &form;
	}
	else if (!el_content_type_is_json(conn))
		return el_respond_error(conn, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "PGRST107",
								"The request body must be application/json",
								NULL,
								el_takes_form(route)
								? "Send JSON, or multipart/form-data with the fields and one file."
								: "Send a JSON object.");
	return el_answer_api(conn, &call);
}
