/*
 * gateway.c
 *		The built-in HTTP gateway's process: its settings, the libmicrohttpd
 *		daemon, the loop that drives it, and the request handler that sends
 *		each request to its concern (http_static.c, http_rpc.c,
 *		http_original.c, http_health.c, http_metrics.c, http_openapi.c;
 *		http_auth.c says who it runs as).
 *
 * libmicrohttpd runs in epoll mode without any thread of its own: it hands
 * us one epoll file descriptor that becomes readable when the listening
 * socket or any client socket is ready.  The worker waits on that fd and on
 * its latch together and calls MHD_run() when something is ready, so every
 * libmicrohttpd callback runs on this process's only thread, where SPI is
 * allowed.  No ERROR may unwind through libmicrohttpd's frames, so every
 * callback body runs inside PG_TRY and turns errors into HTTP responses.
 *
 * The launcher (launcher.c) starts the gateway in enterprise_lab.database,
 * or, while that database does not exist, connected to no database: it then
 * serves the static files and answers 503 to everything else, and the
 * launcher replaces it once the database appears.
 */
#include "postgres.h"

#include <limits.h>
#include <stdlib.h>

#include <microhttpd.h>

#include "access/xact.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "enterprise_lab.h"
#include "gateway.h"

/* Seconds a client connection may stay idle between requests. */
#define EL_HTTP_IDLE_TIMEOUT 10

int			el_http_port = 0;
char	   *el_http_listen = NULL;
int			el_http_workers = 2;
int			el_http_max_connections_per_ip = 32;
char	   *el_http_anon_role = NULL;
char	   *el_http_authenticator = NULL;
char	   *el_jwt_secret = NULL;
int			el_http_max_body = 16 * 1024 * 1024;
int			el_http_max_buffered = 64 * 1024 * 1024;
int			el_http_read_timeout_ms = 30000;
int			el_http_request_timeout_ms = 30000;
char	   *el_http_host_names = NULL;
char	   *el_http_cors_origins = NULL;

int			el_metrics_access = EL_METRICS_ANONYMOUS;

bool		el_gateway_has_database = false;

static const struct config_enum_entry el_metrics_access_options[] = {
	{"anonymous", EL_METRICS_ANONYMOUS, false},
	{"authenticated", EL_METRICS_AUTHENTICATED, false},
	{"off", EL_METRICS_OFF, false},
	{NULL, 0, false}
};

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

	DefineCustomIntVariable("enterprise_lab.http_max_connections_per_ip",
							"Connections one client address may hold open to one gateway process.",
							"Each process serves at most 64 connections at once.",
							&el_http_max_connections_per_ip,
							32, 1, EL_HTTP_MAX_CONNECTIONS,
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

	DefineCustomIntVariable("enterprise_lab.http_workers",
							"Number of gateway processes serving the HTTP port.",
							"They accept from one listening socket, so one slow call holds only its own process.",
							&el_http_workers,
							2, 1, EL_MAX_HTTP_WORKERS,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("enterprise_lab.http_read_timeout",
							"Time a client has to send a whole request, headers and body.",
							"A total deadline, not an idle timeout: a client that sends slowly is cut off too.",
							&el_http_read_timeout_ms,
							30000, 1000, 3600 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("enterprise_lab.http_max_buffered",
							"Request-body bytes all gateway processes hold in memory together.",
							"A request that would exceed it is answered with 503.",
							&el_http_max_buffered,
							64 * 1024 * 1024, 1024, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_BYTE,
							NULL, NULL, NULL);

	DefineCustomStringVariable("enterprise_lab.http_host_names",
							   "Host names the gateway answers to, besides localhost, 127.0.0.1, [::1] and its listen address.",
							   "Comma-separated.  Requests naming another Host get 421 (a defence against DNS rebinding).",
							   &el_http_host_names,
							   "",
							   PGC_SIGHUP,
							   0,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("enterprise_lab.http_cors_origins",
							   "Origins other sites' pages may call the gateway from (CORS).",
							   "Comma-separated, e.g. https://app.example.com.  Empty: same-origin only.",
							   &el_http_cors_origins,
							   "",
							   PGC_SIGHUP,
							   0,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("enterprise_lab.http_anon_role",
							   "Role the gateway runs requests without a token as.",
							   NULL,
							   &el_http_anon_role,
							   "lab_anon",
							   PGC_SIGHUP,
							   0,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("enterprise_lab.http_authenticator",
							   "Role the gateway connects as; each request switches from it to the request's role.",
							   "It must be able to log in and must not be a superuser.  A JWT role claim is honoured only if this role is a member of it, as with PostgREST's authenticator.",
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

	DefineCustomEnumVariable("enterprise_lab.metrics_access",
							 "Who may read GET /metrics (Prometheus): anonymous, authenticated or off.",
							 "anonymous: anyone who reaches the port (aggregate numbers only); authenticated: a valid bearer token; off: 404.",
							 &el_metrics_access,
							 EL_METRICS_ANONYMOUS,
							 el_metrics_access_options,
							 PGC_SIGHUP,
							 0,
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
 * libmicrohttpd callbacks
 * ---------------------------------------------------------------------
 */

static bool
el_is_rpc(const char *url)
{
	return strncmp(url, "/rpc/", 5) == 0;
}

static enum MHD_Result
el_refuse_too_large(struct MHD_Connection *conn)
{
	return el_respond_error(conn, MHD_HTTP_CONTENT_TOO_LARGE, "PGRST413",
							"Request body too large",
							psprintf("The limit is %d bytes.", el_http_max_body),
							"Send a smaller body.");
}

/* CORS preflight: allowed origins (http_guard.c refused the others). */
static enum MHD_Result
el_handle_preflight(struct MHD_Connection *conn)
{
	struct MHD_Response *response = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);

	if (response == NULL)
		return MHD_NO;
	MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, "GET, HEAD, POST, PATCH, OPTIONS");
	el_add_cors_headers(response);
	MHD_add_response_header(response, "Access-Control-Allow-Methods", "GET, HEAD, POST, PATCH, OPTIONS");
	MHD_add_response_header(response, "Access-Control-Allow-Headers",
							"Authorization, Content-Type, Accept, Prefer");
	MHD_add_response_header(response, "Access-Control-Max-Age", "86400");
	return el_queue_response(conn, MHD_HTTP_NO_CONTENT, response);
}

/*
 * The first call for a request, with its headers in: check them
 * (http_guard.c) and count an announced body against the memory budget
 * before any of it is read.  Returns a refusal already queued, or MHD_YES
 * to go on reading.
 */
static enum MHD_Result
el_begin_request(struct MHD_Connection *conn, const char *url, const char *method,
				 const char *version, ElRequest *req)
{
	ElRefusal	refusal;
	const char *length;
	unsigned long long announced = 0;

	if (!el_guard_request(conn, url, method, version, &refusal))
		return el_respond_close(conn, refusal.status, refusal.code, refusal.message);

	length = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (length)
		announced = strtoull(length, NULL, 10);
	/* Refuse an announced oversize body before reading any of it. */
	if (announced > (unsigned long long) el_http_max_body)
	{
		el_refuse_too_large(conn);
		return MHD_YES;
	}
	if (!el_reserve_body(req, announced))
		return el_respond_close(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "EL503",
								"The server is busy receiving other requests; try again");
	return MHD_YES;
}

/*
 * The request handler proper.  libmicrohttpd calls it once when the headers
 * are in (*req_cls == NULL), once per piece of body, and once more with
 * *upload_data_size == 0 when the whole request is in.  We answer on that
 * last call: a response queued earlier makes libmicrohttpd close the
 * connection, which is right only for a request we refuse unread.
 */
static enum MHD_Result
el_handle_request(struct MHD_Connection *conn, const char *url, const char *method,
				  const char *version, const char *upload_data, size_t *upload_data_size,
				  void **req_cls)
{
	ElRequest  *req = (ElRequest *) *req_cls;
	const char *origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");

	el_set_response_origin(el_origin_allowed(origin) ? origin : NULL);

	if (req == NULL)
	{
		MemoryContext cxt = AllocSetContextCreate(TopMemoryContext, "enterprise_lab HTTP request",
												  ALLOCSET_DEFAULT_SIZES);

		req = MemoryContextAllocZero(cxt, sizeof(ElRequest));
		req->cxt = cxt;
		*req_cls = req;
		MemoryContextSwitchTo(cxt);
		initStringInfo(&req->body);
		return el_begin_request(conn, url, method, version, req);
	}

	MemoryContextSwitchTo(req->cxt);
	if (*upload_data_size > 0)
	{
		size_t		n = *upload_data_size;

		/* Past its deadline: close without an answer. */
		if (el_request_overdue(conn))
			return MHD_NO;
		*upload_data_size = 0;
		if (!req->too_large && req->body.len + n > (size_t) el_http_max_body)
		{
			/* Read and forget the rest of a body that is too large. */
			req->too_large = true;
			pfree(req->body.data);
			initStringInfo(&req->body);
			el_release_body(req);
		}
		if (req->too_large)
			return MHD_YES;
		/* A chunked body was not counted in advance: count it as it comes. */
		if (req->body.len + n > req->reserved &&
			!el_reserve_body(req, req->body.len + n - req->reserved))
			return MHD_NO;
		appendBinaryStringInfo(&req->body, upload_data, n);
		return MHD_YES;
	}

	el_request_received(conn);
	if (req->too_large)
		return el_refuse_too_large(conn);

	if (strcmp(method, MHD_HTTP_METHOD_OPTIONS) == 0)
		return el_handle_preflight(conn);
	if (el_is_original_path(url))
		return el_handle_original(conn, url, method, req);
	if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
	{
		if ((strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
			 strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) || el_is_rpc(url))
			return el_respond_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "PGRST117",
									psprintf("Unsupported HTTP method %s for %s", method, url),
									NULL, "Functions are called with POST /rpc/<name>.");
		if (strcmp(url, "/health") == 0)
			return el_handle_health(conn);
		if (strcmp(url, "/metrics") == 0)
			return el_handle_metrics(conn);
		if (strcmp(url, "/openapi.json") == 0)
			return el_handle_openapi(conn);
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
		result = el_handle_request(conn, url, method, version, upload_data,
								   upload_data_size, req_cls);
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
	el_set_response_origin(NULL);
	return result;
}

static void
el_request_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
					 enum MHD_RequestTerminationCode toe)
{
	ElRequest  *req = (ElRequest *) *req_cls;

	if (req)
	{
		el_release_body(req);
		MemoryContextDelete(req->cxt);
		*req_cls = NULL;
	}
	el_response_sent(conn);
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

/*
 * libmicrohttpd's messages, at most one a minute: clients decide how often
 * it has something to say ("Server reached connection limit" for every
 * refused connection), and they must not be able to flood the log.
 */
static void
el_mhd_log(void *cls, const char *fmt, va_list ap)
{
	static TimestampTz last_logged = 0;
	static int	suppressed = 0;
	TimestampTz now = GetCurrentTimestamp();
	char		message[512];

	if (!TimestampDifferenceExceeds(last_logged, now, 60 * 1000))
	{
		suppressed++;
		return;
	}
	vsnprintf(message, sizeof(message), fmt, ap);
	/* libmicrohttpd's messages end with a newline */
	message[strcspn(message, "\n")] = '\0';
	ereport(LOG,
			(errmsg("enterprise_lab gateway: %s", message),
			 suppressed > 0 ? errdetail("%d more messages of libmicrohttpd in the last minute were not logged.",
										suppressed) : 0));
	last_logged = now;
	suppressed = 0;
}

/* ---------------------------------------------------------------------
 * The process
 * ---------------------------------------------------------------------
 */

static struct MHD_Daemon *
el_start_daemon(void)
{
	struct MHD_Daemon *daemon;

	if (el_http_listen_socket == PGINVALID_SOCKET)
		ereport(FATAL,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("enterprise_lab gateway: %s", el_http_listen_error[0] ? el_http_listen_error
						: "the server did not open the gateway's port"),
				 errhint("Free the port or change enterprise_lab.http_port or enterprise_lab.http_listen, and restart the server.")));

	/*
	 * The listening socket is the postmaster's, shared by every gateway
	 * process (http_listen.c).  Strict mode makes libmicrohttpd refuse what
	 * RFC 9112 calls malformed (http_guard.c checks the rest).
	 */
	daemon = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_ERROR_LOG,
							  0,
							  NULL, NULL,
							  el_access_handler, NULL,
							  MHD_OPTION_EXTERNAL_LOGGER, el_mhd_log, NULL,
							  MHD_OPTION_LISTEN_SOCKET, (MHD_socket) el_http_listen_socket,
							  MHD_OPTION_STRICT_FOR_CLIENT, (int) 1,
							  MHD_OPTION_CONNECTION_LIMIT, (unsigned int) EL_HTTP_MAX_CONNECTIONS,
							  MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int) el_http_max_connections_per_ip,
							  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int) EL_HTTP_IDLE_TIMEOUT,
							  MHD_OPTION_NOTIFY_CONNECTION, el_connection_notify, NULL,
							  MHD_OPTION_NOTIFY_COMPLETED, el_request_completed, NULL,
							  MHD_OPTION_UNESCAPE_CALLBACK, el_unescape, NULL,
							  MHD_OPTION_END);
	if (daemon == NULL)
		ereport(FATAL,
				(errmsg("enterprise_lab gateway: libmicrohttpd could not start on the listening socket")));
	return daemon;
}

static ElGatewaySlot *my_slot = NULL;

static void
el_release_gateway_slot(int code, Datum arg)
{
	if (my_slot == NULL)
		return;
	SpinLockAcquire(&my_slot->mutex);
	if (my_slot->pid == MyProcPid)
	{
		my_slot->pid = 0;
		my_slot->latch = NULL;
	}
	SpinLockRelease(&my_slot->mutex);
	my_slot = NULL;
}

void
el_gateway_main(Datum arg)
{
	Oid			dboid = DatumGetObjectId(arg);
	ElGatewayStart start;
	struct MHD_Daemon *daemon;
	const union MHD_DaemonInfo *info;
	WaitEventSet *events;
	char		appname[NAMEDATALEN];

	memcpy(&start, MyBgworkerEntry->bgw_extra, sizeof(start));

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	/*
	 * Connect as the authenticator, never as a superuser: a request runs
	 * SET LOCAL ROLE from it, and no code a request reaches can become
	 * anyone the authenticator may not (SET SESSION AUTHORIZATION needs a
	 * superuser login).  Without a database there is no role either: that
	 * gateway only serves files.
	 */
	BackgroundWorkerInitializeConnectionByOid(dboid, start.roleoid, 0);
	snprintf(appname, sizeof(appname), "enterprise_lab gateway %d", start.index + 1);
	pgstat_report_appname(appname);
	el_gateway_has_database = OidIsValid(dboid);

	if (el_shared == NULL || start.index < 0 || start.index >= EL_MAX_HTTP_WORKERS)
		ereport(FATAL,
				(errmsg("enterprise_lab gateway started without shared memory"),
				 errhint("Add enterprise_lab to shared_preload_libraries.")));
	/* As a worker does (worker.c): a free slot, and our launcher still in charge. */
	my_slot = &el_shared->gateways[start.index];
	SpinLockAcquire(&my_slot->mutex);
	if (my_slot->pid != 0)
	{
		SpinLockRelease(&my_slot->mutex);
		my_slot = NULL;
		proc_exit(0);
	}
	my_slot->pid = MyProcPid;
	my_slot->latch = MyLatch;
	SpinLockRelease(&my_slot->mutex);
	before_shmem_exit(el_release_gateway_slot, (Datum) 0);
	pg_memory_barrier();
	if (el_shared->launcher_pid != MyBgworkerEntry->bgw_notify_pid)
		proc_exit(0);
	before_shmem_exit(el_release_all_bodies, (Datum) 0);

	el_static_init();
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
			(errmsg("enterprise_lab gateway %d listening on %s port %d (%s)",
					start.index + 1, el_http_listen, el_http_port,
					el_gateway_has_database ? psprintf("database \"%s\"", el_database)
					: "no database: answering 503")));

	for (;;)
	{
		WaitEvent	event;
		MHD_UNSIGNED_LONG_LONG mhd_timeout;
		long		timeout;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		/* The launcher that started us is gone; its successor starts a new gateway. */
		if (el_shared->launcher_pid != MyBgworkerEntry->bgw_notify_pid)
			proc_exit(0);

		timeout = el_enforce_deadlines(1000);
		if (MHD_get_timeout(daemon, &mhd_timeout) == MHD_YES)
			timeout = (long) Min(mhd_timeout, (MHD_UNSIGNED_LONG_LONG) timeout);

		if (WaitEventSetWait(events, timeout, &event, 1, PG_WAIT_EXTENSION) > 0 &&
			(event.events & WL_LATCH_SET))
			ResetLatch(MyLatch);

		MemoryContextSwitchTo(TopMemoryContext);
		el_enforce_deadlines(1000);
		MHD_run(daemon);
	}
}
