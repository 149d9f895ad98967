/*
 * maintenance.c
 *		SQL access to the settings the maintenance jobs (src/sql/40_maintenance.sql)
 *		depend on.
 *
 * A GUC defined by a library exists in a session only once the library is
 * loaded; reading it through a C function guarantees that, so a pg_cron
 * session or a database without the preloaded workers sees the configured
 * value (or the built-in default), never a raw placeholder string.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/timestamp.h"

#include "enterprise_lab.h"

/*
 * enterprise_lab.event_retention() RETURNS interval
 *
 * The value of enterprise_lab.event_retention, or NULL when it is 0
 * (keep completed events forever).
 */
PG_FUNCTION_INFO_V1(el_event_retention);
Datum
el_event_retention(PG_FUNCTION_ARGS)
{
	Interval   *result;

	if (el_event_retention_s <= 0)
		PG_RETURN_NULL();

	/* Whole days as days, so that 30 days reads as "30 days". */
	result = (Interval *) palloc0(sizeof(Interval));
	result->day = el_event_retention_s / SECS_PER_DAY;
	result->time = (int64) (el_event_retention_s % SECS_PER_DAY) * USECS_PER_SEC;
	PG_RETURN_INTERVAL_P(result);
}
