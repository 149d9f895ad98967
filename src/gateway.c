/*
 * gateway.c
 *		The built-in HTTP gateway: the dashboard's static files and
 *		PostgREST's POST /rpc/<name> contract, served by a background worker.
 *
 * libmicrohttpd runs in epoll mode without any thread of its own: it hands
 * us one epoll file descriptor that becomes readable when the listening
 * socket or any client socket is ready.  The worker waits on that fd and on
 * its latch together and calls MHD_run() when something is ready, so every
 * libmicrohttpd callback runs on this process's only thread, where SPI is
 * allowed.  No ERROR may unwind through libmicrohttpd's frames, so every
 * callback body runs inside PG_TRY and turns errors into HTTP responses.
 *
 * The launcher (worker.c) starts the gateway in enterprise_lab.database, or,
 * while that database does not exist, connected to no database: it then
 * serves the static files and answers 503 to everything else, and the
 * launcher replaces it once the database appears.
 */
#include "postgres.h"

#include <ctype.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "parser/parse_func.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"

#include "enterprise_lab.h"

/* Connections served at once; more wait in the listen backlog. */
#define EL_HTTP_MAX_CONNECTIONS 64
/* Seconds a client connection may stay idle (slow clients are dropped). */
#define EL_HTTP_IDLE_TIMEOUT 10
/* Longest name accepted in /rpc/<name>. */
#define EL_RPC_NAME_MAX (NAMEDATALEN - 1)

static int	el_http_port = 0;
static char *el_http_listen = NULL;
static char *el_http_anon_role = NULL;
static char *el_http_authenticator = NULL;
static char *el_jwt_secret = NULL;
static int	el_http_max_body = 16 * 1024 * 1024;
static int	el_http_request_timeout_ms = 30000;

static void
el_gateway_define_startup_gucs(void)
{
	DefineCustomIntVariable("enterprise_lab.http_port",
							"TCP port of the built-in HTTP gateway.",
							"0 (the default) turns the gateway off.",
							&el_http_port,
							0, 0, 65535,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);

	DefineCustomStringVariable("enterprise_lab.http_listen",
							   "Address the built-in HTTP gateway listens on.",
							   "An IPv4 or IPv6 address or a host name; 0.0.0.0 or :: for all interfaces.",
							   &el_http_listen,
							   "127.0.0.1",
							   PGC_POSTMASTER,
							   0,
							   NULL, NULL, NULL);
}

void
el_gateway_define_gucs(void)
{
	/*
	 * Port and address are fixed at server start, and PostgreSQL allows
	 * such settings only while preloading (a library loaded later by
	 * CREATE EXTENSION has no gateway anyway).
	 */
	if (process_shared_preload_libraries_in_progress)
		el_gateway_define_startup_gucs();

	DefineCustomStringVariable("enterprise_lab.http_anon_role",
							   "Role the gateway runs requests without a token as.",
							   NULL,
							   &el_http_anon_role,
							   "lab_anon",
							   PGC_SIGHUP,
							   0,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("enterprise_lab.http_authenticator",
							   "Role the gateway runs every request as before switching to the request's role.",
							   "A JWT role claim is honoured only if this role is a member of it, as with PostgREST's authenticator.",
							   &el_http_authenticator,
							   "lab_authenticator",
							   PGC_SIGHUP,
							   0,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("enterprise_lab.jwt_secret",
							   "File that holds the HS256 secret of the gateway's JSON Web Tokens, as @/path/to/file.",
							   "Empty, a secret set inline or an unreadable file: every request with a token is refused.",
							   &el_jwt_secret,
							   "",
							   PGC_SUSET,
							   GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);

	DefineCustomIntVariable("enterprise_lab.http_max_body",
							"Largest request body the gateway accepts.",
							"Larger requests are answered with 413.",
							&el_http_max_body,
							16 * 1024 * 1024, 1024, MaxAllocSize / 2,
							PGC_SIGHUP,
							GUC_UNIT_BYTE,
							NULL, NULL, NULL);

	DefineCustomIntVariable("enterprise_lab.http_request_timeout",
							"Statement timeout of one gateway request.",
							"0 disables it.",
							&el_http_request_timeout_ms,
							30000, 0, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
}

/* ---------------------------------------------------------------------
 * Supervision (runs in the launcher)
 * ---------------------------------------------------------------------
 */

static BackgroundWorkerHandle *gateway_handle = NULL;
static Oid	gateway_dboid = InvalidOid;
static TimestampTz gateway_started_at = 0;
static int	gateway_restart_delay_ms = 0;

/*
 * Keep one gateway running for the database the launcher serves (dboid, or
 * InvalidOid while it does not exist).  A gateway that stops soon after
 * starting (say its port is taken) is restarted with a growing delay, so a
 * misconfiguration logs a line per minute, not per second.
 */
void
el_gateway_supervise(Oid dboid, long *timeout)
{
	TimestampTz now;
	pid_t		pid;

	if (el_http_port == 0)
		return;

	if (gateway_handle && gateway_dboid != dboid)
	{
		/* Wait until it is gone: its successor needs the port. */
		TerminateBackgroundWorker(gateway_handle);
		(void) WaitForBackgroundWorkerShutdown(gateway_handle);
		pfree(gateway_handle);
		gateway_handle = NULL;
		gateway_restart_delay_ms = 0;
	}

	now = GetCurrentTimestamp();
	if (gateway_handle && GetBackgroundWorkerPid(gateway_handle, &pid) == BGWH_STOPPED)
	{
		pfree(gateway_handle);
		gateway_handle = NULL;
		if (TimestampDifferenceExceeds(gateway_started_at, now, 60 * 1000))
			gateway_restart_delay_ms = 1000;
		else
			gateway_restart_delay_ms = Min(Max(gateway_restart_delay_ms * 2, 1000), 60 * 1000);
	}

	if (gateway_handle == NULL)
	{
		if (TimestampDifferenceExceeds(gateway_started_at, now, gateway_restart_delay_ms))
		{
			BackgroundWorker bgw;

			memset(&bgw, 0, sizeof(bgw));
			bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
			bgw.bgw_start_time = BgWorkerStart_RecoveryFinished;
			bgw.bgw_restart_time = BGW_NEVER_RESTART;	/* we restart it */
			snprintf(bgw.bgw_library_name, BGW_MAXLEN, "enterprise_lab");
			snprintf(bgw.bgw_function_name, BGW_MAXLEN, "el_gateway_main");
			snprintf(bgw.bgw_name, BGW_MAXLEN, "enterprise_lab gateway");
			snprintf(bgw.bgw_type, BGW_MAXLEN, "enterprise_lab gateway");
			bgw.bgw_main_arg = ObjectIdGetDatum(dboid);
			bgw.bgw_notify_pid = MyProcPid;
			gateway_started_at = now;
			gateway_dboid = dboid;
			if (!RegisterDynamicBackgroundWorker(&bgw, &gateway_handle))
			{
				gateway_handle = NULL;
				ereport(WARNING,
						(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
						 errmsg("enterprise_lab: could not start the HTTP gateway"),
						 errhint("Raise max_worker_processes: enterprise_lab needs enterprise_lab.worker_count + 2 with the HTTP gateway.")));
				gateway_restart_delay_ms = 60 * 1000;
			}
		}
		else
		{
			long		secs;
			int			usecs;

			TimestampDifference(now,
								TimestampTzPlusMilliseconds(gateway_started_at, gateway_restart_delay_ms),
								&secs, &usecs);
			*timeout = Min(*timeout, secs * 1000 + usecs / 1000 + 1);
		}
	}
}

/* ---------------------------------------------------------------------
 * Responses
 * ---------------------------------------------------------------------
 */

/* One HTTP request in progress: lives from its headers until completion. */
typedef struct ElRequest
{
	MemoryContext cxt;
	StringInfoData body;
	bool		too_large;
} ElRequest;

static bool gateway_has_database = false;
static char web_root[PATH_MAX];

static enum MHD_Result
el_respond(struct MHD_Connection *conn, unsigned int status,
		   const char *content_type, const char *body, size_t len)
{
	struct MHD_Response *response;
	enum MHD_Result ret;

	response = MHD_create_response_from_buffer(len, (void *) body, MHD_RESPMEM_MUST_COPY);
	if (response == NULL)
		return MHD_NO;
	MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
	MHD_add_response_header(response, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (status == MHD_HTTP_UNAUTHORIZED)
		MHD_add_response_header(response, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, "GET, HEAD, POST");
	ret = MHD_queue_response(conn, status, response);
	MHD_destroy_response(response);
	return ret;
}

static void
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
static enum MHD_Result
el_respond_error(struct MHD_Connection *conn, unsigned int status, const char *code,
				 const char *message, const char *details, const char *hint)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	el_json_field(&buf, "code", code, false);
	el_json_field(&buf, "message", message, false);
	el_json_field(&buf, "details", details, false);
	el_json_field(&buf, "hint", hint, true);
	appendStringInfoChar(&buf, '}');
	return el_respond(conn, status, "application/json; charset=utf-8", buf.data, buf.len);
}

/*
 * PostgREST's mapping of SQLSTATEs to HTTP statuses.  PTxyz is PostgREST's
 * convention for "respond with status xyz"; 42501 depends on whether the
 * request had a token.
 */
static unsigned int
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

/* ---------------------------------------------------------------------
 * Static files
 * ---------------------------------------------------------------------
 */

static const char *
el_content_type(const char *path)
{
	static const struct
	{
		const char *ext;
		const char *type;
	}			types[] = {
		{".html", "text/html; charset=utf-8"},
		{".js", "text/javascript; charset=utf-8"},
		{".mjs", "text/javascript; charset=utf-8"},
		{".css", "text/css; charset=utf-8"},
		{".json", "application/json; charset=utf-8"},
		{".svg", "image/svg+xml"},
		{".png", "image/png"},
		{".jpg", "image/jpeg"},
		{".jpeg", "image/jpeg"},
		{".ico", "image/x-icon"},
		{".txt", "text/plain; charset=utf-8"},
		{".woff2", "font/woff2"},
	};
	const char *dot = strrchr(path, '.');

	if (dot && strchr(dot, '/') == NULL)
	{
		for (size_t i = 0; i < lengthof(types); i++)
			if (pg_strcasecmp(dot, types[i].ext) == 0)
				return types[i].type;
	}
	return "application/octet-stream";
}

/*
 * A URL path (already percent-decoded by libmicrohttpd) names a file we
 * serve only if every segment is a plain name: letters, digits, '-', '_'
 * and '.', not starting with '.'.  That refuses "..", hidden files, "//",
 * backslashes and whatever a second round of decoding could turn into one
 * of those ('%' is not allowed).  realpath() then proves the file lies
 * under the web root, so a symbolic link cannot lead out of it.
 */
static bool
el_static_path(const char *url, char *resolved)
{
	char		candidate[MAXPGPATH];
	const char *p;
	bool		segment_start = true;

	if (url[0] != '/' || strlen(url) > 200)
		return false;
	for (p = url + 1; *p; p++)
	{
		if (*p == '/')
		{
			if (segment_start)
				return false;
			segment_start = true;
			continue;
		}
		if (segment_start && *p == '.')
			return false;
		if (!(isalnum((unsigned char) *p) || *p == '-' || *p == '_' || *p == '.'))
			return false;
		segment_start = false;
	}

	if (strcmp(url, "/") == 0)
		snprintf(candidate, sizeof(candidate), "%s/index.html", web_root);
	else if (url[strlen(url) - 1] == '/')
		snprintf(candidate, sizeof(candidate), "%s%sindex.html", web_root, url);
	else
		snprintf(candidate, sizeof(candidate), "%s%s", web_root, url);

	if (realpath(candidate, resolved) == NULL)
		return false;
	return strncmp(resolved, web_root, strlen(web_root)) == 0 &&
		resolved[strlen(web_root)] == '/';
}

static enum MHD_Result
el_serve_static(struct MHD_Connection *conn, const char *url)
{
	char		path[PATH_MAX];
	struct stat st;
	struct MHD_Response *response;
	enum MHD_Result ret;
	int			fd;

	if (web_root[0] == '\0' || !el_static_path(url, path) ||
		(fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return el_respond(conn, MHD_HTTP_NOT_FOUND, "text/plain; charset=utf-8",
						  "not found\n", 10);
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
	{
		close(fd);
		return el_respond(conn, MHD_HTTP_NOT_FOUND, "text/plain; charset=utf-8",
						  "not found\n", 10);
	}

	/* libmicrohttpd owns fd from here on and closes it. */
	response = MHD_create_response_from_fd((uint64_t) st.st_size, fd);
	if (response == NULL)
	{
		close(fd);
		return MHD_NO;
	}
	MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, el_content_type(path));
	MHD_add_response_header(response, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(response, "X-Frame-Options", "DENY");
	MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	ret = MHD_queue_response(conn, MHD_HTTP_OK, response);
	MHD_destroy_response(response);
	return ret;
}

/* ---------------------------------------------------------------------
 * Authentication
 * ---------------------------------------------------------------------
 */

typedef struct ElAuth
{
	char	   *role;			/* role to SET LOCAL ROLE to */
	char	   *claims;			/* JSON for request.jwt.claims */
	bool		anonymous;
	/* when the token is refused: */
	unsigned int status;
	const char *code;
	const char *message;
} ElAuth;

static void
el_auth_refuse(ElAuth *auth, unsigned int status, const char *code, const char *message)
{
	auth->status = status;
	auth->code = code;
	auth->message = message;
}

/*
 * libjwt, loaded with RTLD_DEEPBIND instead of linked: it and its JSON
 * library (jansson) must not see the postgres executable's symbols, since
 * PostgreSQL's SQL function json_object() has the name of jansson's
 * constructor and would be called in its place.
 *
 * The gateway speaks libjwt's 1.x API, which Debian ships as libjwt.so.0
 * (bookworm) and libjwt.so.2 (trixie on); it is declared here rather than
 * taken from jwt.h because the library is found by soname at run time and a
 * build machine's jwt.h may be 3.x's, a different API.
 */
typedef struct jwt jwt_t;

static const char *const el_libjwt_sonames[] = {"libjwt.so.2", "libjwt.so.0"};

static struct
{
	bool		loaded;
	int			(*decode) (jwt_t **jwt, const char *token, const unsigned char *key, int key_len);
	const char *(*get_header) (jwt_t *jwt, const char *header);
	const char *(*get_grant) (jwt_t *jwt, const char *grant);
	long		(*get_grant_int) (jwt_t *jwt, const char *grant);
	char	   *(*get_grants_json) (jwt_t *jwt, const char *grant);
	void		(*free) (jwt_t *jwt);
}			libjwt;

static void
el_load_libjwt(void)
{
	void	   *lib = NULL;
	const char *soname = NULL;

	for (size_t i = 0; i < lengthof(el_libjwt_sonames) && lib == NULL; i++)
		lib = dlopen(soname = el_libjwt_sonames[i], RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
	if (lib == NULL)
	{
		bool		v3 = (dlopen("libjwt.so.3", RTLD_LAZY | RTLD_LOCAL) != NULL);

		ereport(WARNING,
				(errmsg("enterprise_lab gateway: could not load libjwt with its 1.x API"),
				 v3 ? errdetail("Only libjwt 3 (libjwt.so.3) is installed; its API is not the one the gateway uses.  Requests with a token will be refused.")
				 : errdetail("Neither libjwt.so.2 nor libjwt.so.0 was found.  Requests with a token will be refused."),
				 errhint("Install libjwt2 (Debian trixie and later) or libjwt0 (bookworm).")));
		return;
	}
	libjwt.decode = dlsym(lib, "jwt_decode");
	libjwt.get_header = dlsym(lib, "jwt_get_header");
	libjwt.get_grant = dlsym(lib, "jwt_get_grant");
	libjwt.get_grant_int = dlsym(lib, "jwt_get_grant_int");
	libjwt.get_grants_json = dlsym(lib, "jwt_get_grants_json");
	libjwt.free = dlsym(lib, "jwt_free");
	libjwt.loaded = libjwt.decode && libjwt.get_header && libjwt.get_grant &&
		libjwt.get_grant_int && libjwt.get_grants_json && libjwt.free;
	if (!libjwt.loaded)
		ereport(WARNING,
				(errmsg("enterprise_lab gateway: %s lacks a function of libjwt's 1.x API", soname),
				 errdetail("Requests with a token will be refused.")));
}

/*
 * Verify "Authorization: Bearer <JWT>" as PostgREST does: HS256 only,
 * signature, exp and nbf; the role claim (or the anonymous role when the
 * token has none) and all claims for request.jwt.claims.  libjwt does the
 * parsing and the signature check; nothing here can raise an ERROR, and all
 * of libjwt's allocations are freed before returning.
 */
static void
el_authenticate(struct MHD_Connection *conn, ElAuth *auth)
{
	const char *header = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
													 MHD_HTTP_HEADER_AUTHORIZATION);
	jwt_t	   *jwt = NULL;
	const char *secret;
	const char *alg;
	const char *role;
	char	   *claims;
	long		exp,
				nbf;
	time_t		now = time(NULL);

	memset(auth, 0, sizeof(*auth));
	auth->status = MHD_HTTP_OK;

	if (header == NULL)
	{
		StringInfoData buf;

		auth->anonymous = true;
		auth->role = pstrdup(el_http_anon_role);
		initStringInfo(&buf);
		appendStringInfoString(&buf, "{\"role\":");
		escape_json(&buf, el_http_anon_role);
		appendStringInfoChar(&buf, '}');
		auth->claims = buf.data;
		return;
	}
	if (pg_strncasecmp(header, "Bearer ", 7) != 0 || header[7] == '\0')
	{
		el_auth_refuse(auth, MHD_HTTP_UNAUTHORIZED, "PGRST301",
					   "Authorization header is not \"Bearer <token>\"");
		return;
	}
	if (!libjwt.loaded)
	{
		el_auth_refuse(auth, MHD_HTTP_INTERNAL_SERVER_ERROR, "PGRST300",
					   "Server cannot verify JWTs: libjwt is not available");
		return;
	}
	/* read from its file; a problem is logged (LOG never throws) */
	secret = el_secret_get("enterprise_lab.jwt_secret", el_jwt_secret, LOG);
	if (secret == NULL)
	{
		el_auth_refuse(auth, MHD_HTTP_INTERNAL_SERVER_ERROR, "PGRST300",
					   "Server lacks JWT secret");
		return;
	}
	if (libjwt.decode(&jwt, header + 7, (const unsigned char *) secret,
				   (int) strlen(secret)) != 0 || jwt == NULL)
	{
		el_auth_refuse(auth, MHD_HTTP_UNAUTHORIZED, "PGRST301",
					   "JWT cannot be decoded or its signature is invalid");
		return;
	}
	/* exactly "HS256", as PostgREST: libjwt itself matches names loosely */
	alg = libjwt.get_header(jwt, "alg");
	if (alg == NULL || strcmp(alg, "HS256") != 0)
	{
		libjwt.free(jwt);
		el_auth_refuse(auth, MHD_HTTP_UNAUTHORIZED, "PGRST301",
					   "JWT algorithm is not HS256");
		return;
	}

	errno = 0;
	exp = libjwt.get_grant_int(jwt, "exp");
	if (errno == 0 && exp <= now)
	{
		libjwt.free(jwt);
		el_auth_refuse(auth, MHD_HTTP_UNAUTHORIZED, "PGRST303", "JWT expired");
		return;
	}
	errno = 0;
	nbf = libjwt.get_grant_int(jwt, "nbf");
	if (errno == 0 && nbf > now)
	{
		libjwt.free(jwt);
		el_auth_refuse(auth, MHD_HTTP_UNAUTHORIZED, "PGRST303", "JWT not yet valid");
		return;
	}

	claims = libjwt.get_grants_json(jwt, NULL);
	if (claims == NULL)
	{
		libjwt.free(jwt);
		el_auth_refuse(auth, MHD_HTTP_UNAUTHORIZED, "PGRST303", "JWT claims cannot be read");
		return;
	}
	auth->claims = pstrdup(claims);
	free(claims);

	errno = 0;
	role = libjwt.get_grant(jwt, "role");
	if (role == NULL && errno != ENOENT)
	{
		/* "role" is there but is not a string */
		libjwt.free(jwt);
		el_auth_refuse(auth, MHD_HTTP_UNAUTHORIZED, "PGRST303", "JWT role claim is not a string");
		return;
	}
	auth->role = pstrdup(role && role[0] ? role : el_http_anon_role);
	auth->anonymous = false;
	libjwt.free(jwt);
}

/* ---------------------------------------------------------------------
 * RPC
 * ---------------------------------------------------------------------
 */

static bool
el_valid_rpc_name(const char *name)
{
	size_t		len = strlen(name);

	if (len == 0 || len > EL_RPC_NAME_MAX || isdigit((unsigned char) name[0]))
		return false;
	for (const char *p = name; *p; p++)
		if (!(isalnum((unsigned char) *p) || *p == '_'))
			return false;
	return true;
}

/* The response of one request, built inside and copied out of a transaction. */
typedef struct ElOutcome
{
	unsigned int status;
	char	   *body;			/* JSON */
	ErrorData  *error;			/* set when the call raised an error */
	bool		reading_body;	/* error came from the request body */
} ElOutcome;

static void
el_set_local(const char *name, const char *value)
{
	(void) set_config_option(name, value, PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_LOCAL, true, 0, false);
}

/*
 * The work of one transaction: authenticator, role, claims, then
 * api.<name>(body).  Sets outcome->status and ->body, also when the request
 * is refused before the call (no extension, no such function); errors
 * raised by PostgreSQL propagate to the caller.
 */
static void
el_rpc_transaction(const char *name, StringInfo body, ElAuth *auth,
				   const char *path, MemoryContext keep, ElOutcome *outcome)
{
	Oid			argtype = JSONBOID;
	Oid			funcoid;
	Datum		arg;
	char	   *sql;
	char	   *result;
	int			rc;

	if (!OidIsValid(get_extension_oid("enterprise_lab", true)))
	{
		outcome->status = MHD_HTTP_SERVICE_UNAVAILABLE;
		outcome->body = MemoryContextStrdup(keep,
											"{\"code\":\"PGRST002\",\"message\":\"extension enterprise_lab is not installed in the gateway's database\",\"details\":null,\"hint\":\"Run CREATE EXTENSION enterprise_lab there.\"}");
		return;
	}

	funcoid = LookupFuncName(list_make2(makeString("api"), makeString(pstrdup(name))),
							 1, &argtype, true);
	if (!OidIsValid(funcoid) || get_func_prokind(funcoid) != PROKIND_FUNCTION)
	{
		StringInfoData buf;
		char	   *message = psprintf("Could not find the function api.%s(jsonb)", name);

		initStringInfo(&buf);
		appendStringInfoChar(&buf, '{');
		el_json_field(&buf, "code", "PGRST202", false);
		el_json_field(&buf, "message", message, false);
		el_json_field(&buf, "details", NULL, false);
		el_json_field(&buf, "hint", "Only functions of schema api taking one jsonb argument are served.", true);
		appendStringInfoChar(&buf, '}');
		outcome->status = MHD_HTTP_NOT_FOUND;
		outcome->body = MemoryContextStrdup(keep, buf.data);
		return;
	}

	if (!OidIsValid(get_role_oid(el_http_authenticator, true)) ||
		!OidIsValid(get_role_oid(el_http_anon_role, true)))
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("gateway role \"%s\" or \"%s\" does not exist",
						el_http_authenticator, el_http_anon_role),
				 errhint("Check enterprise_lab.http_authenticator and enterprise_lab.http_anon_role.")));

	/* The body: UTF-8 (no NUL bytes), JSON; {} when there is none. */
	outcome->reading_body = true;
	arg = DirectFunctionCall1(jsonb_in,
							  CStringGetDatum(body->len == 0 ? "{}" :
											  pg_any_to_server(body->data, body->len, PG_UTF8)));
	outcome->reading_body = false;

	/*
	 * From here on the transaction runs as the authenticator, and a role
	 * from a token is accepted only if the authenticator is a member of it
	 * (the check of SET ROLE), exactly as behind PostgREST.
	 */
	el_set_local("session_authorization", el_http_authenticator);
	el_set_local("role", auth->role);
	el_set_local("request.jwt.claims", auth->claims);
	el_set_local("request.method", "POST");
	el_set_local("request.path", path);

	sql = psprintf("SELECT api.%s($1)::text", quote_identifier(name));
	rc = SPI_execute_with_args(sql, 1, &argtype, &arg, NULL, false, 1);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("api.%s returned no row", name)));
	result = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	outcome->status = MHD_HTTP_OK;
	outcome->body = MemoryContextStrdup(keep, result ? result : "null");
}

static void
el_stop_request_timeout(void)
{
	disable_timeout(STATEMENT_TIMEOUT, false);
	/* A timeout that fired after the last check must not cancel the next request. */
	QueryCancelPending = false;
}

/*
 * Start of one request's work, inside its transaction and PG_TRY: the
 * per-request statement timeout, SPI, a snapshot.
 */
static void
el_request_begin(void)
{
	if (el_http_request_timeout_ms > 0)
		enable_timeout_after(STATEMENT_TIMEOUT, el_http_request_timeout_ms);
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
}

static void
el_run_rpc(const char *name, StringInfo body, ElAuth *auth, const char *path,
		   ElOutcome *outcome)
{
	MemoryContext keep = CurrentMemoryContext;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PG_TRY();
	{
		el_request_begin();
		pgstat_report_activity(STATE_RUNNING, path);

		el_rpc_transaction(name, body, auth, path, keep, outcome);

		SPI_finish();
		PopActiveSnapshot();
		if (outcome->status == MHD_HTTP_OK)
			CommitTransactionCommand();
		else
			AbortCurrentTransaction();
		el_stop_request_timeout();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(keep);
		outcome->error = CopyErrorData();
		FlushErrorState();
		el_stop_request_timeout();
		AbortCurrentTransaction();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(keep);
	pgstat_report_activity(STATE_IDLE, NULL);
}

static enum MHD_Result
el_handle_rpc(struct MHD_Connection *conn, const char *url, ElRequest *req)
{
	const char *name = url + strlen("/rpc/");
	ElAuth		auth;
	ElOutcome	outcome = {0};

	if (!el_valid_rpc_name(name))
		return el_respond_error(conn, MHD_HTTP_NOT_FOUND, "PGRST202",
								"Could not find the function",
								"A function name has letters, digits and underscores only.",
								"Only functions of schema api taking one jsonb argument are served.");

	el_authenticate(conn, &auth);
	if (auth.status != MHD_HTTP_OK)
		return el_respond_error(conn, auth.status, auth.code, auth.message, NULL, NULL);

	if (!gateway_has_database)
		return el_respond_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "PGRST001",
								psprintf("database \"%s\" does not exist", el_database),
								NULL, "Create it and the extension in it.");

	el_run_rpc(name, &req->body, &auth, url, &outcome);

	if (outcome.error)
	{
		ErrorData  *e = outcome.error;
		unsigned int status;

		if (outcome.reading_body)
			return el_respond_error(conn, MHD_HTTP_BAD_REQUEST, "PGRST102",
									"Empty or invalid json in the request body",
									e->detail ? psprintf("%s %s", e->message, e->detail) : e->message,
									"Send a JSON object (UTF-8), e.g. {}.");

		status = el_http_status_for(e->sqlerrcode, auth.anonymous);
		if (status >= 500)
			ereport(LOG,
					(errmsg("enterprise_lab gateway: POST %s failed: %s", url, e->message)));
		return el_respond_error(conn, status, unpack_sql_state(e->sqlerrcode),
								e->message, e->detail, e->hint);
	}
	return el_respond(conn, outcome.status, "application/json; charset=utf-8",
					  outcome.body, strlen(outcome.body));
}

/* ---------------------------------------------------------------------
 * Health
 * ---------------------------------------------------------------------
 */

static int
el_running_workers(void)
{
	int			n = 0;

	if (el_shared == NULL)
		return 0;
	for (int i = 0; i < EL_MAX_WORKERS; i++)
	{
		ElWorkerSlot *slot = &el_shared->workers[i];

		SpinLockAcquire(&slot->mutex);
		if (slot->pid != 0)
			n++;
		SpinLockRelease(&slot->mutex);
	}
	return n;
}

static enum MHD_Result
el_handle_health(struct MHD_Connection *conn)
{
	MemoryContext keep = CurrentMemoryContext;
	volatile bool extension = false;
	volatile int64 pending = -1;
	ErrorData  *volatile error = NULL;
	char	   *body;

	if (gateway_has_database)
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		PG_TRY();
		{
			el_request_begin();
			extension = OidIsValid(get_extension_oid("enterprise_lab", true));
			if (extension &&
				SPI_execute("SELECT count(*) FROM integration.events WHERE status IN ('pending', 'failed')",
							true, 1) == SPI_OK_SELECT)
			{
				bool		isnull;

				pending = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
													  SPI_tuptable->tupdesc, 1, &isnull));
			}
			SPI_finish();
			PopActiveSnapshot();
			CommitTransactionCommand();
			el_stop_request_timeout();
		}
		PG_CATCH();
		{
			MemoryContextSwitchTo(keep);
			error = CopyErrorData();
			FlushErrorState();
			el_stop_request_timeout();
			AbortCurrentTransaction();
		}
		PG_END_TRY();
		MemoryContextSwitchTo(keep);
	}

	body = psprintf("{\"status\":\"%s\",\"database\":%s,\"extension\":%s,"
					"\"workers_running\":%d,\"pending_events\":%s}",
					extension && !error ? "ok" : "unavailable",
					gateway_has_database ? "true" : "false",
					extension ? "true" : "false",
					el_running_workers(),
					pending >= 0 ? psprintf(INT64_FORMAT, pending) : "null");
	if (error)
		ereport(LOG,
				(errmsg("enterprise_lab gateway: health check failed: %s", error->message)));
	return el_respond(conn,
					  extension && !error ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
					  "application/json; charset=utf-8", body, strlen(body));
}

/* ---------------------------------------------------------------------
 * libmicrohttpd callbacks
 * ---------------------------------------------------------------------
 */

static bool
el_is_rpc(const char *url)
{
	return strncmp(url, "/rpc/", 5) == 0;
}

/*
 * The request handler proper.  libmicrohttpd calls it once when the headers
 * are in (*req_cls == NULL), once per piece of body, and once more with
 * *upload_data_size == 0 when the whole request is in.  We answer on that
 * last call: a response queued earlier makes libmicrohttpd close the
 * connection, which is right only for a body we refuse unread.
 */
static enum MHD_Result
el_handle_request(struct MHD_Connection *conn, const char *url, const char *method,
				  const char *upload_data, size_t *upload_data_size, void **req_cls)
{
	ElRequest  *req = (ElRequest *) *req_cls;

	if (req == NULL)
	{
		MemoryContext cxt = AllocSetContextCreate(TopMemoryContext, "enterprise_lab HTTP request",
												  ALLOCSET_DEFAULT_SIZES);
		const char *length;

		req = MemoryContextAllocZero(cxt, sizeof(ElRequest));
		req->cxt = cxt;
		*req_cls = req;
		MemoryContextSwitchTo(cxt);
		initStringInfo(&req->body);

		/* Refuse an announced oversize body before reading any of it. */
		length = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
											 MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (length && strtoull(length, NULL, 10) > (unsigned long long) el_http_max_body)
			return el_respond_error(conn, MHD_HTTP_CONTENT_TOO_LARGE, "PGRST413",
									"Request body too large",
									psprintf("The limit is %d bytes.", el_http_max_body),
									"Raise enterprise_lab.http_max_body.");
		return MHD_YES;
	}

	MemoryContextSwitchTo(req->cxt);
	if (*upload_data_size > 0)
	{
		/* Read and forget the rest of a body that is too large. */
		if (!req->too_large &&
			req->body.len + *upload_data_size > (size_t) el_http_max_body)
		{
			req->too_large = true;
			pfree(req->body.data);
			initStringInfo(&req->body);
		}
		if (!req->too_large)
			appendBinaryStringInfo(&req->body, upload_data, *upload_data_size);
		*upload_data_size = 0;
		return MHD_YES;
	}

	if (req->too_large)
		return el_respond_error(conn, MHD_HTTP_CONTENT_TOO_LARGE, "PGRST413",
								"Request body too large",
								psprintf("The limit is %d bytes.", el_http_max_body),
								"Raise enterprise_lab.http_max_body.");

	if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
	{
		if ((strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
			 strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) || el_is_rpc(url))
			return el_respond_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "PGRST117",
									psprintf("Unsupported HTTP method %s for %s", method, url),
									NULL, "Functions are called with POST /rpc/<name>.");
		if (strcmp(url, "/health") == 0)
			return el_handle_health(conn);
		return el_serve_static(conn, url);
	}
	if (!el_is_rpc(url))
		return el_respond_error(conn, MHD_HTTP_NOT_FOUND, "PGRST125",
								"Invalid path specified in request URL",
								NULL, "Functions are called with POST /rpc/<name>.");
	return el_handle_rpc(conn, url, req);
}

/*
 * What libmicrohttpd calls: el_handle_request inside PG_TRY, so that no
 * ERROR longjmps through libmicrohttpd.  Errors the handler did not turn
 * into a response itself become a 500.
 */
static enum MHD_Result
el_access_handler(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload_data,
				  size_t *upload_data_size, void **req_cls)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	volatile enum MHD_Result result = MHD_NO;
	volatile bool failed = false;

	PG_TRY();
	{
		result = el_handle_request(conn, url, method, upload_data, upload_data_size, req_cls);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcxt);
		EmitErrorReport();
		FlushErrorState();
		AbortOutOfAnyTransaction();
		failed = true;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(oldcxt);

	if (failed)
	{
		static const char body[] =
			"{\"code\":\"XX000\",\"message\":\"internal error in the gateway\",\"details\":null,\"hint\":\"See the server log.\"}";

		*upload_data_size = 0;
		result = el_respond(conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
							"application/json; charset=utf-8", body, sizeof(body) - 1);
	}
	return result;
}

static void
el_request_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
					 enum MHD_RequestTerminationCode toe)
{
	ElRequest  *req = (ElRequest *) *req_cls;

	if (req)
	{
		MemoryContextDelete(req->cxt);
		*req_cls = NULL;
	}
}

/*
 * libmicrohttpd's own percent-decoding, except that a URL containing %00 is
 * left undecoded: a NUL would cut the path short ("/rpc/f%00x" would call
 * f), and the '%' left in place makes every route refuse it.
 */
static size_t
el_unescape(void *cls, struct MHD_Connection *conn, char *s)
{
	for (const char *p = s; (p = strchr(p, '%')) != NULL; p++)
		if (p[1] == '0' && p[2] == '0')
			return strlen(s);
	return MHD_http_unescape(s);
}

static void el_mhd_log(void *cls, const char *fmt, va_list ap) pg_attribute_printf(2, 0);

static void
el_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char		message[512];

	vsnprintf(message, sizeof(message), fmt, ap);
	/* libmicrohttpd's messages end with a newline */
	message[strcspn(message, "\n")] = '\0';
	ereport(LOG, (errmsg("enterprise_lab gateway: %s", message)));
}

/* ---------------------------------------------------------------------
 * The worker
 * ---------------------------------------------------------------------
 */

static struct MHD_Daemon *
el_start_daemon(void)
{
	struct addrinfo hints = {0};
	struct addrinfo *addr;
	struct MHD_Daemon *daemon;
	char		port[16];
	int			rc;

	snprintf(port, sizeof(port), "%d", el_http_port);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	rc = getaddrinfo(el_http_listen, port, &hints, &addr);
	if (rc != 0)
		ereport(FATAL,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("enterprise_lab gateway: invalid enterprise_lab.http_listen \"%s\": %s",
						el_http_listen, gai_strerror(rc))));

	daemon = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_ERROR_LOG |
							  (addr->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0),
							  (uint16_t) el_http_port,
							  NULL, NULL,
							  el_access_handler, NULL,
							  MHD_OPTION_EXTERNAL_LOGGER, el_mhd_log, NULL,
							  MHD_OPTION_SOCK_ADDR, addr->ai_addr,
							  MHD_OPTION_CONNECTION_LIMIT, (unsigned int) EL_HTTP_MAX_CONNECTIONS,
							  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int) EL_HTTP_IDLE_TIMEOUT,
							  MHD_OPTION_NOTIFY_COMPLETED, el_request_completed, NULL,
							  MHD_OPTION_UNESCAPE_CALLBACK, el_unescape, NULL,
							  MHD_OPTION_END);
	freeaddrinfo(addr);
	if (daemon == NULL)
		ereport(FATAL,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("enterprise_lab gateway: could not listen on %s port %d",
						el_http_listen, el_http_port),
				 errhint("Is another server using the port?  Change enterprise_lab.http_port or enterprise_lab.http_listen.")));
	return daemon;
}

void
el_gateway_main(Datum arg)
{
	Oid			dboid = DatumGetObjectId(arg);
	struct MHD_Daemon *daemon;
	const union MHD_DaemonInfo *info;
	WaitEventSet *events;
	char		share[MAXPGPATH];
	char		candidate[MAXPGPATH];

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	/*
	 * Connect as the bootstrap superuser by name, not "no user": that sets
	 * session_authorization, which each request changes to the
	 * authenticator with SET LOCAL and which must revert at transaction end.
	 */
	BackgroundWorkerInitializeConnectionByOid(dboid, BOOTSTRAP_SUPERUSERID, 0);
	pgstat_report_appname("enterprise_lab gateway");
	gateway_has_database = OidIsValid(dboid);

	get_share_path(my_exec_path, share);
	snprintf(candidate, sizeof(candidate), "%s/extension/enterprise_lab_web", share);
	if (realpath(candidate, web_root) == NULL)
	{
		web_root[0] = '\0';
		ereport(LOG,
				(errmsg("enterprise_lab gateway: no dashboard files in \"%s\"", candidate),
				 errhint("Run make install in the enterprise_lab source tree.")));
	}

	el_load_libjwt();
	daemon = el_start_daemon();
	info = MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_EPOLL_FD);
	if (info == NULL)
		ereport(FATAL,
				(errmsg("enterprise_lab gateway: libmicrohttpd has no epoll file descriptor")));

	/* The set WaitLatchOrSocket would build on every call, built once. */
	events = el_create_process_wait_event_set(3);
	AddWaitEventToSet(events, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
	AddWaitEventToSet(events, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
	AddWaitEventToSet(events, WL_SOCKET_READABLE, info->epoll_fd, NULL, NULL);

	ereport(LOG,
			(errmsg("enterprise_lab gateway listening on %s port %d (%s)",
					el_http_listen, el_http_port,
					gateway_has_database ? psprintf("database \"%s\"", el_database)
					: psprintf("database \"%s\" does not exist yet: answering 503", el_database))));

	for (;;)
	{
		WaitEvent	event;
		MHD_UNSIGNED_LONG_LONG mhd_timeout;
		long		timeout = 1000;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		/* The launcher that started us is gone; its successor starts a new gateway. */
		if (el_shared && el_shared->launcher_pid != MyBgworkerEntry->bgw_notify_pid)
			proc_exit(0);

		if (MHD_get_timeout(daemon, &mhd_timeout) == MHD_YES)
			timeout = (long) Min(mhd_timeout, (MHD_UNSIGNED_LONG_LONG) timeout);

		if (WaitEventSetWait(events, timeout, &event, 1, PG_WAIT_EXTENSION) > 0 &&
			(event.events & WL_LATCH_SET))
			ResetLatch(MyLatch);

		MemoryContextSwitchTo(TopMemoryContext);
		MHD_run(daemon);
	}
}
