/*
 * handlers.c
 *		Built-in event handlers, applied set-based to a chunk of events.
 *
 * Each handler is a few SQL statements over "the events of this chunk"
 * (EL_CHUNK_EVENTS), prepared once per backend and shard group and kept.
 * They draw sequence values themselves: a Citus shard has no column
 * default that calls nextval().  Every derived row
 * has a unique key and is written with INSERT ... ON CONFLICT, so applying
 * the same event twice changes nothing.  A handler that cannot apply an
 * event raises an error; the core then bisects the chunk to find it.
 *
 * Event types without a built-in handler are dispatched, one event at a
 * time, to the SQL function registered in integration.event_handlers.  It
 * is called by OID (a later function of the same name changes nothing) and
 * runs as its owner, as pg_cron runs a job as the role that scheduled it:
 * the workers are superusers, and a handler must not be a way to borrow
 * their rights.  The call is a security-restricted operation, so the
 * handler cannot SET ROLE or SET SESSION AUTHORIZATION its way back.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/uuid.h"

#include "enterprise_lab.h"

#define EV_REQUEST_CREATED		"RequestCreated"
#define EV_CASE_STATUS_CHANGED	"OperationalCaseStatusChanged"

/*
 * RequestCreated, in one statement: the service request becomes integrated,
 * the operational case opens with its first history row, the canonical
 * object is written in the mapped status, and the two lineage edges and the
 * success sync log link them.  One statement reads the chunk's events and
 * requests once, where one statement per write read them once each.
 *
 * Its parts share one snapshot and do not see each other's rows, so the ids
 * of the new case and object are drawn up front, in the request's row: when
 * every case and object of the chunk is new, the edges and the log take
 * them from there, without a join.  Otherwise ("all_new" false) they link
 * to the rows just inserted or, for those that existed, to the tables.
 *
 * Two variants.  The first application of an event inserts plainly.  An
 * event applied again (an upstream duplicate, a replay) finds its case
 * already there, and the insert raises unique_violation; the core then runs
 * the chunk once more with the second variant, whose ON CONFLICT DO NOTHING
 * keeps the rows that exist.  Checking for conflicts costs four index
 * descents per event, a tenth of the statement: only events applied again
 * pay it.  The statement returns how many requests it integrated and how
 * many events it logged; fewer than the chunk's events means something is
 * missing.
 */
#define REQUEST_CREATED_SQL(case_conflict, object_conflict, edge_conflict) \
"WITH req AS (" \
"  UPDATE source_system.service_requests r" \
"     SET lifecycle_status = 'integrated'," \
"         integrated_at = COALESCE(r.integrated_at, pg_catalog.now())," \
"         updated_at = pg_catalog.now()" \
"    FROM " EL_CHUNK_EVENTS " e" \
"   WHERE r.id = e.aggregate_id AND r.submission_id = e.submission_id" \
"  RETURNING r.id, r.submission_id, r.source_system, r.request_number, r.request_type_code," \
"            r.priority_code, r.team_code, r.customer_id, r.agreement_id, r.summary," \
"            e.id AS event_id, e.seq AS event_seq, e.attempts + 1 AS attempt," \
"            enterprise_lab.uuid_v7() AS case_id, enterprise_lab.uuid_v7() AS object_id)," \
" new_case AS (" \
"  INSERT INTO operational.operation_cases AS c" \
"         (id, submission_id, service_request_id, external_reference," \
"          request_type_code, priority_code, team_code, processing_status)" \
"  SELECT r.case_id, r.submission_id, r.id, 'OC-' || pg_catalog.substr(r.request_number, 4)," \
"         r.request_type_code, r.priority_code, r.team_code, 'open'" \
"    FROM req r" \
	case_conflict \
"  RETURNING c.id, c.submission_id, c.service_request_id, c.external_reference, c.team_code)," \
" history AS (" \
"  INSERT INTO operational.case_status_history" \
"         (id, submission_id, case_id, previous_status, new_status, changed_by, change_reason, team_code)" \
"  SELECT pg_catalog.nextval('operational.case_status_history_seq'), submission_id, id, NULL, 'open'," \
"         'enterprise_lab', 'case opened from the service request', team_code" \
"    FROM new_case)," \
" new_object AS (" \
"  INSERT INTO canonical.business_objects AS b" \
"         (id, submission_id, object_type, source_system, source_reference," \
"          canonical_category, lifecycle_status, attributes, last_event_seq)" \
"  SELECT r.object_id, r.submission_id, 'service_request', r.source_system, r.request_number," \
"         rt.canonical_category, sm.canonical_status," \
"         pg_catalog.jsonb_build_object(" \
"           'request_number', r.request_number," \
"           'request_type', r.request_type_code," \
"           'priority', r.priority_code," \
"           'team', r.team_code," \
"           'customer_code', cu.code," \
"           'customer_name', cu.name," \
"           'agreement_number', ag.agreement_number," \
"           'summary', r.summary)," \
"         r.event_seq" \
"    FROM req r" \
"    JOIN reference.request_types rt ON rt.code = r.request_type_code" \
"    JOIN reference.customers cu ON cu.id = r.customer_id" \
"    LEFT JOIN reference.agreements ag ON ag.id = r.agreement_id" \
"    JOIN canonical.status_map sm ON sm.operational_status = 'open'" \
	object_conflict \
"  RETURNING b.id, b.submission_id, b.source_system, b.source_reference, b.lifecycle_status)," \
" all_new AS (" \
"  SELECT (SELECT pg_catalog.count(*) FROM new_case) = (SELECT pg_catalog.count(*) FROM req)" \
"     AND (SELECT pg_catalog.count(*) FROM new_object) = (SELECT pg_catalog.count(*) FROM req) AS yes)," \
" cases AS (" \
"  SELECT id, submission_id, service_request_id, external_reference FROM new_case" \
"  UNION ALL" \
"  SELECT c.id, c.submission_id, c.service_request_id, c.external_reference" \
"    FROM req r" \
"    JOIN operational.operation_cases c" \
"      ON c.service_request_id = r.id AND c.submission_id = r.submission_id" \
"   WHERE NOT EXISTS (SELECT 1 FROM new_case n WHERE n.service_request_id = r.id))," \
" objects AS (" \
"  SELECT id, submission_id, source_system, source_reference, lifecycle_status FROM new_object" \
"  UNION ALL" \
"  SELECT b.id, b.submission_id, b.source_system, b.source_reference, b.lifecycle_status" \
"    FROM req r" \
"    JOIN canonical.business_objects b" \
"      ON b.source_system = r.source_system AND b.source_reference = r.request_number" \
"     AND b.submission_id = r.submission_id" \
"   WHERE NOT EXISTS (SELECT 1 FROM new_object n" \
"                      WHERE n.source_reference = r.request_number AND n.submission_id = r.submission_id))," \
" linked AS (" \
"  SELECT r.event_id, r.submission_id, r.attempt, r.id AS request_id, r.request_number," \
"         r.case_id, 'OC-' || pg_catalog.substr(r.request_number, 4) AS external_reference," \
"         r.object_id, sm.canonical_status AS lifecycle_status" \
"    FROM req r" \
"    JOIN canonical.status_map sm ON sm.operational_status = 'open'" \
"   WHERE (SELECT yes FROM all_new)" \
"  UNION ALL" \
"  SELECT r.event_id, r.submission_id, r.attempt, r.id, r.request_number," \
"         c.id, c.external_reference, o.id, o.lifecycle_status" \
"    FROM req r" \
"    JOIN cases c ON c.service_request_id = r.id AND c.submission_id = r.submission_id" \
"    JOIN objects o" \
"      ON o.source_system = r.source_system AND o.source_reference = r.request_number" \
"     AND o.submission_id = r.submission_id" \
"   WHERE NOT (SELECT yes FROM all_new))," \
" edges AS (" \
"  INSERT INTO canonical.lineage_records" \
"         (submission_id, from_type, from_id, to_type, to_id, relationship, event_id)" \
"  SELECT l.submission_id, x.from_type, x.from_id, x.to_type, x.to_id, x.relationship, l.event_id" \
"    FROM linked l CROSS JOIN LATERAL (VALUES" \
"         ('service_request', l.request_id, 'operation_case', l.case_id, 'synchronized_to')," \
"         ('operation_case', l.case_id, 'business_object', l.object_id, 'normalized_to'))" \
"         AS x(from_type, from_id, to_type, to_id, relationship)" \
	edge_conflict \
" )," \
" logged AS (" \
"  INSERT INTO integration.sync_logs" \
"         (id, submission_id, event_id, event_type, action, outcome, message, details, attempt)" \
"  SELECT pg_catalog.nextval('integration.sync_log_seq'), l.submission_id, l.event_id, 'RequestCreated'," \
"         'request_integrated', 'success'," \
"         pg_catalog.format('%s integrated: case %s, canonical object %s'," \
"                           l.request_number, l.external_reference, l.lifecycle_status)," \
"         pg_catalog.jsonb_build_object('service_request_id', l.request_id," \
"                                       'case_id', l.case_id," \
"                                       'business_object_id', l.object_id)," \
"         l.attempt" \
"    FROM linked l" \
"  RETURNING 1)" \
" SELECT (SELECT pg_catalog.count(*) FROM req), (SELECT pg_catalog.count(*) FROM logged)"

static const char *const request_created_sql = REQUEST_CREATED_SQL("", "", "");

static const char *const request_created_again_sql = REQUEST_CREATED_SQL(
"  ON CONFLICT (service_request_id, submission_id) DO NOTHING",
"  ON CONFLICT (source_system, source_reference, submission_id) DO NOTHING",
"  ON CONFLICT (from_id, to_id, relationship, submission_id) DO NOTHING");

static const char *const request_missing_sql =
"SELECT e.id::text, e.aggregate_id::text"
"  FROM " EL_CHUNK_EVENTS " e"
" WHERE NOT EXISTS (SELECT 1 FROM source_system.service_requests r"
"                    WHERE r.id = e.aggregate_id AND r.submission_id = e.submission_id)"
" LIMIT 1";

/*
 * OperationalCaseStatusChanged: map the new operational status to the
 * canonical one and apply it unless the object already holds a newer event.
 */
static const char *const status_sync_sql =
"WITH m AS ("
"  SELECT e.id AS event_id, e.seq, e.submission_id, e.attempts + 1 AS attempt,"
"         e.aggregate_id AS case_id, e.payload ->> 'new_status' AS operational_status,"
"         sm.canonical_status, b.id AS object_id, b.lifecycle_status AS previous_status,"
"         b.last_event_seq < e.seq AS is_newer"
"    FROM " EL_CHUNK_EVENTS " e"
"    JOIN canonical.status_map sm ON sm.operational_status = e.payload ->> 'new_status'"
"    JOIN canonical.business_objects b"
"      ON b.submission_id = e.submission_id AND b.object_type = 'service_request'),"
" upd AS ("
"  UPDATE canonical.business_objects b"
"     SET lifecycle_status = m.canonical_status, last_event_seq = m.seq,"
"         updated_at = pg_catalog.now()"
"    FROM m"
"   WHERE b.id = m.object_id AND m.is_newer)"
"INSERT INTO integration.sync_logs"
"       (id, submission_id, event_id, event_type, action, outcome, message, details, attempt)"
"SELECT pg_catalog.nextval('integration.sync_log_seq'), m.submission_id, m.event_id, 'OperationalCaseStatusChanged',"
"       CASE WHEN m.is_newer THEN 'canonical_status_synced' ELSE 'stale_event_ignored' END,"
"       'success',"
"       CASE WHEN m.is_newer"
"            THEN pg_catalog.format('canonical status %s -> %s (operational %s)',"
"                                   m.previous_status, m.canonical_status, m.operational_status)"
"            ELSE pg_catalog.format('ignored: the canonical object already holds a newer event')"
"       END,"
"       pg_catalog.jsonb_build_object('case_id', m.case_id, 'business_object_id', m.object_id,"
"                                     'operational_status', m.operational_status,"
"                                     'canonical_status', m.canonical_status,"
"                                     'previous_canonical_status', m.previous_status),"
"       m.attempt"
"  FROM m";

static const char *const status_unmapped_sql =
"SELECT e.id::text, e.payload ->> 'new_status', sm.canonical_status IS NOT NULL,"
"       e.submission_id::text"
"  FROM " EL_CHUNK_EVENTS " e"
"  LEFT JOIN canonical.status_map sm ON sm.operational_status = e.payload ->> 'new_status'"
" WHERE (sm.operational_status IS NULL"
"        OR NOT EXISTS (SELECT 1 FROM canonical.business_objects b"
"                        WHERE b.submission_id = e.submission_id"
"                          AND b.object_type = 'service_request'))"
" LIMIT 1";

static const char *const open_unmapped_sql =
"SELECT 1 WHERE $1 IS NOT NULL AND NOT EXISTS"
"  (SELECT 1 FROM canonical.status_map WHERE operational_status = 'open')";

/*
 * Registered handlers: the function, its owner and the event row to pass,
 * as a row of integration.events also when read from a shard (whose row
 * type is its own); the quotes keep that name from being replaced by the
 * shard's (shard_groups.c).
 */
static const char *const custom_lookup_sql =
"SELECT h.handler::pg_catalog.oid, p.proowner, ROW(e.*)::integration.\"events\""
"  FROM integration.events e"
"  JOIN integration.event_handlers h ON h.event_type = e.event_type AND h.enabled"
"  JOIN pg_catalog.pg_proc p ON p.oid = h.handler"
" WHERE e.id = $1";

static const char *const custom_log_sql =
"INSERT INTO integration.sync_logs"
"       (id, submission_id, event_id, event_type, action, outcome, message, details, attempt)"
"SELECT pg_catalog.nextval('integration.sync_log_seq'), e.submission_id, e.id, e.event_type, 'handled', 'success',"
"       pg_catalog.format('handled by %s', h.handler::pg_catalog.regproc),"
"       '{}'::jsonb, e.attempts + 1"
"  FROM integration.events e"
"  JOIN integration.event_handlers h ON h.event_type = e.event_type"
" WHERE e.id = ANY ($1)";

enum
{
	P_REQUEST_CREATED,
	P_REQUEST_CREATED_AGAIN,
	P_REQUEST_MISSING,
	P_STATUS_SYNC,
	P_STATUS_UNMAPPED,
	P_CUSTOM_LOOKUP,
	P_CUSTOM_LOG,
	P_OPEN_UNMAPPED,
	P_COUNT
};

static const char *const *const plan_sources[P_COUNT] = {
	&request_created_sql, &request_created_again_sql, &request_missing_sql, &status_sync_sql,
	&status_unmapped_sql, &custom_lookup_sql, &custom_log_sql, &open_unmapped_sql,
};

/* Prepared on first use for each shard group and kept (shard_groups.c). */
static SPIPlanPtr
el_plan(int which)
{
	Oid			argtype = which == P_CUSTOM_LOOKUP ? UUIDOID : UUIDARRAYOID;

	return el_group_plan(*plan_sources[which], 1, &argtype, 0);
}

static uint64
el_run(int which, Datum arg, int expected_rc)
{
	int			rc = SPI_execute_plan(el_plan(which), &arg, NULL, false, 0);

	if (rc != expected_rc)
		elog(ERROR, "enterprise_lab: handler statement %d failed: %s",
			 which, SPI_result_code_string(rc));
	return SPI_processed;
}

static Datum
el_uuid_array(Datum *ids, int n)
{
	return PointerGetDatum(construct_array(ids, n, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR));
}

bool
el_is_builtin_event_type(const char *event_type)
{
	return strcmp(event_type, EV_REQUEST_CREATED) == 0 ||
		strcmp(event_type, EV_CASE_STATUS_CHANGED) == 0;
}

static void
el_apply_request_created(Datum *ids, int n, bool again)
{
	Datum		arr = el_uuid_array(ids, n);
	bool		isnull;
	int64		integrated,
				logged;

	el_run(again ? P_REQUEST_CREATED_AGAIN : P_REQUEST_CREATED, arr, SPI_OK_SELECT);
	integrated = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	logged = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	if (logged == n)
		return;

	if (integrated < n)
	{
		el_run(P_REQUEST_MISSING, arr, SPI_OK_SELECT);
		if (SPI_processed > 0)
			ereport(ERROR,
					(errcode(ERRCODE_NO_DATA_FOUND),
					 errmsg("service request %s of event %s does not exist",
							SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2),
							SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1)),
					 errhint("A RequestCreated event's aggregate_id must name a row of source_system.service_requests.")));
	}
	el_run(P_OPEN_UNMAPPED, arr, SPI_OK_SELECT);
	if (SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("no canonical status is mapped for operational status \"open\""),
				 errdetail("A new case is open, and its canonical object needs the mapped status."),
				 errhint("Add the mapping to canonical.status_map, then replay the event.")));
	ereport(ERROR,
			(errcode(ERRCODE_DATA_EXCEPTION),
			 errmsg("RequestCreated could not link every request to a case and a canonical object"),
			 errhint("Check that each request's type and customer exist in the reference data.")));
}

static void
el_apply_status_changed(Datum *ids, int n)
{
	Datum		arr = el_uuid_array(ids, n);

	if (el_run(P_STATUS_SYNC, arr, SPI_OK_INSERT) == (uint64) n)
		return;

	el_run(P_STATUS_UNMAPPED, arr, SPI_OK_SELECT);
	if (SPI_processed > 0)
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		char	   *mapped = SPI_getvalue(tup, desc, 3);

		if (strcmp(mapped, "f") == 0)
			ereport(ERROR,
					(errcode(ERRCODE_NO_DATA_FOUND),
					 errmsg("no canonical status is mapped for operational status \"%s\"",
							SPI_getvalue(tup, desc, 2) ? SPI_getvalue(tup, desc, 2) : ""),
					 errdetail("Event %s carries it as new_status.", SPI_getvalue(tup, desc, 1)),
					 errhint("Add the mapping to canonical.status_map, then replay the event.")));
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("submission %s has no canonical object yet", SPI_getvalue(tup, desc, 4)),
				 errdetail("Event %s changes a case whose request was never integrated.",
						   SPI_getvalue(tup, desc, 1)),
				 errhint("Process or replay the submission's RequestCreated event first.")));
	}
	ereport(ERROR,
			(errcode(ERRCODE_DATA_EXCEPTION),
			 errmsg("OperationalCaseStatusChanged could not be applied to every event of the chunk")));
}

/*
 * Call a registered handler with the event's row, as the handler's owner.
 * On error the chunk's subtransaction is rolled back, which also restores
 * the user id and the settings the handler changed.
 */
static void
el_call_handler_as_owner(Oid handler, Oid owner, Datum event_row)
{
	FmgrInfo	flinfo;
	LOCAL_FCINFO(fcinfo, 1);
	Oid			save_userid;
	int			save_sec_context;
	int			save_nestlevel;

	if (el_proc_aclcheck(handler, owner, ACL_EXECUTE) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("the owner of handler %s may not execute it", format_procedure(handler)),
				 errhint("GRANT EXECUTE on the function to %s.", GetUserNameFromId(owner, false))));

	fmgr_info(handler, &flinfo);
	InitFunctionCallInfoData(*fcinfo, &flinfo, 1, InvalidOid, NULL, NULL);
	fcinfo->args[0].value = event_row;
	fcinfo->args[0].isnull = false;

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(owner, save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	save_nestlevel = NewGUCNestLevel();

	(void) FunctionCallInvoke(fcinfo);

	AtEOXact_GUC(false, save_nestlevel);
	SetUserIdAndSecContext(save_userid, save_sec_context);
}

static void
el_apply_custom(Datum *ids, char **types, int n)
{
	for (int i = 0; i < n; i++)
	{
		HeapTuple	tup;
		TupleDesc	desc;
		bool		isnull;
		Oid			handler,
					owner;
		Datum		row;
		int			rc;

		rc = SPI_execute_plan(el_plan(P_CUSTOM_LOOKUP), &ids[i], NULL, true, 1);
		if (rc != SPI_OK_SELECT)
			elog(ERROR, "enterprise_lab: looking up the handler failed: %s",
				 SPI_result_code_string(rc));
		if (SPI_processed == 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_FUNCTION),
					 errmsg("no handler is registered for event type \"%s\"", types[i]),
					 errhint("Register a function taking integration.events in integration.event_handlers, then replay the event.")));
		tup = SPI_tuptable->vals[0];
		desc = SPI_tuptable->tupdesc;
		handler = DatumGetObjectId(SPI_getbinval(tup, desc, 1, &isnull));
		owner = DatumGetObjectId(SPI_getbinval(tup, desc, 2, &isnull));
		row = SPI_getbinval(tup, desc, 3, &isnull);

		el_call_handler_as_owner(handler, owner, row);
		CHECK_FOR_INTERRUPTS();
	}
	el_run(P_CUSTOM_LOG, el_uuid_array(ids, n), SPI_OK_INSERT);
}

/*
 * Apply one chunk: group the events by handler and run each group's
 * statements once.  The chunk holds at most one event per submission (the
 * claim takes only each submission's first unfinished event), so the order
 * between groups does not matter.
 */
void
el_apply_chunk(Datum *event_ids, char **event_types, int n, bool again)
{
	Datum	   *created = palloc(sizeof(Datum) * n);
	Datum	   *changed = palloc(sizeof(Datum) * n);
	Datum	   *custom = palloc(sizeof(Datum) * n);
	char	  **custom_types = palloc(sizeof(char *) * n);
	int			ncreated = 0,
				nchanged = 0,
				ncustom = 0;

	for (int i = 0; i < n; i++)
	{
		if (strcmp(event_types[i], EV_REQUEST_CREATED) == 0)
			created[ncreated++] = event_ids[i];
		else if (strcmp(event_types[i], EV_CASE_STATUS_CHANGED) == 0)
			changed[nchanged++] = event_ids[i];
		else
		{
			custom_types[ncustom] = event_types[i];
			custom[ncustom++] = event_ids[i];
		}
	}

	if (ncreated > 0)
		el_apply_request_created(created, ncreated, again);
	if (nchanged > 0)
		el_apply_status_changed(changed, nchanged);
	if (ncustom > 0)
		el_apply_custom(custom, custom_types, ncustom);
}
