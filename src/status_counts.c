/*
 * status_counts.c
 *		The status-count trigger, and the slot a backend adds its deltas to.
 *
 * The maintained counts (dashboard.status_count_slots, src/sql/21_counts.sql)
 * are split into one row per (layer, status, slot, part) and summed on read.
 * The slot is the backend's process number, which no two running backends
 * share, so two transactions never update the same counter row: a submission
 * and a worker batch never wait for each other's counts, and cannot deadlock
 * on them whatever order their triggers run in.  The number of rows is
 * bounded by the statuses times max_connections plus the auxiliary
 * processes, not by the data.
 *
 * The trigger is in C because it fires on every statement that writes a
 * counted table: three times per submission.  In PL/pgSQL it cost a
 * function call with its own settings, a query over the transition table
 * and a second function with a two-statement CTE; here it is one pass over
 * the transition table and one prepared UPDATE per status that changed.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/tuplestore.h"

#include "enterprise_lab.h"

/*
 * A row updated again and again by one transaction keeps every version
 * until the transaction ends, and each update walks them all: a transaction
 * moves on to a new part of its slot after every EL_COUNT_PART_STATEMENTS
 * count statements, and the first count statement of a later transaction
 * folds the parts back into part 0 (only this backend writes its slot).
 */
#define EL_COUNT_PART_STATEMENTS 64

/* Count statements of the current transaction. */
static int	count_statements = 0;

/* False until this backend folded its slot's parts (it may hold an earlier backend's). */
static bool count_folded = false;
static bool count_callback_registered = false;

static SPIPlanPtr update_plan = NULL;
static SPIPlanPtr insert_plan = NULL;
static SPIPlanPtr truncate_plan = NULL;

typedef struct StatusDelta
{
	char	   *status;
	int64		delta;
} StatusDelta;

static void
count_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PARALLEL_ABORT:
			count_statements = 0;
			break;
		default:
			break;
	}
}

/*
 * The statements are schema-qualified down to their operators, so they
 * mean the same under any search_path.
 */
static SPIPlanPtr
count_prepare(const char *sql, int nargs, Oid *argtypes)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, argtypes);

	if (plan == NULL)
		elog(ERROR, "enterprise_lab: SPI_prepare failed: %s",
			 SPI_result_code_string(SPI_result));
	SPI_keepplan(plan);
	return plan;
}

static void
count_prepare_plans(void)
{
	Oid			argtypes[5] = {TEXTOID, TEXTOID, INT4OID, INT4OID, INT8OID};

	if (update_plan == NULL)
		update_plan = count_prepare(
			"UPDATE dashboard.status_count_slots"
			"   SET count = count OPERATOR(pg_catalog.+) $5"
			" WHERE layer OPERATOR(pg_catalog.=) $1 AND status OPERATOR(pg_catalog.=) $2"
			"   AND slot OPERATOR(pg_catalog.=) $3 AND part OPERATOR(pg_catalog.=) $4",
			5, argtypes);
	if (insert_plan == NULL)
		insert_plan = count_prepare(
			"INSERT INTO dashboard.status_count_slots (layer, status, slot, part, count)"
			" VALUES ($1, $2, $3, $4, $5)",
			5, argtypes);
	if (truncate_plan == NULL)
		truncate_plan = count_prepare(
			"DELETE FROM dashboard.status_count_slots WHERE layer OPERATOR(pg_catalog.=) $1",
			1, argtypes);
}

/* Add sign to the delta of each row's status in a transition table. */
static void
count_transition_rows(Tuplestorestate *rows, Relation rel, AttrNumber attnum, int64 sign,
					  StatusDelta **deltas, int *ndeltas, int *maxdeltas)
{
	TupleTableSlot *slot = MakeSingleTupleTableSlot(RelationGetDescr(rel), &TTSOpsMinimalTuple);
	int			readptr;

	/* A read pointer of our own: other triggers of the statement may read it too. */
	readptr = tuplestore_alloc_read_pointer(rows, EXEC_FLAG_REWIND);
	tuplestore_select_read_pointer(rows, readptr);
	tuplestore_rescan(rows);

	while (tuplestore_gettupleslot(rows, true, false, slot))
	{
		bool		isnull;
		Datum		value = slot_getattr(slot, attnum, &isnull);
		char	   *status;
		int			i;

		CHECK_FOR_INTERRUPTS();
		if (isnull)
			continue;			/* the status columns are NOT NULL */
		status = TextDatumGetCString(value);
		for (i = 0; i < *ndeltas; i++)
			if (strcmp((*deltas)[i].status, status) == 0)
				break;
		if (i == *ndeltas)
		{
			if (*ndeltas == *maxdeltas)
			{
				*maxdeltas *= 2;
				*deltas = repalloc(*deltas, sizeof(StatusDelta) * *maxdeltas);
			}
			(*deltas)[i].status = status;
			(*deltas)[i].delta = 0;
			(*ndeltas)++;
		}
		else
			pfree(status);
		(*deltas)[i].delta += sign;
	}
	ExecDropSingleTupleTableSlot(slot);
}

/*
 * dashboard.count_statuses(layer, status_column): statement-level AFTER
 * trigger for INSERT (REFERENCING NEW TABLE), UPDATE (OLD and NEW), DELETE
 * (OLD) and TRUNCATE.  Adds one delta per status the statement changed to
 * this backend's slot of the layer's counts.
 */
PG_FUNCTION_INFO_V1(el_count_statuses);
Datum
el_count_statuses(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Trigger    *trigger;
	const char *layer;
	int			statement;
	int			part;
	int			slot_number = el_my_proc_number();

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("dashboard.count_statuses() may only be called as a trigger")));
	trigger = trigdata->tg_trigger;
	if (!TRIGGER_FIRED_AFTER(trigdata->tg_event) || !TRIGGER_FIRED_FOR_STATEMENT(trigdata->tg_event) ||
		trigger->tgnargs != 2)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("dashboard.count_statuses() must be an AFTER ... FOR EACH STATEMENT trigger with two arguments"),
				 errhint("Give the layer and the name of the status column.")));
	layer = trigger->tgargs[0];

	if (!count_callback_registered)
	{
		RegisterXactCallback(count_xact_callback, NULL);
		count_callback_registered = true;
	}
	statement = count_statements++;
	part = statement / EL_COUNT_PART_STATEMENTS;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "enterprise_lab: SPI_connect failed");
	count_prepare_plans();

	if (statement == 0 && !count_folded)
	{
		if (SPI_execute("SELECT enterprise_lab.fold_count_parts()", false, 0) != SPI_OK_SELECT)
			elog(ERROR, "enterprise_lab: folding the count parts failed");
		count_folded = true;
	}
	else if (statement == EL_COUNT_PART_STATEMENTS)
		count_folded = false;

	if (TRIGGER_FIRED_BY_TRUNCATE(trigdata->tg_event))
	{
		Datum		arg = CStringGetTextDatum(layer);

		if (SPI_execute_plan(truncate_plan, &arg, NULL, false, 0) != SPI_OK_DELETE)
			elog(ERROR, "enterprise_lab: clearing the counts of layer %s failed", layer);
	}
	else
	{
		Relation	rel = trigdata->tg_relation;
		AttrNumber	attnum = get_attnum(RelationGetRelid(rel), trigger->tgargs[1]);
		int			maxdeltas = 4;
		int			ndeltas = 0;
		StatusDelta *deltas = palloc(sizeof(StatusDelta) * maxdeltas);

		if (attnum == InvalidAttrNumber)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("column \"%s\" of relation \"%s\" does not exist",
							trigger->tgargs[1], RelationGetRelationName(rel))));
		if (trigdata->tg_oldtable != NULL)
			count_transition_rows(trigdata->tg_oldtable, rel, attnum, -1, &deltas, &ndeltas, &maxdeltas);
		if (trigdata->tg_newtable != NULL)
			count_transition_rows(trigdata->tg_newtable, rel, attnum, 1, &deltas, &ndeltas, &maxdeltas);

		for (int i = 0; i < ndeltas; i++)
		{
			Datum		values[5];

			if (deltas[i].delta == 0)
				continue;
			values[0] = CStringGetTextDatum(layer);
			values[1] = CStringGetTextDatum(deltas[i].status);
			values[2] = Int32GetDatum(slot_number);
			values[3] = Int32GetDatum(part);
			values[4] = Int64GetDatum(deltas[i].delta);
			if (SPI_execute_plan(update_plan, values, NULL, false, 0) != SPI_OK_UPDATE)
				elog(ERROR, "enterprise_lab: updating the counts of layer %s failed", layer);
			/* Only this backend writes its slot: no one inserts the row in between. */
			if (SPI_processed == 0 &&
				SPI_execute_plan(insert_plan, values, NULL, false, 0) != SPI_OK_INSERT)
				elog(ERROR, "enterprise_lab: inserting the counts of layer %s failed", layer);
		}
	}

	SPI_finish();
	return PointerGetDatum(NULL);
}

PG_FUNCTION_INFO_V1(el_count_slot);
Datum
el_count_slot(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(el_my_proc_number());
}
