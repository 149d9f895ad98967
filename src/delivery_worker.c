/*
 * delivery_worker.c
 *		The delivery worker: sends webhooks with no transaction open.
 *
 * One background worker per server, started by the launcher.  It runs a
 * pipeline:
 *
 *	1. lease due deliveries (integration.claim_deliveries: in flight until
 *	   the lease ends) in a short transaction, and commit;
 *	2. sign each one (webhook_sign.c) and hand it to libcurl's multi
 *	   interface, which sends many at once over kept-alive connections;
 *	3. wait on curl's sockets and the latch together, in one WaitEventSet,
 *	   driving curl with curl_multi_socket_action;
 *	4. record the answers that came (integration.record_delivery_outcomes)
 *	   in a short transaction, and lease more when there is room.
 *
 * No transaction, snapshot or lock is held while a request is in flight, so
 * a stalled receiver holds nothing in the database.  A worker that dies
 * leaves its deliveries in flight until their lease ends; then they are due
 * again (at least once; the receiver de-duplicates on webhook-id).
 *
 * libcurl's callbacks (sockets, timer, open-socket, header, write) only copy
 * into memory allocated beforehand: they never palloc or ereport, so no
 * error ever unwinds through libcurl's frames.  Interrupts are checked
 * between curl calls, never inside them.
 */
#include "postgres.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <curl/curl.h>

#include "access/xact.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "enterprise_lab.h"
#include "webhook.h"

/* Bytes of a response kept as its excerpt, and read at most. */
#define EL_EXCERPT_LEN 256
#define EL_RESPONSE_READ_LIMIT (64 * 1024)

/* Settings (enterprise_lab.delivery_*) */
static bool el_delivery_worker_enabled = true;
static int	el_delivery_batch_size = 1000;
static int	el_delivery_max_connections = 64;
static int	el_delivery_lease_ms = 120 * 1000;
static int	el_delivery_max_attempts = 8;
static int	el_delivery_backoff_base_ms = 5000;
static int	el_delivery_backoff_max_ms = 3600 * 1000;
static int	el_delivery_failure_threshold = 50;

/*
 * Shared state of the delivery worker.  mutex guards every field; the
 * worker writes them, the status function and committing backends read.
 */
typedef struct ElDeliveryShared
{
	slock_t		mutex;
	pid_t		pid;
	Latch	   *latch;
	TimestampTz started_at;
	uint64		sent;			/* attempts finished (any outcome) */
	uint64		delivered;		/* 2xx answers */
	uint64		failed;			/* other answers, timeouts, connection errors */
	uint64		refused;		/* refused by the address policy */
	int			in_flight;
	TimestampTz last_outcome_at;
} ElDeliveryShared;

static ElDeliveryShared *delivery_shared = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* Set when this transaction wrote deliveries or changed a subscription. */
static bool wake_delivery_at_commit = false;

/* One delivery being sent.  Everything libcurl's callbacks touch is here. */
typedef struct ElDelivery
{
	CURL	   *easy;
	struct curl_slist *headers;
	char	   *id;				/* uuid text: the webhook-id */
	int			attempt;
	char	   *url;
	char	   *body;
	size_t		body_len;
	TimestampTz started;
	long		http_status;
	int			retry_after;	/* seconds, -1 when absent */
	size_t		response_seen;
	size_t		excerpt_len;
	char		excerpt[EL_EXCERPT_LEN + 1];
	bool		refused;
	char		refused_why[128];
	char		errbuf[CURL_ERROR_SIZE];
	CURLcode	result;
	long		timeout_ms;		/* the request's own time limit */
	TimestampTz lease_ends;		/* no later than the lease the database holds */
	bool		in_multi;		/* handed to curl */
} ElDelivery;

/* The multi handle and the sockets libcurl asked us to watch. */
typedef struct ElSocket
{
	curl_socket_t fd;
	int			what;			/* CURL_POLL_IN / OUT / INOUT */
	int			pos;			/* position in the wait event set, -1: not in it */
	bool		modified;		/* what changed since the set last saw it */
} ElSocket;

static CURLM *multi = NULL;
static ElSocket *sockets = NULL;
static int	nsockets = 0;
static int	max_sockets = 0;
static bool sockets_added = false;	/* some socket is not in the set yet */
static bool sockets_modified = false;	/* some socket's events changed */
static bool sockets_removed = false;	/* the set must be made again */
static bool sockets_overflow = false;
static long curl_timeout_ms = -1;	/* from the timer callback; -1: none */
static TimestampTz curl_timeout_set_at = 0;

/*
 * Leased deliveries wait in a queue of our own and are handed to curl only
 * while it has a connection free: newer libcurl counts the time a transfer
 * waits for a connection in its timeout, so a queue inside curl would time
 * requests out that were never sent.
 */
#define EL_DELIVERIES_HELD_MAX 10000	/* the largest enterprise_lab.delivery_batch_size */
static ElDelivery **waiting = NULL;	/* leased, prepared, not yet with curl (a ring) */
static int	nwaiting = 0;
static int	waiting_first = 0;
static ElDelivery **flight = NULL;	/* deliveries handed to curl */
static int	nflight = 0;
static int	max_flight = 0;			/* leased and held here at most */
static ElDelivery **done = NULL;	/* answered, not yet recorded */
static int	ndone = 0;
static TimestampTz first_done_at = 0;	/* when the oldest of them came */

/*
 * Answers are recorded together: once a round of connections' worth came,
 * when nothing else is in flight, or when the oldest has waited this long.
 */
#define EL_RECORD_WAIT_MS 5

static void
el_answered(ElDelivery *d)
{
	if (ndone == 0)
		first_done_at = GetCurrentTimestamp();
	done[ndone++] = d;
}

static bool
el_record_due(TimestampTz now)
{
	return ndone > 0 &&
		(ndone >= el_delivery_max_connections || nflight == 0 ||
		 TimestampDifferenceExceeds(first_done_at, now, EL_RECORD_WAIT_MS));
}

/*
 * New deliveries (the latch) are leased as soon as there is room.  What
 * answers may have released, or a full lease left behind, is leased when
 * less than a round of requests is queued: fewer, larger leases.
 */
static bool
el_claim_due(bool wanted, bool later)
{
	return (wanted || (later && nwaiting < el_delivery_max_connections)) &&
		nflight + nwaiting < max_flight;
}

static MemoryContext delivery_cxt = NULL;
static SPIPlanPtr claim_plan = NULL;
static SPIPlanPtr record_plan = NULL;

void
el_delivery_init(void)
{
	DefineCustomBoolVariable("enterprise_lab.delivery_worker",
							 "Runs the webhook delivery worker.",
							 "Needs a max_worker_processes slot.",
							 &el_delivery_worker_enabled,
							 true,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("enterprise_lab.delivery_batch_size",
							"Most webhook deliveries in flight at once.",
							NULL,
							&el_delivery_batch_size,
							1000, 1, 10000,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("enterprise_lab.delivery_max_connections",
							"Most connections the delivery worker keeps open.",
							"Read when the worker starts.",
							&el_delivery_max_connections,
							64, 1, 1024,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("enterprise_lab.delivery_lease",
							"How long a leased delivery stays in flight before it is due again.",
							"Covers a delivery worker that died; requests time out a second before it.",
							&el_delivery_lease_ms,
							120 * 1000, 2000, 24 * 3600 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("enterprise_lab.delivery_max_attempts",
							"Attempts after which a failing delivery is dead-lettered.",
							NULL,
							&el_delivery_max_attempts,
							8, 1, 1000,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("enterprise_lab.delivery_backoff_base",
							"Delay before the first retry of a failed delivery.",
							"Each further attempt doubles it (with jitter), up to enterprise_lab.delivery_backoff_max.",
							&el_delivery_backoff_base_ms,
							5000, 0, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("enterprise_lab.delivery_backoff_max",
							"Longest delay between two attempts of a delivery, Retry-After included.",
							NULL,
							&el_delivery_backoff_max_ms,
							3600 * 1000, 0, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("enterprise_lab.delivery_failure_threshold",
							"Consecutive failed attempts after which a subscription is paused.",
							NULL,
							&el_delivery_failure_threshold,
							50, 1, 1000000,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);
	el_webhook_address_define_gucs();
}

static void
el_delivery_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(ElDeliveryShared)));
}

static void
el_delivery_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	delivery_shared = ShmemInitStruct("enterprise_lab delivery", sizeof(ElDeliveryShared), &found);
	if (!found)
	{
		memset(delivery_shared, 0, sizeof(ElDeliveryShared));
		SpinLockInit(&delivery_shared->mutex);
	}
	LWLockRelease(AddinShmemInitLock);
}

/* Set the delivery worker's latch when a transaction that asked for it commits. */
static void
el_delivery_xact_callback(XactEvent event, void *arg)
{
	if ((event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT) &&
		wake_delivery_at_commit && delivery_shared != NULL)
	{
		Latch	   *latch;

		/*
		 * Not the worker's own transactions: a set latch makes the wait
		 * return before it looks at curl's sockets.
		 */
		SpinLockAcquire(&delivery_shared->mutex);
		latch = delivery_shared->pid != 0 && delivery_shared->pid != MyProcPid ? delivery_shared->latch : NULL;
		SpinLockRelease(&delivery_shared->mutex);
		if (latch)
			SetLatch(latch);
	}
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT ||
		event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT ||
		event == XACT_EVENT_PREPARE)
		wake_delivery_at_commit = false;
}

/* Shared memory and the commit wake-up; called from _PG_init when preloaded. */
void
el_delivery_shmem_init(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = el_delivery_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = el_delivery_shmem_startup;
}

PG_FUNCTION_INFO_V1(el_wake_delivery_worker_at_commit);
Datum
el_wake_delivery_worker_at_commit(PG_FUNCTION_ARGS)
{
	static bool registered = false;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("integration.wake_delivery_worker_at_commit() may only be called as a trigger")));
	if (!registered)
	{
		RegisterXactCallback(el_delivery_xact_callback, NULL);
		registered = true;
	}
	wake_delivery_at_commit = true;
	return PointerGetDatum(NULL);
}

/* ---- The launcher's side ---- */

static BackgroundWorkerHandle *delivery_handle = NULL;
static Oid	delivery_dboid = InvalidOid;
static TimestampTz delivery_started_at = 0;
static TimestampTz delivery_warned_at = 0;

static void
el_delivery_stop(void)
{
	TerminateBackgroundWorker(delivery_handle);
	(void) WaitForBackgroundWorkerShutdown(delivery_handle);
	pfree(delivery_handle);
	delivery_handle = NULL;
}

/*
 * Called by the launcher on every pass: keep one delivery worker running in
 * the database being served (none when it is missing or the worker is
 * turned off), restarting it a second after it stops.
 */
void
el_delivery_supervise(Oid dboid, long *timeout)
{
	pid_t		pid;
	TimestampTz now = GetCurrentTimestamp();

	if (delivery_handle && (!el_delivery_worker_enabled || delivery_dboid != dboid))
		el_delivery_stop();
	if (delivery_handle && GetBackgroundWorkerPid(delivery_handle, &pid) == BGWH_STOPPED)
	{
		pfree(delivery_handle);
		delivery_handle = NULL;
	}
	if (delivery_handle || !el_delivery_worker_enabled || !OidIsValid(dboid))
		return;

	if (TimestampDifferenceExceeds(delivery_started_at, now, 1000))
	{
		BackgroundWorker bgw;

		memset(&bgw, 0, sizeof(bgw));
		bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
		bgw.bgw_start_time = BgWorkerStart_RecoveryFinished;
		bgw.bgw_restart_time = BGW_NEVER_RESTART;	/* we restart it */
		snprintf(bgw.bgw_library_name, BGW_MAXLEN, "enterprise_lab");
		snprintf(bgw.bgw_function_name, BGW_MAXLEN, "el_delivery_worker_main");
		snprintf(bgw.bgw_name, BGW_MAXLEN, "enterprise_lab delivery");
		snprintf(bgw.bgw_type, BGW_MAXLEN, "enterprise_lab delivery");
		bgw.bgw_main_arg = ObjectIdGetDatum(dboid);
		bgw.bgw_notify_pid = MyProcPid;
		delivery_started_at = now;
		delivery_dboid = dboid;
		if (!RegisterDynamicBackgroundWorker(&bgw, &delivery_handle))
		{
			delivery_handle = NULL;
			/* Tried every second; said once a minute. */
			if (TimestampDifferenceExceeds(delivery_warned_at, now, 60 * 1000))
			{
				delivery_warned_at = now;
				ereport(WARNING,
						(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
						 errmsg("enterprise_lab: could not start the delivery worker: max_worker_processes is exhausted"),
						 errhint("Raise max_worker_processes, or set enterprise_lab.delivery_worker = off.")));
			}
		}
	}
	else
		*timeout = Min(*timeout, 1000L);
}

/* ---- libcurl callbacks: no palloc, no ereport ---- */

static int
el_curl_socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	for (int i = 0; i < nsockets; i++)
	{
		if (sockets[i].fd != fd)
			continue;
		if (what == CURL_POLL_REMOVE)
		{
			sockets[i] = sockets[--nsockets];
			sockets_removed = true;
		}
		else if (sockets[i].what != what)
		{
			sockets[i].what = what;
			sockets[i].modified = true;
			sockets_modified = true;
		}
		return 0;
	}
	if (what == CURL_POLL_REMOVE)
		return 0;
	if (nsockets >= max_sockets)
	{
		sockets_overflow = true;
		return -1;
	}
	sockets[nsockets].fd = fd;
	sockets[nsockets].what = what;
	sockets[nsockets].pos = -1;
	sockets[nsockets].modified = false;
	nsockets++;
	sockets_added = true;
	return 0;
}

static int
el_curl_timer_cb(CURLM *m, long timeout_ms, void *userp)
{
	curl_timeout_ms = timeout_ms;
	curl_timeout_set_at = GetCurrentTimestamp();
	return 0;
}

/* Refuse loopback, private and link-local addresses after resolution. */
static curl_socket_t
el_curl_opensocket_cb(void *clientp, curlsocktype purpose, struct curl_sockaddr *address)
{
	ElDelivery *d = (ElDelivery *) clientp;
	const char *why;

	if (!el_webhook_address_allowed(&address->addr, &why))
	{
		char		text[INET6_ADDRSTRLEN] = "?";

		if (address->family == AF_INET)
			inet_ntop(AF_INET, &((struct sockaddr_in *) &address->addr)->sin_addr, text, sizeof(text));
		else if (address->family == AF_INET6)
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *) &address->addr)->sin6_addr, text, sizeof(text));
		d->refused = true;
		snprintf(d->refused_why, sizeof(d->refused_why),
				 "refused to connect to %s: %s (see enterprise_lab.delivery_allowed_networks)", text, why);
		return CURL_SOCKET_BAD;
	}
	return socket(address->family, address->socktype, address->protocol);
}

static size_t
el_curl_write_cb(char *data, size_t size, size_t nmemb, void *userp)
{
	ElDelivery *d = (ElDelivery *) userp;
	size_t		n = size * nmemb;

	if (d->excerpt_len < EL_EXCERPT_LEN)
	{
		size_t		take = Min(n, EL_EXCERPT_LEN - d->excerpt_len);

		memcpy(d->excerpt + d->excerpt_len, data, take);
		d->excerpt_len += take;
	}
	d->response_seen += n;
	/* Stop reading an answer that keeps coming: its status is known. */
	return d->response_seen > EL_RESPONSE_READ_LIMIT ? 0 : n;
}

static size_t
el_curl_header_cb(char *data, size_t size, size_t nitems, void *userp)
{
	ElDelivery *d = (ElDelivery *) userp;
	size_t		n = size * nitems;
	static const char name[] = "retry-after:";

	if (n > sizeof(name) - 1 && pg_strncasecmp(data, name, sizeof(name) - 1) == 0)
	{
		size_t		i = sizeof(name) - 1;
		long		secs = 0;
		bool		digits = false;

		while (i < n && (data[i] == ' ' || data[i] == '\t'))
			i++;
		/* Delay-seconds only; an HTTP-date falls back to the backoff. */
		while (i < n && data[i] >= '0' && data[i] <= '9' && secs < 100000000)
		{
			secs = secs * 10 + (data[i] - '0');
			digits = true;
			i++;
		}
		if (digits)
			d->retry_after = (int) Min(secs, (long) INT_MAX);
	}
	return n;
}

/* ---- Sending ---- */

static void
el_delivery_add(ElDelivery *d, char *secret, Datum header_lines, bool lines_null,
				int timeout_ms)
{
	char		line[256];
	char		signature[EL_WEBHOOK_SIGNATURE_LEN];
	int64		now_s = (int64) time(NULL);
	struct curl_slist *h = NULL;
	CURL	   *easy;

	d->retry_after = -1;
	d->started = GetCurrentTimestamp();

	if (!el_webhook_sign(secret, d->id, now_s, d->body, d->body_len, signature))
	{
		d->result = CURLE_ABORTED_BY_CALLBACK;
		snprintf(d->errbuf, sizeof(d->errbuf), "the subscription's signing secret is not usable");
		el_answered(d);
		return;
	}

	h = curl_slist_append(h, "Content-Type: application/cloudevents+json");
	h = curl_slist_append(h, "Expect:");
	snprintf(line, sizeof(line), "webhook-id: %s", d->id);
	h = curl_slist_append(h, line);
	snprintf(line, sizeof(line), "webhook-timestamp: " INT64_FORMAT, now_s);
	h = curl_slist_append(h, line);
	snprintf(line, sizeof(line), "webhook-signature: %s", signature);
	h = curl_slist_append(h, line);
	if (!lines_null)
	{
		ArrayType  *arr = DatumGetArrayTypeP(header_lines);
		Datum	   *elems;
		bool	   *nulls;
		int			n;

		deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
		for (int i = 0; i < n; i++)
			if (!nulls[i])
				h = curl_slist_append(h, TextDatumGetCString(elems[i]));
	}
	d->headers = h;

	easy = curl_easy_init();
	if (easy == NULL || h == NULL)
	{
		curl_slist_free_all(h);
		d->headers = NULL;
		if (easy)
			curl_easy_cleanup(easy);
		d->result = CURLE_OUT_OF_MEMORY;
		snprintf(d->errbuf, sizeof(d->errbuf), "out of memory preparing the request");
		el_answered(d);
		return;
	}
	d->easy = easy;
	curl_easy_setopt(easy, CURLOPT_URL, d->url);
	curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(easy, CURLOPT_POST, 1L);
	curl_easy_setopt(easy, CURLOPT_POSTFIELDS, d->body);
	curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) d->body_len);
	curl_easy_setopt(easy, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(easy, CURLOPT_USERAGENT, "enterprise_lab-webhooks");
	/* The lease must outlast the request, or it would be sent twice. */
	d->timeout_ms = (long) Min(timeout_ms, el_delivery_lease_ms - 1000);
	curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, d->timeout_ms);
	curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, (long) Min(timeout_ms, 10000));
	curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, el_curl_opensocket_cb);
	curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, d);
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, el_curl_write_cb);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, d);
	curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, el_curl_header_cb);
	curl_easy_setopt(easy, CURLOPT_HEADERDATA, d);
	curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, d->errbuf);
	curl_easy_setopt(easy, CURLOPT_PRIVATE, d);
	waiting[(waiting_first + nwaiting++) % EL_DELIVERIES_HELD_MAX] = d;
}

/*
 * Hand waiting deliveries to curl while it has a connection free.  One
 * whose lease would end before its request could time out is dropped
 * unsent: it is due again when its lease ends, and nothing is recorded.
 */
static void el_delivery_free(ElDelivery *d);

static void
el_start_waiting(void)
{
	TimestampTz now = GetCurrentTimestamp();

	while (nwaiting > 0 && nflight < el_delivery_max_connections)
	{
		ElDelivery *d = waiting[waiting_first];

		waiting_first = (waiting_first + 1) % EL_DELIVERIES_HELD_MAX;
		nwaiting--;
		if (TimestampDifferenceExceeds(now, d->lease_ends, (int) d->timeout_ms) &&
			curl_multi_add_handle(multi, d->easy) == CURLM_OK)
		{
			d->in_multi = true;
			flight[nflight++] = d;
		}
		else
			el_delivery_free(d);
	}
}

static void
el_keep_plans(void)
{
	if (claim_plan == NULL)
	{
		Oid			types[2] = {INT4OID, INTERVALOID};

		claim_plan = SPI_prepare("SELECT id::text, attempt, url, secret, header_lines, timeout_ms, body"
								 "  FROM integration.claim_deliveries($1, $2)", 2, types);
		if (claim_plan == NULL)
			elog(ERROR, "enterprise_lab: SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(claim_plan);
	}
	if (record_plan == NULL)
	{
		Oid			types[11] = {UUIDARRAYOID, INT4ARRAYOID, INT4ARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
		INT4ARRAYOID, FLOAT8ARRAYOID, INT4OID, INT4OID, INT4OID, INT4OID};

		record_plan = SPI_prepare("SELECT integration.record_delivery_outcomes($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
								  11, types);
		if (record_plan == NULL)
			elog(ERROR, "enterprise_lab: SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(record_plan);
	}
}

/*
 * Start a short transaction with SPI, unless the extension (in a version
 * with deliveries) is not installed.  DROP EXTENSION locks the extension
 * first: holding a share lock on it makes a concurrent DROP wait for us.
 */
static bool
el_begin(const char *activity)
{
	Oid			extoid;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	extoid = get_extension_oid("enterprise_lab", true);
	if (OidIsValid(extoid))
	{
		LockDatabaseObject(ExtensionRelationId, extoid, 0, AccessShareLock);
		if (get_extension_oid("enterprise_lab", true) != extoid)
			extoid = InvalidOid;
	}
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (OidIsValid(extoid))
	{
		int			rc = SPI_execute("SELECT pg_catalog.to_regprocedure('integration.claim_deliveries(integer, interval)') IS NOT NULL",
									 true, 1);

		if (rc != SPI_OK_SELECT || SPI_processed != 1 ||
			strcmp(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1), "t") != 0)
			extoid = InvalidOid;
	}
	if (!OidIsValid(extoid))
	{
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
		return false;
	}
	pgstat_report_activity(STATE_RUNNING, activity);
	return true;
}

static void
el_end(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
}

static bool reported_distributed = false;

/*
 * Lease up to "room" deliveries and hand them to curl.  Returns how many
 * were leased, or -1 when the extension is not installed here.
 */
static int
el_claim(int room)
{
	Datum		args[2];
	int			n;
	Interval   *lease;

	TimestampTz lease_ends = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), el_delivery_lease_ms);

	if (!el_begin("enterprise_lab: leasing deliveries"))
		return -1;

	/*
	 * On Citus the deliveries are distributed, and the claim, a multi-shard
	 * FOR UPDATE, is refused: they wait (docs/architecture.md).
	 */
	if (el_table_is_distributed("integration.deliveries"))
	{
		if (!reported_distributed)
			ereport(LOG,
					(errmsg("enterprise_lab: the delivery worker is idle: integration.deliveries is distributed by Citus"),
					 errdetail("Webhook deliveries are written but not sent on a Citus cluster.")));
		reported_distributed = true;
		el_end();
		return 0;
	}
	el_keep_plans();
	lease = palloc0(sizeof(Interval));
	lease->time = (int64) el_delivery_lease_ms * 1000;
	args[0] = Int32GetDatum(room);
	args[1] = IntervalPGetDatum(lease);
	if (SPI_execute_plan(claim_plan, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "enterprise_lab: leasing deliveries failed");
	n = (int) SPI_processed;

	/* What outlives the transaction is copied to delivery_cxt. */
	for (int i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		ElDelivery *d = MemoryContextAllocZero(delivery_cxt, sizeof(ElDelivery));
		bool		isnull;
		bool		lines_null;
		Datum		lines;
		char	   *secret;
		int			timeout_ms;

		d->id = MemoryContextStrdup(delivery_cxt, SPI_getvalue(tup, desc, 1));
		d->attempt = DatumGetInt32(SPI_getbinval(tup, desc, 2, &isnull));
		d->url = MemoryContextStrdup(delivery_cxt, SPI_getvalue(tup, desc, 3));
		secret = SPI_getvalue(tup, desc, 4);
		lines = SPI_getbinval(tup, desc, 5, &lines_null);
		timeout_ms = DatumGetInt32(SPI_getbinval(tup, desc, 6, &isnull));
		d->body = MemoryContextStrdup(delivery_cxt, SPI_getvalue(tup, desc, 7));
		d->body_len = strlen(d->body);
		d->lease_ends = lease_ends;
		el_delivery_add(d, secret, lines, lines_null, timeout_ms);
		explicit_bzero(secret, strlen(secret));
	}
	el_end();
	return n;
}

/* Free what one delivery holds, libcurl's side first. */
static void
el_delivery_free(ElDelivery *d)
{
	if (d->easy)
	{
		if (d->in_multi)
			curl_multi_remove_handle(multi, d->easy);
		curl_easy_cleanup(d->easy);
	}
	curl_slist_free_all(d->headers);
	pfree(d->id);
	pfree(d->url);
	pfree(d->body);
	pfree(d);
}

/* Move finished transfers from the flight to the answered list. */
static void
el_collect_finished(void)
{
	CURLMsg    *msg;
	int			left;

	while ((msg = curl_multi_info_read(multi, &left)) != NULL)
	{
		ElDelivery *d = NULL;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &d);
		d->result = msg->data.result;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &d->http_status);
		for (int i = 0; i < nflight; i++)
		{
			if (flight[i] == d)
			{
				flight[i] = flight[--nflight];
				break;
			}
		}
		el_answered(d);
	}
}

/* Record every answered delivery in one short transaction. */
static void
el_record(void)
{
	Datum	   *ids = palloc(sizeof(Datum) * ndone);
	Datum	   *attempts = palloc(sizeof(Datum) * ndone);
	Datum	   *statuses = palloc(sizeof(Datum) * ndone);
	Datum	   *errors = palloc(sizeof(Datum) * ndone);
	Datum	   *excerpts = palloc(sizeof(Datum) * ndone);
	Datum	   *retry = palloc(sizeof(Datum) * ndone);
	Datum	   *durations = palloc(sizeof(Datum) * ndone);
	bool	   *status_null = palloc0(sizeof(bool) * ndone);
	bool	   *error_null = palloc0(sizeof(bool) * ndone);
	bool	   *excerpt_null = palloc0(sizeof(bool) * ndone);
	bool	   *retry_null = palloc0(sizeof(bool) * ndone);
	TimestampTz now = GetCurrentTimestamp();
	uint64		delivered = 0,
				refused = 0;
	int			dims[1] = {ndone};
	int			lbs[1] = {1};
	Datum		args[11];

	for (int i = 0; i < ndone; i++)
	{
		ElDelivery *d = done[i];
		bool		answered = d->http_status >= 100 &&
			(d->result == CURLE_OK || d->result == CURLE_WRITE_ERROR);
		char		error[CURL_ERROR_SIZE + 64];

		ids[i] = DirectFunctionCall1(uuid_in, CStringGetDatum(d->id));
		attempts[i] = Int32GetDatum(d->attempt);
		durations[i] = Float8GetDatum((double) (now - d->started) / 1000.0);
		retry[i] = Int32GetDatum(d->retry_after);
		retry_null[i] = d->retry_after < 0;
		if (answered)
		{
			statuses[i] = Int32GetDatum((int32) d->http_status);
			if (d->http_status >= 200 && d->http_status < 300)
			{
				delivered++;
				error_null[i] = true;
			}
			else
				snprintf(error, sizeof(error), "the receiver answered HTTP %ld", d->http_status);
		}
		else
		{
			status_null[i] = true;
			if (d->refused)
			{
				refused++;
				strlcpy(error, d->refused_why, sizeof(error));
			}
			else if (d->result == CURLE_OPERATION_TIMEDOUT)
				snprintf(error, sizeof(error), "timed out: %s", d->errbuf[0] ? d->errbuf : curl_easy_strerror(d->result));
			else
				snprintf(error, sizeof(error), "%s", d->errbuf[0] ? d->errbuf : curl_easy_strerror(d->result));
		}
		if (!error_null[i])
			errors[i] = CStringGetTextDatum(error);
		d->excerpt[d->excerpt_len] = '\0';
		/* The excerpt is for people: keep it only when it is valid text. */
		if (d->excerpt_len > 0 && pg_verifymbstr(d->excerpt, (int) d->excerpt_len, true) &&
			strlen(d->excerpt) == d->excerpt_len)
			excerpts[i] = CStringGetTextDatum(d->excerpt);
		else
			excerpt_null[i] = true;
	}

	args[0] = PointerGetDatum(construct_array(ids, ndone, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR));
	args[1] = PointerGetDatum(construct_array(attempts, ndone, INT4OID, 4, true, TYPALIGN_INT));
	args[2] = PointerGetDatum(construct_md_array(statuses, status_null, 1, dims, lbs, INT4OID, 4, true, TYPALIGN_INT));
	args[3] = PointerGetDatum(construct_md_array(errors, error_null, 1, dims, lbs, TEXTOID, -1, false, TYPALIGN_INT));
	args[4] = PointerGetDatum(construct_md_array(excerpts, excerpt_null, 1, dims, lbs, TEXTOID, -1, false, TYPALIGN_INT));
	args[5] = PointerGetDatum(construct_md_array(retry, retry_null, 1, dims, lbs, INT4OID, 4, true, TYPALIGN_INT));
	args[6] = PointerGetDatum(construct_array(durations, ndone, FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	args[7] = Int32GetDatum(el_delivery_max_attempts);
	args[8] = Int32GetDatum(el_delivery_backoff_base_ms);
	args[9] = Int32GetDatum(el_delivery_backoff_max_ms);
	args[10] = Int32GetDatum(el_delivery_failure_threshold);

	if (el_begin("enterprise_lab: recording deliveries"))
	{
		el_keep_plans();
		if (SPI_execute_plan(record_plan, args, NULL, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "enterprise_lab: recording deliveries failed");
		el_end();
	}

	SpinLockAcquire(&delivery_shared->mutex);
	delivery_shared->sent += ndone;
	delivery_shared->delivered += delivered;
	delivery_shared->failed += ndone - delivered;
	delivery_shared->refused += refused;
	delivery_shared->last_outcome_at = now;
	SpinLockRelease(&delivery_shared->mutex);
}

static void
el_release_done(void)
{
	for (int i = 0; i < ndone; i++)
		el_delivery_free(done[i]);
	ndone = 0;
}

/*
 * A wait event set holding the latch, postmaster death and every socket
 * curl watches.  A socket whose events changed is modified in place and a
 * new one added; only a removed socket makes the set again (a wait event
 * set cannot drop an event).
 */
static uint32
el_socket_events(int what)
{
	uint32		events = 0;

	if (what & CURL_POLL_IN)
		events |= WL_SOCKET_READABLE;
	if (what & CURL_POLL_OUT)
		events |= WL_SOCKET_WRITEABLE;
	return events;
}

static WaitEventSet *
el_wait_set(WaitEventSet *set)
{
	if (set == NULL || sockets_removed)
	{
		if (set != NULL)
			FreeWaitEventSet(set);
		set = el_create_process_wait_event_set(max_sockets + 2);
		AddWaitEventToSet(set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
		AddWaitEventToSet(set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
		for (int i = 0; i < nsockets; i++)
			sockets[i].pos = -1;
		sockets_removed = false;
		sockets_added = true;
	}
	if (sockets_added || sockets_modified)
	{
		for (int i = 0; i < nsockets; i++)
		{
			if (sockets[i].pos < 0)
				sockets[i].pos = AddWaitEventToSet(set, el_socket_events(sockets[i].what),
												   sockets[i].fd, NULL, NULL);
			else if (sockets[i].modified)
				ModifyWaitEvent(set, sockets[i].pos, el_socket_events(sockets[i].what), NULL);
			sockets[i].modified = false;
		}
		sockets_added = sockets_modified = false;
	}
	return set;
}

static void
el_delivery_detach(int code, Datum arg)
{
	if (delivery_shared == NULL)
		return;
	SpinLockAcquire(&delivery_shared->mutex);
	if (delivery_shared->pid == MyProcPid)
	{
		delivery_shared->pid = 0;
		delivery_shared->latch = NULL;
		delivery_shared->in_flight = 0;
	}
	SpinLockRelease(&delivery_shared->mutex);
}

void
el_delivery_worker_main(Datum arg)
{
	Oid			dboid = DatumGetObjectId(arg);
	WaitEventSet *volatile set = NULL;
	WaitEvent  *events;
	volatile bool claim_wanted = true;	/* lease as soon as there is room */
	volatile bool claim_later = false;	/* lease once the queue runs low */
	volatile TimestampTz last_claim = 0;
	volatile bool reported_missing = false;
	volatile int consecutive_errors = 0;
	MemoryContext loop_cxt;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	pgstat_report_appname("enterprise_lab delivery");

	/*
	 * The worker's own commits (a lease, an outcome) need not wait for the
	 * WAL flush: one lost in a crash leaves the delivery due again once its
	 * lease ends, and sending it again is what at-least-once allows.
	 */
	SetConfigOption("synchronous_commit", "off", PGC_SUSET, PGC_S_OVERRIDE);

	if (delivery_shared == NULL || el_shared == NULL)
		ereport(FATAL,
				(errmsg("enterprise_lab: delivery worker started without shared memory"),
				 errhint("Add enterprise_lab to shared_preload_libraries.")));
	SpinLockAcquire(&delivery_shared->mutex);
	if (delivery_shared->pid != 0)
	{
		/*
		 * The worker of a previous launcher has not exited yet; our launcher
		 * starts us again in a second.  Exactly one delivery worker runs.
		 */
		SpinLockRelease(&delivery_shared->mutex);
		proc_exit(0);
	}
	delivery_shared->pid = MyProcPid;
	delivery_shared->latch = &MyProc->procLatch;
	delivery_shared->started_at = GetCurrentTimestamp();
	delivery_shared->sent = delivery_shared->delivered = delivery_shared->failed = delivery_shared->refused = 0;
	delivery_shared->in_flight = 0;
	SpinLockRelease(&delivery_shared->mutex);
	before_shmem_exit(el_delivery_detach, (Datum) 0);

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || (multi = curl_multi_init()) == NULL)
		ereport(FATAL,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("enterprise_lab: could not initialise libcurl for the delivery worker")));

	delivery_cxt = AllocSetContextCreate(TopMemoryContext, "enterprise_lab deliveries",
										 ALLOCSET_DEFAULT_SIZES);
	loop_cxt = AllocSetContextCreate(TopMemoryContext, "enterprise_lab delivery loop",
									 ALLOCSET_DEFAULT_SIZES);
	max_flight = el_delivery_batch_size;
	waiting = MemoryContextAlloc(TopMemoryContext, sizeof(ElDelivery *) * EL_DELIVERIES_HELD_MAX);
	flight = MemoryContextAlloc(TopMemoryContext, sizeof(ElDelivery *) * EL_DELIVERIES_HELD_MAX);
	done = MemoryContextAlloc(TopMemoryContext, sizeof(ElDelivery *) * 10000);
	max_sockets = el_delivery_max_connections * 4 + 16;
	sockets = MemoryContextAlloc(TopMemoryContext, sizeof(ElSocket) * max_sockets);
	events = MemoryContextAlloc(TopMemoryContext, sizeof(WaitEvent) * (max_sockets + 2));

	curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, el_curl_socket_cb);
	curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, el_curl_timer_cb);
	curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long) el_delivery_max_connections);
	curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long) el_delivery_max_connections);

	ereport(LOG, (errmsg("enterprise_lab: delivery worker started in database \"%s\"", el_database)));

	for (;;)
	{
		long		wait_ms;
		int			nevents;
		int			running;
		TimestampTz now;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			max_flight = el_delivery_batch_size;
		}

		/*
		 * The launcher that started us is gone; its successor starts our
		 * replacement.  What we have in flight is sent again when its lease
		 * ends.
		 */
		if (el_shared->launcher_pid != MyBgworkerEntry->bgw_notify_pid)
			proc_exit(0);

		/* Record answers and lease more; a failed transaction is logged and retried later. */
		MemoryContextSwitchTo(loop_cxt);
		PG_TRY();
		{
			now = GetCurrentTimestamp();
			if (el_record_due(now))
			{
				el_record();
				el_release_done();
				claim_later = true; /* an answer may release the next delivery of its pair */
			}
			now = GetCurrentTimestamp();
			if (TimestampDifferenceExceeds(last_claim, now, el_naptime_ms))
				claim_wanted = true;
			if (el_claim_due(claim_wanted, claim_later) &&
				(consecutive_errors == 0 || TimestampDifferenceExceeds(last_claim, now, 1000 << Min(consecutive_errors, 6))))
			{
				int			n;

				claim_wanted = claim_later = false;
				last_claim = now;
				n = el_claim(max_flight - nflight - nwaiting);
				if (n < 0 && !reported_missing)
					ereport(LOG,
							(errmsg("enterprise_lab: extension \"enterprise_lab\" 0.3.0 or later is not installed in database \"%s\"; the delivery worker waits",
									el_database)));
				reported_missing = n < 0;
				/* A full lease may have left more behind. */
				if (n > 0 && nflight + nwaiting >= max_flight)
					claim_later = true;
			}
			consecutive_errors = 0;
		}
		PG_CATCH();
		{
			HOLD_INTERRUPTS();
			EmitErrorReport();
			AbortOutOfAnyTransaction();
			FlushErrorState();
			RESUME_INTERRUPTS();
			pgstat_report_activity(STATE_IDLE, NULL);
			/* Answers that could not be recorded are sent again once their lease ends. */
			el_release_done();
			consecutive_errors++;
		}
		PG_END_TRY();
		MemoryContextSwitchTo(TopMemoryContext);
		MemoryContextReset(loop_cxt);

		SpinLockAcquire(&delivery_shared->mutex);
		delivery_shared->in_flight = nflight + nwaiting;
		SpinLockRelease(&delivery_shared->mutex);

		/* Requests leased above: let curl start as many as it has connections for. */
		el_start_waiting();
		curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
		el_collect_finished();
		if (el_record_due(GetCurrentTimestamp()))
			continue;

		/* Wait for curl's sockets, its timer, the latch, or the nap. */
		wait_ms = el_naptime_ms;
		if (el_claim_due(claim_wanted, claim_later))
			wait_ms = 0;
		if (ndone > 0)
		{
			long		waited = (long) ((GetCurrentTimestamp() - first_done_at) / 1000);

			wait_ms = Min(wait_ms, Max(0, EL_RECORD_WAIT_MS - waited));
		}
		if (curl_timeout_ms >= 0)
		{
			long		elapsed = (long) ((GetCurrentTimestamp() - curl_timeout_set_at) / 1000);

			wait_ms = Min(wait_ms, Max(0, curl_timeout_ms - elapsed));
		}
		if (sockets_overflow)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("enterprise_lab: libcurl opened more sockets than the delivery worker watches")));
		set = el_wait_set(set);
		nevents = WaitEventSetWait(set, wait_ms, events, max_sockets + 2, PG_WAIT_EXTENSION);
		for (int i = 0; i < nevents; i++)
		{
			WaitEvent  *ev = &events[i];

			if (ev->events & WL_LATCH_SET)
			{
				ResetLatch(MyLatch);
				claim_wanted = true;
			}
			else if (ev->events & (WL_SOCKET_READABLE | WL_SOCKET_WRITEABLE))
			{
				int			flags = 0;

				if (ev->events & WL_SOCKET_READABLE)
					flags |= CURL_CSELECT_IN;
				if (ev->events & WL_SOCKET_WRITEABLE)
					flags |= CURL_CSELECT_OUT;
				curl_multi_socket_action(multi, ev->fd, flags, &running);
			}
		}
		if (curl_timeout_ms >= 0 &&
			TimestampDifferenceExceeds(curl_timeout_set_at, GetCurrentTimestamp(), (int) curl_timeout_ms))
		{
			curl_timeout_ms = -1;
			curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
		}
		el_collect_finished();
	}
}

/*
 * The delivery worker's counters, for GET /metrics (http_metrics.c); false
 * when it is not running.
 */
bool
el_delivery_counters(ElDeliveryCounters *counters)
{
	bool		running;

	if (delivery_shared == NULL)
		return false;
	SpinLockAcquire(&delivery_shared->mutex);
	running = delivery_shared->pid != 0;
	counters->sent = delivery_shared->sent;
	counters->delivered = delivery_shared->delivered;
	counters->failed = delivery_shared->failed;
	counters->refused = delivery_shared->refused;
	counters->in_flight = delivery_shared->in_flight;
	SpinLockRelease(&delivery_shared->mutex);
	return running;
}

/*
 * integration.delivery_worker_rows(): the delivery worker from shared
 * memory; no row when it is not running.
 */
PG_FUNCTION_INFO_V1(el_delivery_worker_status);
Datum
el_delivery_worker_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ElDeliveryShared copy;
	Datum		values[8];
	bool		nulls[8] = {0};

	InitMaterializedSRF(fcinfo, 0);
	if (delivery_shared == NULL)
		return (Datum) 0;
	SpinLockAcquire(&delivery_shared->mutex);
	memcpy(&copy, delivery_shared, sizeof(copy));
	SpinLockRelease(&delivery_shared->mutex);
	if (copy.pid == 0)
		return (Datum) 0;

	values[0] = Int32GetDatum(copy.pid);
	values[1] = TimestampTzGetDatum(copy.started_at);
	values[2] = Int32GetDatum(copy.in_flight);
	values[3] = Int64GetDatum((int64) copy.sent);
	values[4] = Int64GetDatum((int64) copy.delivered);
	values[5] = Int64GetDatum((int64) copy.failed);
	values[6] = Int64GetDatum((int64) copy.refused);
	if (copy.last_outcome_at != 0)
		values[7] = TimestampTzGetDatum(copy.last_outcome_at);
	else
		nulls[7] = true;
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	return (Datum) 0;
}
