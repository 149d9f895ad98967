/*
 * delivery_outbox.c
 *		Webhook deliveries written with the events they announce.
 *
 * Runs in the processing core's top-level transaction, right after a batch
 * of events is marked completed: one INSERT ... SELECT joins the completed
 * events to the enabled subscriptions that want their type and writes one
 * delivery per pair, payload included (a CloudEvents 1.0 event holding the
 * integration event and the canonical object's state after it).  A batch
 * that rolls back therefore delivers nothing, and a committed one is never
 * forgotten.  The statement is parsed once per backend and shard group and
 * kept, and planned for each batch.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "nodes/makefuncs.h"
#include "nodes/parsenodes.h"
#include "utils/timestamp.h"

#include "enterprise_lab.h"
#include "webhook.h"

/*
 * The conflict target is deliveries_once_per_event by its columns: on a
 * Citus shard the constraint has a name of its own.
 */
static const char *const enqueue_sql =
"INSERT INTO integration.deliveries"
"       (subscription_id, event_id, event_seq, submission_id, event_type, payload)"
"SELECT s.id, e.id, e.seq, e.submission_id, e.event_type,"
"       pg_catalog.jsonb_build_object("
"         'specversion', '1.0',"
"         'id', e.id,"
"         'source', '/enterprise_lab/' || pg_catalog.current_database(),"
"         'type', 'enterprise_lab.' || e.event_type,"
"         'subject', e.submission_id,"
"         'time', e.created_at,"
"         'datacontenttype', 'application/json',"
"         'data', pg_catalog.jsonb_build_object("
"           'event', pg_catalog.jsonb_build_object("
"             'id', e.id, 'seq', e.seq, 'type', e.event_type,"
"             'submission_id', e.submission_id, 'source_system', e.source_system,"
"             'aggregate_type', e.aggregate_type, 'aggregate_id', e.aggregate_id,"
"             'payload', e.payload, 'created_at', e.created_at),"
"           'canonical_object', pg_catalog.to_jsonb(b)))"
"  FROM " EL_CHUNK_EVENTS " e"
"  JOIN integration.subscriptions s"
"    ON s.enabled AND (s.event_types IS NULL OR e.event_type = ANY (s.event_types))"
"  LEFT JOIN canonical.business_objects b"
"    ON b.submission_id = e.submission_id AND b.object_type = 'service_request'"
" ORDER BY e.seq"
"    ON CONFLICT (subscription_id, event_id, submission_id) DO NOTHING";

/* Most databases have no subscription: then a batch plans nothing. */
static const char *const any_subscription_sql =
"SELECT 1 FROM integration.subscriptions WHERE enabled LIMIT 1";

void
el_enqueue_deliveries(Datum completed_event_ids)
{
	Oid			argtype = UUIDARRAYOID;
	int			rc;

	/*
	 * A database still on an extension version without deliveries (before
	 * ALTER EXTENSION ... UPDATE) has nothing to deliver to.
	 */
	if (!OidIsValid(RangeVarGetRelid(makeRangeVar("integration", "deliveries", -1), NoLock, true)))
		return;

	rc = SPI_execute_plan(el_group_plan(any_subscription_sql, 0, NULL, 0), NULL, NULL, true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "enterprise_lab: reading the subscriptions failed: %s",
			 SPI_result_code_string(rc));
	if (SPI_processed == 0)
		return;

	/*
	 * Planned for each batch: a generic plan made while the tables were
	 * small (say, a join by sequential scan) would stay as they grow.
	 */
	rc = SPI_execute_plan(el_group_plan(enqueue_sql, 1, &argtype, CURSOR_OPT_CUSTOM_PLAN),
						  &completed_event_ids, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "enterprise_lab: writing webhook deliveries failed: %s",
			 SPI_result_code_string(rc));
}
