/*
 * launcher.c
 *		The launcher: the process that keeps the event workers and the HTTP
 *		gateway running.
 *
 * The launcher is registered at postmaster start and connects to no
 * database.  It looks up enterprise_lab.database and starts
 * enterprise_lab.worker_count dynamic workers there, and the gateway when
 * enterprise_lab.http_port is set.  Doing the lookup in a process that
 * survives a missing database is what lets us log "database does not exist"
 * once and wait, instead of a worker crash loop.  It also makes worker_count
 * and database changes take effect on reload.
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "enterprise_lab.h"
#include "gateway.h"

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

/* ---------------------------------------------------------------------
 * The HTTP gateway
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
static void
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

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

