/*
 * gateway.c
 *		The built-in HTTP gateway's process: its settings, the libmicrohttpd
 *		daemon, the loop that drives it, and the request handler that sends
 *		each request to its concern (http_static.c, http_rpc.c,
 *		http_health.c; http_auth.c says who it runs as).
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
#include <netdb.h>
#include <stdlib.h>

#include <microhttpd.h>

#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "enterprise_lab.h"
#include "gateway.h"

/* Connections served at once; more wait in the listen backlog. */
#define EL_HTTP_MAX_CONNECTIONS 64
/* Seconds a client connection may stay idle (slow clients are dropped). */
#define EL_HTTP_IDLE_TIMEOUT 10

int			el_http_port = 0;
char	   *el_http_listen = NULL;
char	   *el_http_anon_role = NULL;
char	   *el_http_authenticator = NULL;
char	   *el_jwt_secret = NULL;
int			el_http_max_body = 16 * 1024 * 1024;
int			el_http_request_timeout_ms = 30000;

bool		el_gateway_has_database = false;

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
							   "HS256 secret that signs the gateway's JSON Web Tokens.",
							   "Empty: every request with a token is refused.",
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
	el_gateway_has_database = OidIsValid(dboid);

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
			(errmsg("enterprise_lab gateway listening on %s port %d (%s)",
					el_http_listen, el_http_port,
					el_gateway_has_database ? psprintf("database \"%s\"", el_database)
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
