/*
 * process.c
 *		The event-processing core: claim, apply in chunks, complete, retry,
 *		dead-letter.  Shared by integration.process_events() and the workers.
 *
 * One call works inside the caller's transaction:
 *
 *	1. claim due events, oldest first, FOR UPDATE SKIP LOCKED, only the
 *	   first unfinished event of each submission (per-aggregate order);
 *	2. apply them in chunks, one subtransaction per chunk, set-based;
 *	   a failing chunk is rolled back and bisected until the failing event
 *	   is alone, so the common case pays one subtransaction per chunk;
 *	3. complete the applied events and record the failures, both in the
 *	   top-level transaction (the claim locked those rows there; updating
 *	   them from a subtransaction would create MultiXacts), and write the
 *	   completed events' webhook deliveries there too (delivery_outbox.c).
 *
 * Claim, effects and completion commit together or not at all, so a crash
 * never leaves an event half-done.  The statements run on the tables of one
 * shard group (shard_groups.c): the base tables on a single node, one local
 * shard group per batch on a Citus node.
 */
#include "postgres.h"

#include <math.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_type.h"
#include "common/pg_prng.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/uuid.h"

#include "enterprise_lab.h"
#include "webhook.h"

typedef enum ElEventOutcome
{
	EL_UNRESOLVED = 0,
	EL_APPLIED,
	EL_FAILED,
	EL_RELEASED
} ElEventOutcome;

typedef struct ElEvent
{
	Datum		id;				/* uuid */
	char	   *event_type;
	int			attempts;		/* attempts before this one */
	ElEventOutcome outcome;
	ErrorData  *error;			/* set when the event failed alone */
} ElEvent;

/* The shard group the next batch starts with (see el_process_batch). */
static int	next_group = -1;

/* A batch began and has not returned: it failed (see el_process_batch). */
static bool batch_running = false;

/*
 * Chunk size in force for this backend: halved after a failing chunk,
 * doubled back (up to enterprise_lab.chunk_size) after a clean one, so a
 * stream with frequent failures stops paying for large rolled-back chunks.
 */
static int	adaptive_chunk = 0;

/* Batches this backend has run (for re-planning, see el_process_batch). */
static uint64 batches_run = 0;

/*
 * The module processes only tables of its own version.  New binaries are
 * installed and the server restarted before ALTER EXTENSION ... UPDATE runs,
 * and until then the tables have the old version's columns and keys: the
 * handlers' statements would fail every event they touch and push it into
 * backoff.  So processing waits, with one warning per backend and version,
 * and the events stay pending until the update.  A catalog index lookup per
 * batch.
 */
static char *el_warned_version = NULL;

static char *
el_installed_version(void)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tuple;
	char	   *version = NULL;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber, F_NAMEEQ,
				CStringGetDatum("enterprise_lab"));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tuple = systable_getnext(scan);
	if (HeapTupleIsValid(tuple))
	{
		bool		isnull;
		Datum		d = heap_getattr(tuple, Anum_pg_extension_extversion,
									 RelationGetDescr(rel), &isnull);

		if (!isnull)
			version = text_to_cstring(DatumGetTextPP(d));
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return version;
}

static bool
el_tables_are_current(void)
{
	char	   *version = el_installed_version();

	if (version != NULL && strcmp(version, EL_EXTVERSION) == 0)
		return true;
	if (el_warned_version == NULL || version == NULL || strcmp(el_warned_version, version) != 0)
	{
		ereport(WARNING,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("enterprise_lab: events are not processed: the extension is at version %s, this module is %s",
						version ? version : "(none)", EL_EXTVERSION),
				 errdetail("The events stay pending until the extension's tables match the module."),
				 errhint("Run ALTER EXTENSION enterprise_lab UPDATE.")));
		if (el_warned_version)
			pfree(el_warned_version);
		el_warned_version = MemoryContextStrdup(TopMemoryContext, version ? version : "");
	}
	return false;
}

/*
 * The core's statements, run on the tables of one shard group
 * (shard_groups.c): on a single node, the base tables.
 *
 * The claim takes an event only if it is the first unfinished one of its
 * submission.  That is asked as "is its seq the submission's smallest
 * unfinished seq", a subquery the planner cannot turn into a join: as a
 * NOT EXISTS anti-join, once ANALYZE had seen the partial index nearly
 * empty of live rows, the plan read the whole of events_unfinished_idx,
 * dead entries included, for every candidate instead of probing it by
 * submission.
 */
#define EL_CLAIM_SQL(limit) \
"SELECT e.id, e.event_type, e.attempts" \
"  FROM integration.events e" \
" WHERE e.event_status IN ('pending', 'failed')" \
"   AND e.next_attempt_at <= pg_catalog.clock_timestamp()" \
"   AND e.seq = (SELECT pg_catalog.min(p.seq) FROM integration.events p" \
"                 WHERE p.submission_id = e.submission_id" \
"                   AND p.event_status IN ('pending', 'failed', 'dead_letter'))" \
" ORDER BY e.seq" \
" LIMIT " limit \
"   FOR UPDATE OF e SKIP LOCKED"

/*
 * A claim of enterprise_lab.batch_size events carries the size as a
 * constant: with LIMIT $1 the plan cache never settles on a generic plan
 * (which costs an unknown LIMIT at a tenth of the table), so the claim was
 * planned again for every batch.
 */
static const char *const claim_sql = EL_CLAIM_SQL("$1");
static char *claim_batch_sql = NULL;
static int	claim_batch_sql_size = 0;

static const char *const complete_sql =
"UPDATE integration.events"
"   SET event_status = 'completed', attempts = attempts + 1,"
"       processed_at = pg_catalog.clock_timestamp(), last_error = NULL"
" WHERE id = ANY ($1)";

static const char *const fail_sql =
"WITH f AS ("
"  UPDATE integration.events e"
"     SET attempts = e.attempts + 1,"
"         event_status = CASE WHEN e.attempts + 1 >= $3 THEN 'dead_letter' ELSE 'failed' END,"
"         last_error = $2,"
"         processed_at = CASE WHEN e.attempts + 1 >= $3 THEN pg_catalog.clock_timestamp() END,"
"         next_attempt_at = pg_catalog.clock_timestamp() + pg_catalog.make_interval(secs => $4)"
"   WHERE e.id = $1"
"  RETURNING e.id, e.submission_id, e.event_type, e.aggregate_type, e.aggregate_id,"
"            e.event_status, e.attempts, e.next_attempt_at),"
" sr AS ("
"  UPDATE source_system.service_requests r"
"     SET lifecycle_status = 'failed', updated_at = pg_catalog.now()"
"    FROM f"
"   WHERE f.event_status = 'dead_letter' AND f.aggregate_type = 'service_request'"
"     AND r.id = f.aggregate_id AND r.submission_id = f.submission_id)"
"INSERT INTO integration.sync_logs"
"       (id, submission_id, event_id, event_type, action, outcome, message, details, attempt)"
"SELECT pg_catalog.nextval('integration.sync_log_seq'), f.submission_id, f.id, f.event_type,"
"       CASE f.event_status WHEN 'dead_letter' THEN 'dead_lettered' ELSE 'retry_scheduled' END,"
"       'failure', $2,"
"       $5 || CASE f.event_status WHEN 'dead_letter' THEN '{}'::jsonb"
"             ELSE pg_catalog.jsonb_build_object('next_attempt_at', f.next_attempt_at) END,"
"       f.attempts"
"  FROM f"
" RETURNING action";

/*
 * Delay before the next attempt: base * 2^(attempt-1), capped, with "equal
 * jitter" (half fixed, half random) so that events failing together do not
 * retry together.
 */
static double
el_backoff_seconds(int attempt)
{
	double		delay = (double) el_backoff_base_ms / 1000.0;
	double		cap = (double) el_backoff_max_ms / 1000.0;

	delay *= pow(2.0, (double) Min(attempt - 1, 60));
	if (delay > cap)
		delay = cap;
	return delay / 2.0 + pg_prng_double(&pg_global_prng_state) * delay / 2.0;
}

/*
 * Errors that say nothing about the event: the session is cancelled or
 * shut down, a lock could not be had in time, the server ran short of a
 * resource (class 53: memory, disk, shared memory, connections), or
 * concurrency got in the way.  Charging an attempt for them would
 * dead-letter good events during an outage, so they abort the whole batch
 * instead: nothing is recorded, and the worker (or the caller of
 * integration.process_events) retries it later, attempts unchanged.
 */
static bool
el_is_infrastructure_error(ErrorData *edata)
{
	return edata->sqlerrcode == ERRCODE_QUERY_CANCELED ||
		edata->sqlerrcode == ERRCODE_ADMIN_SHUTDOWN ||
		edata->sqlerrcode == ERRCODE_CRASH_SHUTDOWN ||
		edata->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE ||
		ERRCODE_TO_CATEGORY(edata->sqlerrcode) == ERRCODE_INSUFFICIENT_RESOURCES ||
		edata->sqlerrcode == ERRCODE_T_R_DEADLOCK_DETECTED ||
		edata->sqlerrcode == ERRCODE_T_R_SERIALIZATION_FAILURE;
}

/*
 * Apply events[0..n-1] in one subtransaction.  Returns true when the
 * handlers succeeded; on failure everything they did is rolled back, and
 * for a single event its error is kept.  Infrastructure errors are not
 * the event's fault: they abort the batch (el_is_infrastructure_error).
 *
 * The handlers first write as for events applied the first time; a chunk
 * that meets rows written before (unique_violation: an event delivered
 * twice, or replayed) is rolled back and run once more in the handlers'
 * "again" form, which keeps the rows that exist (handlers.c).
 */
static bool
el_try_chunk(ElEvent *events, int n, ElBatchResult *result)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	Datum	   *ids = palloc(sizeof(Datum) * n);
	char	  **types = palloc(sizeof(char *) * n);
	volatile bool ok = false;
	volatile bool again = false;

	for (int i = 0; i < n; i++)
	{
		ids[i] = events[i].id;
		types[i] = events[i].event_type;
	}

	for (;;)
	{
		ErrorData  *volatile edata = NULL;

		result->subxacts++;
		BeginInternalSubTransaction(NULL);
		MemoryContextSwitchTo(cxt);

		PG_TRY();
		{
			el_apply_chunk(ids, types, n, again);
			ReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(cxt);
			CurrentResourceOwner = owner;
			ok = true;
		}
		PG_CATCH();
		{
			MemoryContextSwitchTo(cxt);
			edata = CopyErrorData();
			FlushErrorState();
			RollbackAndReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(cxt);
			CurrentResourceOwner = owner;
		}
		PG_END_TRY();

		if (ok)
			break;
		if (el_is_infrastructure_error(edata))
			ReThrowError(edata);
		if (edata->sqlerrcode == ERRCODE_UNIQUE_VIOLATION && !again &&
			result->subxacts < EL_MAX_SUBXACTS_PER_BATCH)
		{
			FreeErrorData(edata);
			again = true;
			continue;
		}
		if (n == 1)
			events[0].error = edata;
		else
			FreeErrorData(edata);
		break;
	}

	pfree(ids);
	pfree(types);
	return ok;
}

/*
 * Apply a range; when it fails, split it in halves until the failing events
 * stand alone.  Stops opening subtransactions once the batch budget is
 * spent: what is left is released untouched for a later batch.
 */
static void
el_apply_range(ElEvent *events, int n, ElBatchResult *result)
{
	CHECK_FOR_INTERRUPTS();

	if (result->subxacts >= EL_MAX_SUBXACTS_PER_BATCH)
	{
		for (int i = 0; i < n; i++)
			events[i].outcome = EL_RELEASED;
		return;
	}

	if (el_try_chunk(events, n, result))
	{
		for (int i = 0; i < n; i++)
			events[i].outcome = EL_APPLIED;
		return;
	}

	if (n == 1)
	{
		events[0].outcome = EL_FAILED;
		return;
	}

	el_apply_range(events, n / 2, result);
	el_apply_range(events + n / 2, n - n / 2, result);
}

static Jsonb *
el_error_details(ErrorData *edata)
{
	StringInfoData buf;
	Datum		json;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"sqlstate\": ");
	escape_json(&buf, unpack_sql_state(edata->sqlerrcode));
	if (edata->detail)
	{
		appendStringInfoString(&buf, ", \"detail\": ");
		escape_json(&buf, edata->detail);
	}
	if (edata->hint)
	{
		appendStringInfoString(&buf, ", \"hint\": ");
		escape_json(&buf, edata->hint);
	}
	if (edata->context)
	{
		appendStringInfoString(&buf, ", \"context\": ");
		escape_json(&buf, edata->context);
	}
	appendStringInfoChar(&buf, '}');
	json = DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data));
	return DatumGetJsonbP(json);
}

/* Record one failure: retry later with backoff, or dead-letter. */
static void
el_record_failure(ElEvent *event, ElBatchResult *result)
{
	ErrorData  *edata = event->error;
	int			attempt = event->attempts + 1;
	Datum		values[5];
	int			rc;
	char	   *action;
	Oid			types[5] = {UUIDOID, TEXTOID, INT4OID, FLOAT8OID, JSONBOID};

	values[0] = event->id;
	values[1] = CStringGetTextDatum(edata->message ? edata->message : "unknown error");
	values[2] = Int32GetDatum(el_max_attempts);
	values[3] = Float8GetDatum(el_backoff_seconds(attempt));
	values[4] = JsonbPGetDatum(el_error_details(edata));

	rc = SPI_execute_plan(el_group_plan(fail_sql, 5, types, 0), values, NULL, false, 0);
	if (rc != SPI_OK_INSERT_RETURNING || SPI_processed != 1)
		elog(ERROR, "enterprise_lab: recording the failure of an event failed: %s",
			 SPI_result_code_string(rc));

	action = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	if (strcmp(action, "dead_lettered") == 0)
		result->dead_lettered++;
	else
		result->failed++;

	ereport(LOG,
			(errmsg("enterprise_lab: %s event %s failed (attempt %d of %d): %s",
					event->event_type,
					DatumGetCString(DirectFunctionCall1(uuid_out, event->id)),
					attempt, el_max_attempts, edata->message),
			 errdetail("%s", strcmp(action, "dead_lettered") == 0 ?
					   "The event was moved to the dead letters." :
					   "The event will be retried.")));
}

/* One batch on the tables of the current shard group. */
/*
 * Tables bulk-loaded since CREATE EXTENSION and not yet analyzed have no
 * statistics (reltuples < 0) until autovacuum comes, up to a minute later.
 * Their keys include submission_id, so without statistics the planner
 * cannot tell that an event id matches one row: the handlers' joins then
 * scan and hash whole tables, five times slower.  A worker that finds a
 * backlog on such tables analyzes them first (a sample, a fraction of a
 * second); plans made before are invalidated by it.
 */
static const char *const never_analyzed_sql =
"SELECT pg_catalog.count(*) FROM pg_catalog.pg_class c"
" WHERE c.oid IN ('integration.events'::pg_catalog.regclass,"
"                 'source_system.service_requests'::pg_catalog.regclass)"
"   AND c.reltuples < 0";
static const char *const analyze_sql =
"ANALYZE integration.events, source_system.service_requests";

static void
el_analyze_if_never_analyzed(void)
{
	bool		isnull;
	int			rc;

	rc = SPI_execute_plan(el_group_plan(never_analyzed_sql, 0, NULL, 0), NULL, NULL, true, 1);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "enterprise_lab: reading the tables' statistics failed: %s",
			 SPI_result_code_string(rc));
	if (DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) == 0)
		return;
	ereport(LOG,
			(errmsg("enterprise_lab: analyzing the events and service requests: a backlog, and no statistics yet")));
	rc = SPI_execute_plan(el_group_plan(analyze_sql, 0, NULL, 0), NULL, NULL, false, 0);
	if (rc != SPI_OK_UTILITY)
		elog(ERROR, "enterprise_lab: ANALYZE failed: %s", SPI_result_code_string(rc));
}

/*
 * Runs the claim with bitmap and sequential scans off, so that whenever it
 * is planned (first use, or again after an invalidation) the plan takes the
 * batch off the front of events_due_idx in seq order.  Before autovacuum's
 * first ANALYZE the planner estimated a handful of due events and chose a
 * bitmap scan and a sort instead: that reads every due event, checks the
 * order of each, and reads every dead entry of the index (a bitmap scan
 * never marks them dead), for every batch.
 *
 * And without JIT: the plan's cost counts the order check for every due
 * event, not for the batch the LIMIT stops at, so with a backlog it passed
 * the JIT thresholds and each batch compiled it, inlined and optimized,
 * for some 70 ms (a 50,000-event drain ran at half its rate).
 */
static int
el_execute_claim(SPIPlanPtr plan, Datum *values)
{
	int			nestlevel = NewGUCNestLevel();
	int			rc;

	(void) set_config_option("enable_bitmapscan", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("enable_seqscan", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("jit", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	rc = SPI_execute_plan(plan, values, NULL, false, 0);
	AtEOXact_GUC(true, nestlevel);
	return rc;
}

static void
el_process_group(int max_events, ElBatchResult *result)
{
	Datum		limit = Int32GetDatum(max_events);
	Oid			int4type = INT4OID;
	Oid			uuidarraytype = UUIDARRAYOID;
	ElEvent    *events;
	Datum	   *done;
	int			ndone = 0;
	int			n;
	int			min_chunk;
	int			rc;

	if (max_events == el_batch_size)
	{
		if (claim_batch_sql_size != el_batch_size)
		{
			MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

			/* Its kept plans are keyed by the text's address. */
			el_forget_plans();
			if (claim_batch_sql != NULL)
				pfree(claim_batch_sql);
			claim_batch_sql = psprintf(EL_CLAIM_SQL("%d"), el_batch_size);
			claim_batch_sql_size = el_batch_size;
			MemoryContextSwitchTo(old);
		}
		rc = el_execute_claim(el_group_plan(claim_batch_sql, 0, NULL, 0), NULL);
	}
	else
		rc = el_execute_claim(el_group_plan(claim_sql, 1, &int4type, 0), &limit);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "enterprise_lab: claiming events failed: %s",
			 SPI_result_code_string(rc));

	n = (int) SPI_processed;
	result->claimed = n;
	if (n == 0)
		return;

	events = palloc0(sizeof(ElEvent) * n);
	for (int i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		pg_uuid_t  *id = palloc(sizeof(pg_uuid_t));

		memcpy(id, DatumGetUUIDP(SPI_getbinval(tup, desc, 1, &isnull)), sizeof(pg_uuid_t));
		events[i].id = UUIDPGetDatum(id);
		events[i].event_type = SPI_getvalue(tup, desc, 2);
		events[i].attempts = DatumGetInt32(SPI_getbinval(tup, desc, 3, &isnull));
	}
	SPI_freetuptable(SPI_tuptable);

	/* Only the workers: a session calling process_events() may own no table. */
	if (n == max_events && el_am_background_worker())
		el_analyze_if_never_analyzed();

	/*
	 * The workers write the batch's count deltas once, at its end, not once
	 * per chunk statement (status_counts.c).  Only they: the writes are
	 * made as the current user, and a worker's is a superuser.
	 */
	if (el_am_background_worker())
		el_hold_counts();

	/*
	 * Keep at least a quarter of the subtransaction budget for bisecting:
	 * large batches get proportionally larger chunks.
	 */
	if (adaptive_chunk <= 0 || adaptive_chunk > el_chunk_size)
		adaptive_chunk = el_chunk_size;
	min_chunk = (n + (EL_MAX_SUBXACTS_PER_BATCH * 3 / 4) - 1) /
		(EL_MAX_SUBXACTS_PER_BATCH * 3 / 4);

	for (int start = 0, len = 0; start < n; start += len)
	{
		int			subxacts_before = result->subxacts;

		len = Min(Max(adaptive_chunk, min_chunk), n - start);

		el_apply_range(events + start, len, result);

		if (result->subxacts - subxacts_before > 1)
			adaptive_chunk = Max(1, adaptive_chunk / 2);
		else if (events[start].outcome == EL_APPLIED)
			adaptive_chunk = Min(el_chunk_size, adaptive_chunk * 2);
	}

	done = palloc(sizeof(Datum) * n);
	for (int i = 0; i < n; i++)
	{
		switch (events[i].outcome)
		{
			case EL_APPLIED:
				done[ndone++] = events[i].id;
				break;
			case EL_FAILED:
				el_record_failure(&events[i], result);
				break;
			default:
				result->released++;
				break;
		}
	}

	if (ndone > 0)
	{
		Datum		arr = PointerGetDatum(construct_array(done, ndone, UUIDOID,
														  UUID_LEN, false, TYPALIGN_CHAR));

		rc = SPI_execute_plan(el_group_plan(complete_sql, 1, &uuidarraytype, 0),
							  &arr, NULL, false, 0);
		if (rc != SPI_OK_UPDATE || SPI_processed != (uint64) ndone)
			elog(ERROR, "enterprise_lab: completing %d events updated " UINT64_FORMAT " rows",
				 ndone, SPI_processed);
		el_enqueue_deliveries(arr);
		el_throughput_note_completed(ndone);
	}
	el_write_held_counts();
	result->completed = ndone;
}

/*
 * One batch: the first shard group, in turn from the one after the last
 * batch's, that has due events (on a single node, the base tables).  Every
 * group is visited before one is visited again, so a busy group does not
 * starve the others, and the workers of a node start at different groups.
 */
void
el_process_batch(int max_events, ElBatchResult *result)
{
	ElShardGroup **groups;
	int			ngroups;

	memset(result, 0, sizeof(*result));

	/*
	 * Plan again after 1, 2, 4, ... batches and then every 1024: cheap, and
	 * it keeps the plans fitted to tables that grow from empty; a plan a
	 * worker keeps was chosen for the table sizes of when it was made, and
	 * autovacuum's ANALYZE (which invalidates plans) may come only a minute
	 * later.
	 */
	batches_run++;
	if ((batches_run & (batches_run - 1)) == 0 || batches_run % 1024 == 0)
		el_forget_plans();
	if (!el_tables_are_current())
		return;

	/* The last batch failed: the shards may have moved. */
	if (batch_running)
		el_forget_shard_groups();
	batch_running = true;
	ngroups = el_local_shard_groups(&groups);
	if (next_group < 0)
		next_group = (int) (pg_prng_uint32(&pg_global_prng_state) % 1024);
	for (int k = 0; k < ngroups && result->claimed == 0; k++)
	{
		int			g = (next_group + k) % ngroups;

		el_use_shard_group(groups[g]);
		el_process_group(max_events, result);
		if (result->claimed > 0)
			next_group = g + 1;
	}
	el_use_shard_group(NULL);
	batch_running = false;
}

/*
 * integration.process_events(max_events int) RETURNS int
 *
 * Processes up to max_events due events in the caller's transaction and
 * returns how many were attempted (completed, failed or dead-lettered).
 */
PG_FUNCTION_INFO_V1(el_process_events);
Datum
el_process_events(PG_FUNCTION_ARGS)
{
	int32		max_events = PG_GETARG_INT32(0);
	ElBatchResult result;

	if (max_events < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_events must be at least 1"),
				 errdetail("The value given was %d.", max_events),
				 errhint("Pass the most events this call may process, e.g. integration.process_events(100).")));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "enterprise_lab: SPI_connect failed");
	el_process_batch(max_events, &result);
	SPI_finish();

	PG_RETURN_INT32(result.completed + result.failed + result.dead_lettered);
}
