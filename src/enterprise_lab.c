/*
 * enterprise_lab.c
 *		Module entry point: GUCs, shared memory, commit-time wake-ups and the
 *		worker status view.
 *
 * The library works in two modes.  Loaded on demand (CREATE EXTENSION, first
 * function call) it defines the GUCs and the SQL-callable core; preloaded
 * through shared_preload_libraries it also reserves shared memory and
 * registers the launcher that starts the processing workers.
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "enterprise_lab.h"
#include "gateway.h"
#include "webhook.h"

PG_MODULE_MAGIC;

char	   *el_database = NULL;
int			el_worker_count = 1;
int			el_batch_size = 1000;
int			el_chunk_size = 100;
int			el_naptime_ms = 1000;
int			el_max_attempts = 5;
int			el_backoff_base_ms = 1000;
int			el_backoff_max_ms = 3600 * 1000;
int			el_event_retention_s = 30 * 24 * 3600;

ElShared   *el_shared = NULL;

/* Set when this transaction enqueued events; read at commit. */
static bool wake_at_commit = false;

static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;

void		_PG_init(void);

static void
el_define_gucs(void)
{
	DefineCustomStringVariable("enterprise_lab.database",
							   "Database whose events the background workers process.",
							   "The extension must be installed there; until it is, the workers wait.",
							   &el_database,
							   "postgres",
							   PGC_SIGHUP,
							   0,
							   NULL, NULL, NULL);

	DefineCustomIntVariable("enterprise_lab.worker_count",
							"Number of background workers that process events.",
							"0 disables them; each needs a max_worker_processes slot.",
							&el_worker_count,
							1, 0, EL_MAX_WORKERS,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("enterprise_lab.batch_size",
							"Most events one worker transaction claims.",
							NULL,
							&el_batch_size,
							1000, 1, 100000,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("enterprise_lab.chunk_size",
							"Most events applied together in one subtransaction.",
							"A failing chunk is bisected to find the failing event.",
							&el_chunk_size,
							100, 1, 10000,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("enterprise_lab.naptime",
							"Longest time an idle worker sleeps before looking for due retries.",
							"Workers are woken at once when a transaction that enqueued events commits.",
							&el_naptime_ms,
							1000, 10, 3600 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("enterprise_lab.max_attempts",
							"Attempts after which a failing event is dead-lettered.",
							NULL,
							&el_max_attempts,
							5, 1, 1000,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("enterprise_lab.backoff_base",
							"Delay before the first retry of a failed event.",
							"Each further attempt doubles it (with jitter), up to enterprise_lab.backoff_max.",
							&el_backoff_base_ms,
							1000, 0, INT_MAX,
							PGC_SUSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("enterprise_lab.backoff_max",
							"Longest delay between two attempts of a failed event.",
							NULL,
							&el_backoff_max_ms,
							3600 * 1000, 0, INT_MAX,
							PGC_SUSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("enterprise_lab.event_retention",
							"How long completed events and their success sync logs are kept.",
							"The retention job removes older ones; 0 keeps them forever.",
							&el_event_retention_s,
							30 * 24 * 3600, 0, INT_MAX,
							PGC_SUSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);
}

static Size
el_shmem_size(void)
{
	return MAXALIGN(sizeof(ElShared));
}

static void
el_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(el_shmem_size());
	el_object_cleanup_shmem_request();
}

static void
el_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	el_shared = ShmemInitStruct("enterprise_lab", el_shmem_size(), &found);
	if (!found)
	{
		memset(el_shared, 0, el_shmem_size());
		for (int i = 0; i < EL_MAX_WORKERS; i++)
			SpinLockInit(&el_shared->workers[i].mutex);
		for (int i = 0; i < EL_MAX_HTTP_WORKERS; i++)
			SpinLockInit(&el_shared->gateways[i].mutex);
		pg_atomic_init_u64(&el_shared->http_body_bytes, 0);
		for (int i = 0; i < EL_HTTP_STATUSES; i++)
			pg_atomic_init_u64(&el_shared->http_responses[i], 0);
	}
	el_object_cleanup_shmem_init();
	LWLockRelease(AddinShmemInitLock);
}

/*
 * The first worker deletes abandoned S3 objects (object_cleanup.c).  Safe
 * in a transaction callback: no I/O, no error.
 */
void
el_wake_cleanup_worker(void)
{
	ElWorkerSlot *slot;
	Latch	   *latch;

	if (el_shared == NULL)
		return;
	slot = &el_shared->workers[0];
	SpinLockAcquire(&slot->mutex);
	latch = slot->pid != 0 ? slot->latch : NULL;
	SpinLockRelease(&slot->mutex);
	if (latch)
		SetLatch(latch);
}

/*
 * Wake one worker, not all of them: an idle one if there is one, else one
 * that is processing, which then looks once more before it sleeps (a
 * worker claims until a batch finds nothing, and a set latch makes its
 * next wait return at once).  Waking every worker on every commit made
 * each of them claim, and all but one find nothing.  The search starts
 * after the worker woken last, so the idle ones share the work.
 */
static void
el_wake_one_worker(void)
{
	static int	next = 0;
	Latch	   *busy = NULL;

	for (int k = 0; k < EL_MAX_WORKERS; k++)
	{
		int			i = (next + k) % EL_MAX_WORKERS;
		ElWorkerSlot *slot = &el_shared->workers[i];
		Latch	   *latch;
		ElWorkerState state;

		SpinLockAcquire(&slot->mutex);
		latch = slot->pid != 0 ? slot->latch : NULL;
		state = slot->state;
		SpinLockRelease(&slot->mutex);
		if (latch == NULL)
			continue;
		if (state == EL_WORKER_IDLE)
		{
			next = (i + 1) % EL_MAX_WORKERS;
			SetLatch(latch);
			return;
		}
		if (busy == NULL)
			busy = latch;
	}
	if (busy != NULL)
		SetLatch(busy);
}

/*
 * Wake a worker only when the enqueuing transaction commits: a rolled
 * back transaction wakes nobody, and a burst of inserts costs one wake-up.
 */
static void
el_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (wake_at_commit && el_shared != NULL)
				el_wake_one_worker();
			wake_at_commit = false;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			wake_at_commit = false;
			break;
		default:
			break;
	}
}

void
_PG_init(void)
{
	el_define_gucs();
	el_define_document_gucs();
	el_gateway_define_gucs();
	el_delivery_init();
	MarkGUCPrefixReserved("enterprise_lab");

	RegisterXactCallback(el_xact_callback, NULL);

	if (!process_shared_preload_libraries_in_progress)
		return;

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = el_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = el_shmem_startup;
	el_delivery_shmem_init();
	el_throughput_init();

	el_register_launcher();
	el_open_listen_socket();
}

/*
 * Statement-level trigger on integration.events: remember to wake the
 * workers when this transaction commits.
 */
PG_FUNCTION_INFO_V1(el_wake_workers_at_commit);
Datum
el_wake_workers_at_commit(PG_FUNCTION_ARGS)
{
	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("integration.wake_workers_at_commit() may only be called as a trigger")));
	wake_at_commit = true;
	return PointerGetDatum(NULL);
}

static const char *
el_worker_state_name(ElWorkerState state)
{
	switch (state)
	{
		case EL_WORKER_STOPPED:
			return "stopped";
		case EL_WORKER_STARTING:
			return "starting";
		case EL_WORKER_IDLE:
			return "idle";
		case EL_WORKER_PROCESSING:
			return "processing";
		case EL_WORKER_WAITING_FOR_EXTENSION:
			return "waiting for extension";
	}
	return "unknown";
}

/*
 * integration.worker_status_rows(): one row per running worker, read from
 * shared memory.  Empty when the library is not preloaded.
 */
PG_FUNCTION_INFO_V1(el_worker_status);
Datum
el_worker_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);

	if (el_shared == NULL)
		return (Datum) 0;

	for (int i = 0; i < EL_MAX_WORKERS; i++)
	{
		ElWorkerSlot *slot = &el_shared->workers[i];
		ElWorkerSlot copy;
		Datum		values[11];
		bool		nulls[11] = {0};

		SpinLockAcquire(&slot->mutex);
		memcpy(&copy, slot, sizeof(copy));
		SpinLockRelease(&slot->mutex);

		if (copy.pid == 0)
			continue;

		values[0] = Int32GetDatum(i + 1);
		values[1] = Int32GetDatum(copy.pid);
		values[2] = CStringGetTextDatum(el_worker_state_name(copy.state));
		values[3] = Int64GetDatum((int64) copy.processed);
		values[4] = Int64GetDatum((int64) copy.failed);
		values[5] = Int64GetDatum((int64) copy.dead_lettered);
		values[6] = Int64GetDatum((int64) copy.batches);
		values[7] = TimestampTzGetDatum(copy.started_at);
		if (copy.last_batch_at != 0)
		{
			values[8] = TimestampTzGetDatum(copy.last_batch_at);
			values[9] = Int32GetDatum(copy.last_batch_events);
			values[10] = Float8GetDatum(copy.last_batch_ms);
		}
		else
			nulls[8] = nulls[9] = nulls[10] = true;

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
