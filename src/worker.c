/*
 * worker.c
 *		The event workers' process.
 *
 * A worker loops: one transaction per batch through the shared core
 * (process.c), then sleeps on its latch until a committing transaction
 * enqueues events (see el_xact_callback) or the nap time passes.  The
 * first worker also deletes the S3 objects that transactions left behind
 * (object_cleanup.c), between batches and outside any transaction.  The
 * launcher (launcher.c) starts and stops the workers.
 */
#include "postgres.h"

#include "access/xact.h"
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

static ElWorkerSlot *my_slot = NULL;

/* Prometheus' default buckets, with 1 and 2.5 ms added for small batches. */
const double el_batch_bucket_bounds[EL_BATCH_BUCKETS] = {
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10
};

/* Count a batch in the slot's histogram; the caller holds slot->mutex. */
static void
el_note_batch_seconds(ElWorkerSlot *slot, double seconds)
{
	int			i = 0;

	while (i < EL_BATCH_BUCKETS && seconds > el_batch_bucket_bounds[i])
		i++;
	slot->batch_histogram[i]++;
	slot->batch_seconds_sum += seconds;
}

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
		el_note_batch_seconds(my_slot, (double) (end - start) / USECS_PER_SEC);
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

	/*
	 * Take the slot only if it is free, and keep it only if the launcher
	 * that started us is still the launcher: a worker of a launcher that
	 * died may start after its successor's, and must neither overwrite the
	 * successor's worker nor run beside it.
	 */
	my_slot = &el_shared->workers[index];
	SpinLockAcquire(&my_slot->mutex);
	if (my_slot->pid != 0)
	{
		SpinLockRelease(&my_slot->mutex);
		my_slot = NULL;
		proc_exit(0);
	}
	my_slot->pid = MyProcPid;
	my_slot->latch = &MyProc->procLatch;
	my_slot->state = EL_WORKER_STARTING;
	my_slot->processed = my_slot->failed = my_slot->dead_lettered = my_slot->batches = 0;
	memset(my_slot->batch_histogram, 0, sizeof(my_slot->batch_histogram));
	my_slot->batch_seconds_sum = 0;
	my_slot->started_at = GetCurrentTimestamp();
	my_slot->last_batch_at = 0;
	SpinLockRelease(&my_slot->mutex);
	before_shmem_exit(el_release_slot, (Datum) 0);
	pg_memory_barrier();
	if (el_shared->launcher_pid != MyBgworkerEntry->bgw_notify_pid)
		proc_exit(0);

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

		/* The launcher that started us is gone; its successor starts our replacement. */
		if (el_shared->launcher_pid != MyBgworkerEntry->bgw_notify_pid)
			proc_exit(0);

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
