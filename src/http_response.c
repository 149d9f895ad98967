/*
 * http_response.c
 *		Responses of the gateway: headers every answer carries, PostgREST's
 *		error body ({"code","message","details","hint"}) and PostgREST's
 *		mapping of SQLSTATEs to HTTP statuses.
 */
#include "postgres.h"

#include <stdlib.h>

#include "lib/stringinfo.h"
#include "utils/elog.h"
#include "utils/json.h"

#include "enterprise_lab.h"
#include "gateway.h"

/* The Origin the current request may be answered to (CORS), or NULL. */
static const char *response_origin = NULL;

void
el_set_response_origin(const char *origin)
{
	response_origin = origin;
}

static struct MHD_Response *
el_make_response_allow(unsigned int status, const char *content_type, const char *body,
					   size_t len, const char *allow)
{
	struct MHD_Response *response;

	response = MHD_create_response_from_buffer(len, (void *) body, MHD_RESPMEM_MUST_COPY);
	if (response == NULL)
		return NULL;
	MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
	MHD_add_response_header(response, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (status == MHD_HTTP_UNAUTHORIZED)
		MHD_add_response_header(response, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, allow);
	el_add_cors_headers(response);
	return response;
}

static struct MHD_Response *
el_make_response(unsigned int status, const char *content_type, const char *body, size_t len)
{
	return el_make_response_allow(status, content_type, body, len, "GET, HEAD, POST, OPTIONS");
}

/*
 * Every response of the gateway goes out here, so that it is counted by
 * status for GET /metrics.  Takes the response over.
 */
enum MHD_Result
el_queue_response(struct MHD_Connection *conn, unsigned int status, struct MHD_Response *response)
{
	enum MHD_Result ret;

	if (response == NULL)
		return MHD_NO;
	ret = MHD_queue_response(conn, status, response);
	MHD_destroy_response(response);
	if (ret == MHD_YES && el_shared != NULL &&
		status >= EL_HTTP_STATUS_MIN && status < EL_HTTP_STATUS_MIN + EL_HTTP_STATUSES)
		pg_atomic_fetch_add_u64(&el_shared->http_responses[status - EL_HTTP_STATUS_MIN], 1);
	return ret;
}

/* CORS headers for an origin the configuration allows; Vary always. */
void
el_add_cors_headers(struct MHD_Response *response)
{
	MHD_add_response_header(response, MHD_HTTP_HEADER_VARY, "Origin");
	if (response_origin == NULL)
		return;
	MHD_add_response_header(response, MHD_HTTP_HEADER_ACCESS_CONTROL_ALLOW_ORIGIN, response_origin);
}

enum MHD_Result
el_respond(struct MHD_Connection *conn, unsigned int status,
		   const char *content_type, const char *body, size_t len)
{
	return el_queue_response(conn, status, el_make_response(status, content_type, body, len));
}

char *
el_error_json(const char *code, const char *message, const char *details, const char *hint)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	el_json_field(&buf, "code", code, false);
	el_json_field(&buf, "message", message, false);
	el_json_field(&buf, "details", details, false);
	el_json_field(&buf, "hint", hint, true);
	appendStringInfoChar(&buf, '}');
	return buf.data;
}

/*
 * A refusal after which the connection is closed: the request's framing is
 * in doubt, or its body is left unread.
 */
enum MHD_Result
el_respond_close(struct MHD_Connection *conn, unsigned int status,
				 const char *code, const char *message)
{
	char	   *body = el_error_json(code, message, NULL, NULL);
	struct MHD_Response *response;

	response = el_make_response(status, "application/json; charset=utf-8", body, strlen(body));
	if (response)
		MHD_add_response_header(response, MHD_HTTP_HEADER_CONNECTION, "close");
	return el_queue_response(conn, status, response);
}

/*
 * 401 for a refused token, as PostgREST: its error body and RFC 6750's
 * WWW-Authenticate with error="invalid_token".
 */
enum MHD_Result
el_respond_unauthorized(struct MHD_Connection *conn, const char *code, const char *message)
{
	char	   *body = el_error_json(code, message, NULL, NULL);
	struct MHD_Response *response;
	StringInfoData challenge;

	response = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_COPY);
	if (response == NULL)
		return MHD_NO;
	initStringInfo(&challenge);
	appendStringInfoString(&challenge, "Bearer error=\"invalid_token\", error_description=");
	escape_json(&challenge, message);	/* a quoted-string: the messages hold no backslash */
	MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json; charset=utf-8");
	MHD_add_response_header(response, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	MHD_add_response_header(response, MHD_HTTP_HEADER_WWW_AUTHENTICATE, challenge.data);
	el_add_cors_headers(response);
	return el_queue_response(conn, MHD_HTTP_UNAUTHORIZED, response);
}

void
el_json_field(StringInfo buf, const char *key, const char *value, bool last)
{
	escape_json(buf, key);
	appendStringInfoChar(buf, ':');
	if (value)
		escape_json(buf, value);
	else
		appendStringInfoString(buf, "null");
	if (!last)
		appendStringInfoChar(buf, ',');
}

/* PostgREST's error body: {"code","message","details","hint"}. */
enum MHD_Result
el_respond_error(struct MHD_Connection *conn, unsigned int status, const char *code,
				 const char *message, const char *details, const char *hint)
{
	char	   *body = el_error_json(code, message, details, hint);

	return el_respond(conn, status, "application/json; charset=utf-8", body, strlen(body));
}

/* 405 for a path that exists, with the methods it has in Allow. */
enum MHD_Result
el_respond_not_allowed(struct MHD_Connection *conn, const char *allow,
					   const char *method, const char *url)
{
	char	   *body = el_error_json("PGRST117",
									 psprintf("Unsupported HTTP method %s for %s", method, url),
									 psprintf("%s answers to %s.", url, allow), NULL);

	return el_queue_response(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
					el_make_response_allow(MHD_HTTP_METHOD_NOT_ALLOWED, "application/json; charset=utf-8",
										   body, strlen(body), allow));
}

/*
 * PostgREST's mapping of SQLSTATEs to HTTP statuses.  PTxyz is PostgREST's
 * convention for "respond with status xyz"; 42501 depends on whether the
 * request had a token.
 */
unsigned int
el_http_status_for(int sqlerrcode, bool anonymous)
{
	char		state[6];
	char		c0,
				c1;

	memcpy(state, unpack_sql_state(sqlerrcode), 6);
	c0 = state[0];
	c1 = state[1];

	if (c0 == 'P' && c1 == 'T')
	{
		int			status = atoi(state + 2);

		return status >= 100 && status <= 599 ? (unsigned int) status : 500;
	}
	if (strcmp(state, "42501") == 0)
		return anonymous ? 401 : 403;
	if (strcmp(state, "23503") == 0 || strcmp(state, "23505") == 0)
		return 409;
	if (strcmp(state, "25006") == 0)
		return 405;
	if (strcmp(state, "42883") == 0 || strcmp(state, "42P01") == 0)
		return 404;
	if (strcmp(state, "42P17") == 0)
		return 500;
	if (strcmp(state, "P0001") == 0)
		return 400;
	if (c0 == '0' && c1 == '8')
		return 503;
	if (c0 == '5' && c1 == '3')
		return 503;
	if ((c0 == '0' && (c1 == 'L' || c1 == 'P')) || (c0 == '2' && c1 == '8'))
		return 403;
	if ((c0 == '0' && c1 == '9') || (c0 == '2' && (c1 == '5' || c1 == 'D')) ||
		(c0 == '3' && (c1 == '8' || c1 == '9' || c1 == 'B')) ||
		(c0 == '4' && c1 == '0') || (c0 == '5' && c1 >= '4' && c1 <= '8') ||
		(c0 == 'F' && c1 == '0') || (c0 == 'H' && c1 == 'V') ||
		(c0 == 'P' && c1 == '0') || (c0 == 'X' && c1 == 'X'))
		return 500;
	return 400;
}
