/*
 * worker.c
 *		The launcher and the processing workers.
 *
 * The launcher is registered at postmaster start and connects to no
 * database.  It looks up enterprise_lab.database and starts
 * enterprise_lab.worker_count dynamic workers there.  Doing the lookup in a
 * process that survives a missing database is what lets us log "database
 * does not exist" once and wait, instead of a worker crash loop.  It also
 * makes worker_count and database changes take effect on reload.
 *
 * A worker loops: one transaction per batch through the shared core
 * (process.c), then sleeps on its latch until a committing transaction
 * enqueues events (see el_xact_callback) or the nap time passes.  The
 * first worker also deletes the S3 objects that transactions left behind
 * (object_cleanup.c), between batches and outside any transaction.
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "enterprise_lab.h"
#include "webhook.h"

/* A stopped worker is started again after this long. */
#define EL_RESTART_DELAY_MS 1000

void
el_register_launcher(void)
{
	BackgroundWorker bgw;

	memset(&bgw, 0, sizeof(bgw));
	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw.bgw_start_time = BgWorkerStart_RecoveryFinished;
	bgw.bgw_restart_time = 5;
	snprintf(bgw.bgw_library_name, BGW_MAXLEN, "enterprise_lab");
	snprintf(bgw.bgw_function_name, BGW_MAXLEN, "el_launcher_main");
	snprintf(bgw.bgw_name, BGW_MAXLEN, "enterprise_lab launcher");
	snprintf(bgw.bgw_type, BGW_MAXLEN, "enterprise_lab launcher");
	RegisterBackgroundWorker(&bgw);
}

static BackgroundWorkerHandle *
el_start_worker(int index, Oid dboid)
{
	BackgroundWorker bgw;
	BackgroundWorkerHandle *handle;

	memset(&bgw, 0, sizeof(bgw));
	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw.bgw_start_time = BgWorkerStart_RecoveryFinished;
	bgw.bgw_restart_time = BGW_NEVER_RESTART;	/* the launcher restarts it */
	snprintf(bgw.bgw_library_name, BGW_MAXLEN, "enterprise_lab");
	snprintf(bgw.bgw_function_name, BGW_MAXLEN, "el_worker_main");
	snprintf(bgw.bgw_name, BGW_MAXLEN, "enterprise_lab worker %d", index + 1);
	snprintf(bgw.bgw_type, BGW_MAXLEN, "enterprise_lab worker");
	bgw.bgw_main_arg = Int32GetDatum(index);
	memcpy(bgw.bgw_extra, &dboid, sizeof(Oid));
	bgw.bgw_notify_pid = MyProcPid;

	if (!RegisterDynamicBackgroundWorker(&bgw, &handle))
	{
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("enterprise_lab: could not start worker %d", index + 1),
				 errhint("Raise max_worker_processes: enterprise_lab needs enterprise_lab.worker_count + 1 (+1 with the HTTP gateway).")));
		return NULL;
	}
	return handle;
}

/*
 * Look the database up by a plain heap scan of pg_database, as the
 * autovacuum launcher does: a process connected to no database cannot use
 * catalog indexes before the shared relcache init file exists.
 */
static Oid
el_lookup_database(void)
{
	Oid			dboid = InvalidOid;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	(void) GetTransactionSnapshot();

	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while (HeapTupleIsValid(tup = heap_getnext(scan, ForwardScanDirection)))
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);

		if (strcmp(NameStr(db->datname), el_database) == 0)
		{
			dboid = db->oid;
			break;
		}
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);

	CommitTransactionCommand();
	return dboid;
}

/* Stop a worker and wait until it is gone, so its slot is free again. */
static void
el_stop_worker(BackgroundWorkerHandle *handle)
{
	TerminateBackgroundWorker(handle);
	(void) WaitForBackgroundWorkerShutdown(handle);
	pfree(handle);
}

void
el_launcher_main(Datum arg)
{
	BackgroundWorkerHandle *handles[EL_MAX_WORKERS] = {0};
	TimestampTz started[EL_MAX_WORKERS] = {0};
	Oid			serving = InvalidOid;
	bool		reported_missing = false;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("enterprise_lab launcher");

	if (el_shared)
		el_shared->launcher_pid = MyProcPid;

	for (;;)
	{
		Oid			dboid;
		long		timeout = el_naptime_ms;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		dboid = el_lookup_database();

		/* A different (or vanished) database: stop the workers serving the old one. */
		if (dboid != serving)
		{
			for (int i = 0; i < EL_MAX_WORKERS; i++)
			{
				if (handles[i])
				{
					el_stop_worker(handles[i]);
					handles[i] = NULL;
				}
			}
			serving = dboid;
		}

		if (!OidIsValid(dboid))
		{
			if (!reported_missing)
				ereport(LOG,
						(errmsg("enterprise_lab: database \"%s\" does not exist; workers will start when it does",
								el_database),
						 errhint("Create the database and the extension in it, or set enterprise_lab.database and reload.")));
			reported_missing = true;
			timeout = Max(el_naptime_ms, 5000);
		}
		else
		{
			TimestampTz now = GetCurrentTimestamp();

			reported_missing = false;
			for (int i = 0; i < EL_MAX_WORKERS; i++)
			{
				pid_t		pid;
				bool		wanted = i < el_worker_count;

				if (handles[i] && !wanted)
				{
					el_stop_worker(handles[i]);
					handles[i] = NULL;
				}
				else if (handles[i] && GetBackgroundWorkerPid(handles[i], &pid) == BGWH_STOPPED)
				{
					pfree(handles[i]);
					handles[i] = NULL;
				}
				if (wanted && handles[i] == NULL)
				{
					if (TimestampDifferenceExceeds(started[i], now, EL_RESTART_DELAY_MS))
					{
						handles[i] = el_start_worker(i, dboid);
						started[i] = now;
					}
					else
						timeout = Min(timeout, EL_RESTART_DELAY_MS);
				}
			}
		}

		el_gateway_supervise(dboid, &timeout);
		el_delivery_supervise(dboid, &timeout);

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

static ElWorkerSlot *my_slot = NULL;

static void
el_set_state(ElWorkerState state)
{
	SpinLockAcquire(&my_slot->mutex);
	my_slot->state = state;
	SpinLockRelease(&my_slot->mutex);
}

static void
el_release_slot(int code, Datum arg)
{
	if (my_slot == NULL)
		return;
	SpinLockAcquire(&my_slot->mutex);
	if (my_slot->pid == MyProcPid)
	{
		my_slot->pid = 0;
		my_slot->latch = NULL;
		my_slot->state = EL_WORKER_STOPPED;
	}
	SpinLockRelease(&my_slot->mutex);
	my_slot = NULL;
}

/*
 * One unit of work: a transaction that processes one batch.  Returns the
 * number of events claimed, or -1 when the extension is not installed.
 */
static int
el_run_batch(void)
{
	ElBatchResult result;
	TimestampTz start;
	TimestampTz end;
	Oid			extoid;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();

	extoid = get_extension_oid("enterprise_lab", true);
	if (!OidIsValid(extoid))
	{
		CommitTransactionCommand();
		return -1;
	}

	/*
	 * DROP EXTENSION locks the extension before any of its tables.  Holding
	 * a share lock on it for the batch makes a concurrent DROP wait for the
	 * batch instead of deadlocking with it on the tables.  If a DROP got
	 * there first, it has committed once we have the lock: look again.
	 */
	LockDatabaseObject(ExtensionRelationId, extoid, 0, AccessShareLock);
	if (get_extension_oid("enterprise_lab", true) != extoid)
	{
		CommitTransactionCommand();
		return 0;
	}

	el_set_state(EL_WORKER_PROCESSING);
	start = GetCurrentTimestamp();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "enterprise_lab: processing events");

	el_process_batch(el_batch_size, &result);

	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);

	end = GetCurrentTimestamp();
	SpinLockAcquire(&my_slot->mutex);
	my_slot->batches++;
	if (result.claimed > 0)
	{
		my_slot->processed += result.completed;
		my_slot->failed += result.failed;
		my_slot->dead_lettered += result.dead_lettered;
		my_slot->last_batch_at = end;
		my_slot->last_batch_events = result.claimed;
		my_slot->last_batch_ms = (double) (end - start) / 1000.0;
	}
	SpinLockRelease(&my_slot->mutex);
	return result.claimed;
}

void
el_worker_main(Datum arg)
{
	int			index = DatumGetInt32(arg);
	Oid			dboid;
	char		appname[NAMEDATALEN];
	volatile bool reported_missing = false;
	volatile int consecutive_errors = 0;
	MemoryContext loop_cxt;

	memcpy(&dboid, MyBgworkerEntry->bgw_extra, sizeof(Oid));

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);

	snprintf(appname, sizeof(appname), "enterprise_lab worker %d", index + 1);
	pgstat_report_appname(appname);

	if (el_shared == NULL || index < 0 || index >= EL_MAX_WORKERS)
		ereport(FATAL,
				(errmsg("enterprise_lab: worker started without shared memory"),
				 errhint("Add enterprise_lab to shared_preload_libraries.")));

	my_slot = &el_shared->workers[index];
	SpinLockAcquire(&my_slot->mutex);
	my_slot->pid = MyProcPid;
	my_slot->latch = &MyProc->procLatch;
	my_slot->state = EL_WORKER_STARTING;
	my_slot->processed = my_slot->failed = my_slot->dead_lettered = my_slot->batches = 0;
	my_slot->started_at = GetCurrentTimestamp();
	my_slot->last_batch_at = 0;
	SpinLockRelease(&my_slot->mutex);
	before_shmem_exit(el_release_slot, (Datum) 0);

	ereport(LOG,
			(errmsg("enterprise_lab: worker %d started in database \"%s\"",
					index + 1, el_database)));

	loop_cxt = AllocSetContextCreate(TopMemoryContext, "enterprise_lab worker loop",
									 ALLOCSET_DEFAULT_SIZES);

	for (;;)
	{
		volatile int claimed = 0;
		long		timeout = el_naptime_ms;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		MemoryContextSwitchTo(loop_cxt);
		PG_TRY();
		{
			/*
			 * Outside any transaction, so a stalled S3 holds no lock or
			 * snapshot; before the batch, so failing batches do not stop it.
			 */
			if (index == 0 && el_object_cleanup_pending())
				el_object_cleanup_run(EL_CLEANUP_PER_PASS);
			claimed = el_run_batch();
			consecutive_errors = 0;
		}
		PG_CATCH();
		{
			/* Report, clean up, and back off; one failed batch is not fatal. */
			HOLD_INTERRUPTS();
			EmitErrorReport();
			AbortOutOfAnyTransaction();
			FlushErrorState();
			RESUME_INTERRUPTS();
			pgstat_report_activity(STATE_IDLE, NULL);
			consecutive_errors++;
			claimed = 0;
		}
		PG_END_TRY();
		MemoryContextSwitchTo(TopMemoryContext);
		MemoryContextReset(loop_cxt);

		if (claimed < 0)
		{
			if (!reported_missing)
				ereport(LOG,
						(errmsg("enterprise_lab: extension \"enterprise_lab\" is not installed in database \"%s\"; worker %d waits",
								el_database, index + 1),
						 errhint("Run CREATE EXTENSION enterprise_lab there.")));
			reported_missing = true;
			el_set_state(EL_WORKER_WAITING_FOR_EXTENSION);
			timeout = Max(el_naptime_ms, 1000);
		}
		else
		{
			if (reported_missing)
				ereport(LOG,
						(errmsg("enterprise_lab: extension found in database \"%s\"; worker %d is processing",
								el_database, index + 1)));
			reported_missing = false;

			/*
			 * Keep going until a batch finds nothing: more may be waiting,
			 * and completing an event releases its submission's next one,
			 * which no commit will announce.
			 */
			if (claimed > 0)
				continue;
			el_set_state(EL_WORKER_IDLE);
		}

		if (consecutive_errors > 0)
			timeout = Min((long) el_naptime_ms << Min(consecutive_errors, 6), 60000L);
		if (index == 0)
		{
			long		cleanup_due = el_object_cleanup_next_due_ms();

			if (cleanup_due >= 0)
				timeout = Min(timeout, Max(cleanup_due, 10L));
		}

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
