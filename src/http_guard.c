/*
 * http_guard.c
 *		What a request must satisfy before the gateway serves it: strict
 *		HTTP framing (RFC 9112), a Host the gateway answers to (DNS
 *		rebinding), an Origin it trusts (CORS; no cross-site writes), and a
 *		JSON body on /rpc/ (no HTML-form posts).
 *
 * libmicrohttpd parses the request; these checks only look at the headers
 * it parsed.  They run when the headers are in, before any body is read,
 * and a refusal closes the connection: a request whose framing is in doubt
 * must not leave bytes behind that could be read as the next request.
 */
#include "postgres.h"

#include <ctype.h>

#include "gateway.h"

/* Counts of the framing headers, gathered by one pass over all headers. */
typedef struct ElFraming
{
	int			content_length;
	int			transfer_encoding;
	int			host;
	bool		bad_name;
} ElFraming;

static enum MHD_Result
el_count_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	ElFraming  *f = (ElFraming *) cls;

	for (const char *p = key; *p; p++)
		if (isspace((unsigned char) *p) || *p == ':')
			f->bad_name = true;
	if (pg_strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0)
		f->content_length++;
	else if (pg_strncasecmp(key, "Transfer-Encoding", 17) == 0)
		f->transfer_encoding++;
	else if (pg_strcasecmp(key, MHD_HTTP_HEADER_HOST) == 0)
		f->host++;
	return MHD_YES;
}

/*
 * Does a comma-separated list (a setting) contain item?  Compared without
 * regard to case, items trimmed.
 */
static bool
el_list_contains(const char *list, const char *item, size_t item_len)
{
	const char *p = list;

	while (p && *p)
	{
		const char *end = strchr(p, ',');
		const char *stop = end ? end : p + strlen(p);

		while (p < stop && isspace((unsigned char) *p))
			p++;
		while (stop > p && isspace((unsigned char) stop[-1]))
			stop--;
		if ((size_t) (stop - p) == item_len && pg_strncasecmp(p, item, item_len) == 0)
			return true;
		p = end ? end + 1 : NULL;
	}
	return false;
}

/* The host part of a Host header: "name", "name:port", "[v6]" or "[v6]:port". */
static size_t
el_host_name_length(const char *host)
{
	if (host[0] == '[')
	{
		const char *close = strchr(host, ']');

		return close ? (size_t) (close - host + 1) : strlen(host);
	}
	return strcspn(host, ":");
}

/* Names the gateway answers to: loopback, its listen address, the setting. */
static bool
el_host_allowed(const char *host)
{
	size_t		len = el_host_name_length(host);

	if (el_list_contains("localhost,127.0.0.1,[::1]", host, len) ||
		el_list_contains(el_http_host_names, host, len))
		return true;
	/* the listen address itself, unless it is a wildcard */
	if (strcmp(el_http_listen, "0.0.0.0") != 0 && strcmp(el_http_listen, "::") != 0)
	{
		if (strchr(el_http_listen, ':'))
			return host[0] == '[' && len == strlen(el_http_listen) + 2 &&
				pg_strncasecmp(host + 1, el_http_listen, len - 2) == 0;
		return len == strlen(el_http_listen) && pg_strncasecmp(host, el_http_listen, len) == 0;
	}
	return false;
}

/*
 * The origin of a request from a page of the same site: Origin's authority
 * equals Host (e.g. "http://127.0.0.1:8080" and "127.0.0.1:8080").
 */
static bool
el_same_origin(const char *origin, const char *host)
{
	const char *authority = strstr(origin, "://");

	return host && authority && pg_strcasecmp(authority + 3, host) == 0;
}

bool
el_origin_allowed(const char *origin)
{
	return origin && el_list_contains(el_http_cors_origins, origin, strlen(origin));
}

/*
 * Check a request whose headers are in.  Returns true when it may be
 * served; otherwise fills *refusal (status, code, message) and the caller
 * answers and closes.
 */
bool
el_guard_request(struct MHD_Connection *conn, const char *url, const char *method,
				 const char *version, ElRefusal *refusal)
{
	ElFraming	f = {0};
	const char *host;
	const char *origin;
	const char *content_type;

	memset(refusal, 0, sizeof(*refusal));
	refusal->status = MHD_HTTP_BAD_REQUEST;
	refusal->code = "EL400";

	(void) MHD_get_connection_values(conn, MHD_HEADER_KIND, el_count_header, &f);
	if (f.bad_name)
	{
		refusal->message = "A header name contains white space";
		return false;
	}
	if (f.content_length > 1)
	{
		refusal->message = "More than one Content-Length header";
		return false;
	}
	if (f.transfer_encoding > 0 && f.content_length > 0)
	{
		refusal->message = "Both Content-Length and Transfer-Encoding";
		return false;
	}
	if (f.transfer_encoding > 1)
	{
		refusal->message = "More than one Transfer-Encoding header";
		return false;
	}
	if (f.host > 1 || (f.host == 0 && strcmp(version, MHD_HTTP_VERSION_1_0) != 0))
	{
		refusal->message = "An HTTP/1.1 request needs exactly one Host header";
		return false;
	}

	host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
	if (host && !el_host_allowed(host))
	{
		refusal->status = 421;	/* Misdirected Request */
		refusal->code = "EL421";
		refusal->message = "This server does not answer to that host name";
		return false;
	}

	origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
	if (origin && !el_same_origin(origin, host) && !el_origin_allowed(origin) &&
		(strcmp(method, MHD_HTTP_METHOD_POST) == 0 || strcmp(method, MHD_HTTP_METHOD_PATCH) == 0 ||
		 strcmp(method, MHD_HTTP_METHOD_OPTIONS) == 0))
	{
		refusal->status = MHD_HTTP_FORBIDDEN;
		refusal->code = "EL403";
		refusal->message = "Requests from this origin are not allowed";
		return false;
	}

	/* As PostgREST: a function's body is JSON; a form post is not. */
	content_type = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
	if (strcmp(method, MHD_HTTP_METHOD_POST) == 0 && strncmp(url, "/rpc/", 5) == 0 &&
		content_type != NULL)
	{
		size_t		len = strcspn(content_type, ";");

		while (len > 0 && isspace((unsigned char) content_type[len - 1]))
			len--;
		if (!(len == 16 && pg_strncasecmp(content_type, "application/json", 16) == 0))
		{
			refusal->status = MHD_HTTP_UNSUPPORTED_MEDIA_TYPE;
			refusal->code = "PGRST107";
			refusal->message = "The request body must be application/json";
			return false;
		}
	}
	return true;
}
