/*
 * launcher.c
 *		The launcher: the process that keeps the event workers and the HTTP
 *		gateway's processes running.
 *
 * The launcher is registered at postmaster start and connects to no
 * database.  It looks up enterprise_lab.database and starts
 * enterprise_lab.worker_count dynamic workers there and, when
 * enterprise_lab.http_port is set, enterprise_lab.http_workers gateway
 * processes connected as the authenticator role.  Doing the lookup in a process that
 * survives a missing database is what lets us log "database does not exist"
 * once and wait, instead of a worker crash loop.  It also makes worker_count
 * and database changes take effect on reload.
 *
 * Exactly worker_count workers and http_workers gateways run: a launcher
 * that starts (after a crash or pg_terminate_backend) first retires the
 * processes its predecessor started, which see launcher_pid change and
 * exit, and only then starts its own.
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_authid.h"
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
#include "webhook.h"

/* A stopped process is started again after this long. */
#define EL_RESTART_DELAY_MS 1000
/* A gateway that keeps stopping is restarted at most this often. */
#define EL_GATEWAY_MAX_DELAY_MS (60 * 1000)
/* How long a new launcher waits for its predecessor's processes to exit. */
#define EL_RETIRE_WAIT_MS (30 * 1000)

/* One process the launcher keeps running. */
typedef struct ElChild
{
	BackgroundWorkerHandle *handle;
	TimestampTz started_at;
	int			restart_delay_ms;
} ElChild;

static ElChild workers[EL_MAX_WORKERS];
static ElChild gateways[EL_MAX_HTTP_WORKERS];

/* Registrations refused since the last warning, and when that was. */
static int	unstarted = 0;
static TimestampTz last_unstarted_warning = 0;

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

/*
 * Register one dynamic worker.  A refusal (max_worker_processes exhausted)
 * is counted, not logged: el_warn_unstarted() says it once a minute.
 */
static bool
el_start_child(ElChild *child, const char *function, const char *name,
			   const char *type, Datum main_arg, const void *extra, size_t extra_len)
{
	BackgroundWorker bgw;

	memset(&bgw, 0, sizeof(bgw));
	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw.bgw_start_time = BgWorkerStart_RecoveryFinished;
	bgw.bgw_restart_time = BGW_NEVER_RESTART;	/* the launcher restarts it */
	snprintf(bgw.bgw_library_name, BGW_MAXLEN, "enterprise_lab");
	snprintf(bgw.bgw_function_name, BGW_MAXLEN, "%s", function);
	snprintf(bgw.bgw_name, BGW_MAXLEN, "%s", name);
	snprintf(bgw.bgw_type, BGW_MAXLEN, "%s", type);
	bgw.bgw_main_arg = main_arg;
	Assert(extra_len <= BGW_EXTRALEN);
	memcpy(bgw.bgw_extra, extra, extra_len);
	bgw.bgw_notify_pid = MyProcPid;

	child->started_at = GetCurrentTimestamp();
	if (!RegisterDynamicBackgroundWorker(&bgw, &child->handle))
	{
		child->handle = NULL;
		unstarted++;
		return false;
	}
	return true;
}

static void
el_warn_unstarted(void)
{
	TimestampTz now = GetCurrentTimestamp();

	if (unstarted == 0 ||
		!TimestampDifferenceExceeds(last_unstarted_warning, now, 60 * 1000))
		return;
	ereport(WARNING,
			(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
			 errmsg("enterprise_lab: could not start %d background worker(s) in the last minute: max_worker_processes is exhausted",
					unstarted),
			 errdetail("enterprise_lab needs enterprise_lab.worker_count workers, enterprise_lab.http_workers gateways (with enterprise_lab.http_port) and the launcher."),
			 errhint("Raise max_worker_processes, or lower enterprise_lab.worker_count or enterprise_lab.http_workers.")));
	last_unstarted_warning = now;
	unstarted = 0;
}

/* Stop a process and wait until it is gone, so its slot (and port) is free. */
static void
el_stop_child(ElChild *child)
{
	if (child->handle == NULL)
		return;
	TerminateBackgroundWorker(child->handle);
	(void) WaitForBackgroundWorkerShutdown(child->handle);
	pfree(child->handle);
	child->handle = NULL;
}

/* Forget a process that exited on its own; true if it did. */
static bool
el_child_exited(ElChild *child)
{
	pid_t		pid;

	if (child->handle == NULL ||
		GetBackgroundWorkerPid(child->handle, &pid) != BGWH_STOPPED)
		return false;
	pfree(child->handle);
	child->handle = NULL;
	return true;
}

/* Time left until a child may be started again, folded into *timeout. */
static bool
el_child_may_start(ElChild *child, long *timeout)
{
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz due = TimestampTzPlusMilliseconds(child->started_at, child->restart_delay_ms);
	long		secs;
	int			usecs;

	if (now >= due)
		return true;
	TimestampDifference(now, due, &secs, &usecs);
	*timeout = Min(*timeout, secs * 1000 + usecs / 1000 + 1);
	return false;
}

/* Sets the latch of a slot's process if one runs there; 1 if it does. */
static int
el_wake_if_running(slock_t *mutex, pid_t *pid, Latch **latch)
{
	Latch	   *to_set = NULL;
	bool		running;

	SpinLockAcquire(mutex);
	running = *pid != 0;
	if (running)
		to_set = *latch;
	SpinLockRelease(mutex);
	if (to_set)
		SetLatch(to_set);
	return running ? 1 : 0;
}

/*
 * Processes a previous launcher started are still running after it died
 * (dynamic workers outlive the launcher).  Announce ourselves, wake them so
 * they notice, and wait until their slots are empty: only then are exactly
 * worker_count workers ours to start.
 */
static void
el_retire_predecessors(void)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), EL_RETIRE_WAIT_MS);

	el_shared->launcher_pid = MyProcPid;
	pg_memory_barrier();

	for (;;)
	{
		int			running = 0;

		for (int i = 0; i < EL_MAX_WORKERS; i++)
			running += el_wake_if_running(&el_shared->workers[i].mutex,
										  &el_shared->workers[i].pid,
										  &el_shared->workers[i].latch);
		for (int i = 0; i < EL_MAX_HTTP_WORKERS; i++)
			running += el_wake_if_running(&el_shared->gateways[i].mutex,
										  &el_shared->gateways[i].pid,
										  &el_shared->gateways[i].latch);
		if (running == 0)
			return;
		if (GetCurrentTimestamp() >= deadline)
		{
			ereport(WARNING,
					(errmsg("enterprise_lab: %d process(es) of the previous launcher are still running", running),
					 errdetail("They exit at their next wake-up; new ones are started now.")));
			return;
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 100, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
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

/*
 * The role the gateway connects as: enterprise_lab.http_authenticator, if
 * it exists, may log in and is no superuser (a superuser session could
 * become anyone, which is what connecting as the authenticator rules out).
 * Sets *why when it is unusable.  Read by a plain heap scan, like the
 * database above.
 */
static Oid
el_lookup_authenticator(const char **why)
{
	Oid			roleoid = InvalidOid;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;

	*why = "does not exist (it is created by CREATE EXTENSION enterprise_lab)";
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	(void) GetTransactionSnapshot();

	rel = table_open(AuthIdRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while (HeapTupleIsValid(tup = heap_getnext(scan, ForwardScanDirection)))
	{
		Form_pg_authid role = (Form_pg_authid) GETSTRUCT(tup);

		if (strcmp(NameStr(role->rolname), el_http_authenticator) != 0)
			continue;
		if (role->rolsuper)
			*why = "is a superuser";
		else if (!role->rolcanlogin)
			*why = "cannot log in";
		else
		{
			roleoid = role->oid;
			*why = NULL;
		}
		break;
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);

	CommitTransactionCommand();
	return roleoid;
}

/*
 * Keep http_workers gateways running, all in the same database as the same
 * role (or all connected to nothing while there is none: they serve the
 * dashboard's files and answer 503).  A gateway that stops soon after
 * starting (say its port is taken) is restarted with a delay that doubles
 * up to a minute, so a misconfiguration logs a line per minute, not per
 * second.
 */
static void
el_supervise_gateways(Oid dboid, Oid roleoid, long *timeout)
{
	static Oid	serving_db = InvalidOid;
	static Oid	serving_role = InvalidOid;
	int			wanted = el_http_port == 0 ? 0 : el_http_workers;

	/* A different database or role: all of them, the port is shared. */
	if (dboid != serving_db || roleoid != serving_role)
	{
		for (int i = 0; i < EL_MAX_HTTP_WORKERS; i++)
		{
			el_stop_child(&gateways[i]);
			gateways[i].restart_delay_ms = 0;
		}
		serving_db = dboid;
		serving_role = roleoid;
	}

	for (int i = 0; i < EL_MAX_HTTP_WORKERS; i++)
	{
		ElChild    *child = &gateways[i];

		if (i >= wanted)
		{
			el_stop_child(child);
			continue;
		}
		if (el_child_exited(child))
		{
			if (TimestampDifferenceExceeds(child->started_at, GetCurrentTimestamp(), 60 * 1000))
				child->restart_delay_ms = EL_RESTART_DELAY_MS;
			else
				child->restart_delay_ms = Min(Max(child->restart_delay_ms * 2, EL_RESTART_DELAY_MS),
											  EL_GATEWAY_MAX_DELAY_MS);
		}
		if (child->handle == NULL && el_child_may_start(child, timeout))
		{
			ElGatewayStart start = {.index = i, .roleoid = roleoid};
			char		name[BGW_MAXLEN];

			snprintf(name, sizeof(name), "enterprise_lab gateway %d", i + 1);
			if (!el_start_child(child, "el_gateway_main", name, "enterprise_lab gateway",
								ObjectIdGetDatum(dboid), &start, sizeof(start)))
				child->restart_delay_ms = EL_RESTART_DELAY_MS;
		}
	}
}

/* Keep worker_count event workers running in the database. */
static void
el_supervise_workers(Oid dboid, long *timeout)
{
	for (int i = 0; i < EL_MAX_WORKERS; i++)
	{
		ElChild    *child = &workers[i];

		if (i >= el_worker_count || !OidIsValid(dboid))
		{
			el_stop_child(child);
			continue;
		}
		(void) el_child_exited(child);
		child->restart_delay_ms = EL_RESTART_DELAY_MS;
		if (child->handle == NULL && el_child_may_start(child, timeout))
		{
			char		name[BGW_MAXLEN];

			snprintf(name, sizeof(name), "enterprise_lab worker %d", i + 1);
			(void) el_start_child(child, "el_worker_main", name, "enterprise_lab worker",
								  Int32GetDatum(i), &dboid, sizeof(Oid));
		}
	}
}

void
el_launcher_main(Datum arg)
{
	Oid			serving = InvalidOid;
	bool		reported_missing = false;
	const char *role_problem = NULL;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("enterprise_lab launcher");

	if (el_shared == NULL)
		ereport(FATAL,
				(errmsg("enterprise_lab: launcher started without shared memory")));
	el_retire_predecessors();

	for (;;)
	{
		Oid			dboid;
		Oid			roleoid = InvalidOid;
		const char *why = NULL;
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
				el_stop_child(&workers[i]);
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
			reported_missing = false;

		el_supervise_workers(dboid, &timeout);

		if (el_http_port != 0 && OidIsValid(dboid))
		{
			roleoid = el_lookup_authenticator(&why);
			if (why && why != role_problem)
				ereport(LOG,
						(errmsg("enterprise_lab: the gateway's role \"%s\" %s; the gateway answers 503 until it is usable",
								el_http_authenticator, why),
						 errhint("The gateway connects as enterprise_lab.http_authenticator, a role that may log in and is not a superuser.")));
			role_problem = why;
		}
		/* Without a usable role the gateway connects to no database at all. */
		el_supervise_gateways(OidIsValid(roleoid) ? dboid : InvalidOid, roleoid, &timeout);
		el_delivery_supervise(dboid, &timeout);

		el_warn_unstarted();

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
