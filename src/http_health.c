/*
 * http_health.c
 *		GET /health: whether the gateway reaches its database and the
 *		extension, how many event workers run, how many events wait.
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "enterprise_lab.h"
#include "gateway.h"

static int
el_running_workers(void)
{
	int			n = 0;

	if (el_shared == NULL)
		return 0;
	for (int i = 0; i < EL_MAX_WORKERS; i++)
	{
		ElWorkerSlot *slot = &el_shared->workers[i];

		SpinLockAcquire(&slot->mutex);
		if (slot->pid != 0)
			n++;
		SpinLockRelease(&slot->mutex);
	}
	return n;
}

/*
 * The answer costs the same with ten events or ten million, and runs with
 * the anonymous role's rights: workers from shared memory, pending events
 * from api.health(), which counts through a partial index and stops at a
 * cap.
 */
enum MHD_Result
el_handle_health(struct MHD_Connection *conn)
{
	MemoryContext keep = CurrentMemoryContext;
	volatile bool extension = false;
	volatile int64 pending = -1;
	ErrorData  *volatile error = NULL;
	char	   *body;

	if (el_gateway_has_database)
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		PG_TRY();
		{
			el_request_begin();
			extension = OidIsValid(get_extension_oid("enterprise_lab", true));
			(void) set_config_option("role", el_http_anon_role, PGC_USERSET, PGC_S_SESSION,
									 GUC_ACTION_LOCAL, true, 0, false);
			if (extension &&
				SPI_execute("SELECT (api.health('{}') ->> 'pending_events')::bigint",
							true, 1) == SPI_OK_SELECT)
			{
				bool		isnull;
				Datum		d = SPI_getbinval(SPI_tuptable->vals[0],
											  SPI_tuptable->tupdesc, 1, &isnull);

				pending = isnull ? -1 : DatumGetInt64(d);
			}
			SPI_finish();
			PopActiveSnapshot();
			CommitTransactionCommand();
			el_stop_request_timeout();
		}
		PG_CATCH();
		{
			MemoryContextSwitchTo(keep);
			error = CopyErrorData();
			FlushErrorState();
			el_stop_request_timeout();
			AbortCurrentTransaction();
		}
		PG_END_TRY();
		MemoryContextSwitchTo(keep);
	}

	body = psprintf("{\"status\":\"%s\",\"database\":%s,\"extension\":%s,"
					"\"workers_running\":%d,\"pending_events\":%s}",
					extension && !error ? "ok" : "unavailable",
					el_gateway_has_database ? "true" : "false",
					extension ? "true" : "false",
					el_running_workers(),
					pending >= 0 ? psprintf(INT64_FORMAT, pending) : "null");
	if (error)
		ereport(LOG,
				(errmsg("enterprise_lab gateway: health check failed: %s", error->message)));
	return el_respond(conn,
					  extension && !error ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
					  "application/json; charset=utf-8", body, strlen(body));
}
