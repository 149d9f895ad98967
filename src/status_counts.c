/*
 * status_counts.c
 *		The slot a backend adds its status-count deltas to.
 *
 * The maintained counts (dashboard.status_count_slots, src/sql/21_counts.sql)
 * are split into one row per (layer, status, slot) and summed on read.  The
 * slot is the backend's process number, which no two running backends share,
 * so two transactions never update the same counter row: a submission and a
 * worker batch never wait for each other's counts, and cannot deadlock on
 * them whatever order their triggers run in.  The number of rows is bounded
 * by the statuses times max_connections plus the auxiliary processes, not by
 * the data.
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"

#include "enterprise_lab.h"

PG_FUNCTION_INFO_V1(el_count_slot);
Datum
el_count_slot(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(el_my_proc_number());
}
