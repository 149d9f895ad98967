/*
 * http_metrics.c
 *		GET /metrics: Prometheus' text exposition format, version 0.0.4.
 *
 * A scrape costs the same with ten events or ten million.  Most numbers
 * come from shared memory, read under each slot's spinlock: the event
 * workers' counters and batch-duration histograms (worker.c), the gateway's
 * responses by status (http_response.c) and the delivery worker's counters
 * (delivery_worker.c).  The rest is one call of api.queue_metrics() as the
 * anonymous role (src/sql/46_metrics.sql): events by status from the
 * maintained counts, and the oldest waiting event from the claim's partial
 * index.  When that call fails the shared-memory numbers are still served,
 * with enterprise_lab_database_up 0.
 *
 * Counters live in memory: they start at zero when the server starts, and a
 * worker's when that worker starts, which Prometheus' rate() treats as a
 * counter reset.  enterprise_lab.metrics_access says who may read them.
 */
#include "postgres.h"

#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "enterprise_lab.h"
#include "gateway.h"
#include "webhook.h"

#define EL_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

static void
el_family(StringInfo out, const char *name, const char *type, const char *help)
{
	appendStringInfo(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value: backslash, double quote and newline escaped. */
static void
el_label_value(StringInfo out, const char *value)
{
	appendStringInfoChar(out, '"');
	for (const char *p = value; *p; p++)
	{
		if (*p == '\\' || *p == '"')
			appendStringInfoChar(out, '\\');
		if (*p == '\n')
			appendStringInfoString(out, "\\n");
		else
			appendStringInfoChar(out, *p);
	}
	appendStringInfoChar(out, '"');
}

static char *
el_numeric_text(JsonbValue *v)
{
	if (v == NULL || v->type != jbvNumeric)
		return "NaN";
	return DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
}

/*
 * The numbers api.queue_metrics() read from the tables; false when the
 * call failed (the reason is logged when it is the server's).
 */
static bool
el_queue_metrics(StringInfo out)
{
	ElAuth		auth;
	ElApiCall	call = {0};
	StringInfoData none;
	unsigned int status;
	char	   *json;
	Jsonb	   *jb;
	JsonbValue *events;
	JsonbValue	key;
	JsonbValue	value;
	JsonbIterator *it;
	JsonbIteratorToken token;

	if (!el_gateway_has_database)
		return false;
	el_anonymous_auth(&auth);
	initStringInfo(&none);
	call.name = "queue_metrics";
	call.body = &none;
	call.auth = &auth;
	call.method = MHD_HTTP_METHOD_GET;
	call.path = "/metrics";
	call.ok_status = MHD_HTTP_OK;
	if (!el_call_api(&call, &status, &json))
		return false;
	jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(json)));

	el_family(out, "enterprise_lab_events", "gauge",
			  "Events in integration.events by status (maintained counts).");
	events = getKeyJsonValueFromContainer(&jb->root, "events", 6, NULL);
	if (events && events->type == jbvBinary)
	{
		it = JsonbIteratorInit(events->val.binary.data);
		while ((token = JsonbIteratorNext(&it, &key, true)) != WJB_DONE)
		{
			if (token != WJB_KEY)
				continue;
			token = JsonbIteratorNext(&it, &value, true);
			appendStringInfoString(out, "enterprise_lab_events{status=");
			el_label_value(out, pnstrdup(key.val.string.val, key.val.string.len));
			appendStringInfo(out, "} %s\n", el_numeric_text(&value));
		}
	}
	el_family(out, "enterprise_lab_events_pending", "gauge",
			  "Events waiting to be processed: pending, or failed and awaiting a retry.");
	appendStringInfo(out, "enterprise_lab_events_pending %s\n",
					 el_numeric_text(getKeyJsonValueFromContainer(&jb->root, "pending", 7, NULL)));
	el_family(out, "enterprise_lab_events_oldest_pending_age_seconds", "gauge",
			  "Age of the oldest event waiting to be processed; 0 when none waits.");
	appendStringInfo(out, "enterprise_lab_events_oldest_pending_age_seconds %s\n",
					 el_numeric_text(getKeyJsonValueFromContainer(&jb->root, "oldest_pending_age_seconds",
																  26, NULL)));
	return true;
}

/* The event workers' slots, copied under their locks; running ones only. */
static int
el_copy_workers(ElWorkerSlot *copies, int *numbers)
{
	int			n = 0;

	for (int i = 0; i < EL_MAX_WORKERS; i++)
	{
		ElWorkerSlot *slot = &el_shared->workers[i];

		SpinLockAcquire(&slot->mutex);
		memcpy(&copies[n], slot, sizeof(ElWorkerSlot));
		SpinLockRelease(&slot->mutex);
		if (copies[n].pid != 0)
			numbers[n++] = i + 1;
	}
	return n;
}

static void
el_worker_counter(StringInfo out, const char *name, const char *help,
				  ElWorkerSlot *slots, int *numbers, int n, size_t offset)
{
	el_family(out, name, "counter", help);
	for (int i = 0; i < n; i++)
		appendStringInfo(out, "%s{worker=\"%d\"} " UINT64_FORMAT "\n", name, numbers[i],
						 *(uint64 *) ((char *) &slots[i] + offset));
}

static void
el_worker_metrics(StringInfo out)
{
	ElWorkerSlot *slots = palloc(sizeof(ElWorkerSlot) * EL_MAX_WORKERS);
	int		   *numbers = palloc(sizeof(int) * EL_MAX_WORKERS);
	int			n = el_copy_workers(slots, numbers);
	const char *hist = "enterprise_lab_worker_batch_duration_seconds";

	el_family(out, "enterprise_lab_workers_running", "gauge", "Event workers running.");
	appendStringInfo(out, "enterprise_lab_workers_running %d\n", n);

	el_worker_counter(out, "enterprise_lab_worker_events_processed_total",
					  "Events a worker completed since it started.",
					  slots, numbers, n, offsetof(ElWorkerSlot, processed));
	el_worker_counter(out, "enterprise_lab_worker_events_failed_total",
					  "Events a worker recorded as failed (to be retried) since it started.",
					  slots, numbers, n, offsetof(ElWorkerSlot, failed));
	el_worker_counter(out, "enterprise_lab_worker_events_dead_lettered_total",
					  "Events a worker moved to dead_letter since it started.",
					  slots, numbers, n, offsetof(ElWorkerSlot, dead_lettered));
	el_worker_counter(out, "enterprise_lab_worker_batches_total",
					  "Processing transactions a worker ran since it started, empty ones included.",
					  slots, numbers, n, offsetof(ElWorkerSlot, batches));

	el_family(out, hist, "histogram",
			  "Duration of a worker's processing transactions that claimed events.");
	for (int i = 0; i < n; i++)
	{
		uint64		cumulative = 0;

		for (int b = 0; b <= EL_BATCH_BUCKETS; b++)
		{
			cumulative += slots[i].batch_histogram[b];
			if (b < EL_BATCH_BUCKETS)
				appendStringInfo(out, "%s_bucket{worker=\"%d\",le=\"%g\"} " UINT64_FORMAT "\n",
								 hist, numbers[i], el_batch_bucket_bounds[b], cumulative);
			else
				appendStringInfo(out, "%s_bucket{worker=\"%d\",le=\"+Inf\"} " UINT64_FORMAT "\n",
								 hist, numbers[i], cumulative);
		}
		appendStringInfo(out, "%s_sum{worker=\"%d\"} %.9g\n", hist, numbers[i],
						 slots[i].batch_seconds_sum);
		appendStringInfo(out, "%s_count{worker=\"%d\"} " UINT64_FORMAT "\n", hist, numbers[i],
						 cumulative);
	}
}

static void
el_http_metrics(StringInfo out)
{
	el_family(out, "enterprise_lab_http_responses_total", "counter",
			  "Responses of the built-in HTTP gateway by status code, all its processes together.");
	for (int i = 0; i < EL_HTTP_STATUSES; i++)
	{
		uint64		count = pg_atomic_read_u64(&el_shared->http_responses[i]);

		if (count > 0)
			appendStringInfo(out, "enterprise_lab_http_responses_total{code=\"%d\"} " UINT64_FORMAT "\n",
							 EL_HTTP_STATUS_MIN + i, count);
	}
}

static void
el_delivery_metrics(StringInfo out)
{
	ElDeliveryCounters c = {0};
	bool		running = el_delivery_counters(&c);

	el_family(out, "enterprise_lab_webhook_worker_running", "gauge",
			  "1 while the webhook delivery worker runs.");
	appendStringInfo(out, "enterprise_lab_webhook_worker_running %d\n", running ? 1 : 0);
	el_family(out, "enterprise_lab_webhook_attempts_total", "counter",
			  "Webhook delivery attempts finished, by outcome: delivered (a 2xx answer) or failed (any other answer, a timeout, a connection error, a refused address).");
	appendStringInfo(out, "enterprise_lab_webhook_attempts_total{outcome=\"delivered\"} " UINT64_FORMAT "\n",
					 c.delivered);
	appendStringInfo(out, "enterprise_lab_webhook_attempts_total{outcome=\"failed\"} " UINT64_FORMAT "\n",
					 c.sent - c.delivered);
	el_family(out, "enterprise_lab_webhook_refused_total", "counter",
			  "Webhook delivery attempts refused by the address policy (counted as failed too).");
	appendStringInfo(out, "enterprise_lab_webhook_refused_total " UINT64_FORMAT "\n", c.refused);
	el_family(out, "enterprise_lab_webhook_in_flight", "gauge",
			  "Webhook requests the delivery worker has sent and not yet seen answered.");
	appendStringInfo(out, "enterprise_lab_webhook_in_flight %d\n", c.in_flight);
}

enum MHD_Result
el_handle_metrics(struct MHD_Connection *conn)
{
	StringInfoData out;
	bool		database_up;

	if (el_metrics_access == EL_METRICS_OFF)
		return el_respond(conn, MHD_HTTP_NOT_FOUND, "text/plain; charset=utf-8",
						  "not found\n", 10);
	if (el_metrics_access == EL_METRICS_AUTHENTICATED)
	{
		ElAuth		auth;

		el_authenticate(conn, &auth);
		if (auth.status != MHD_HTTP_OK)
			return el_respond_unauthorized(conn, auth.code, auth.message);
		if (auth.anonymous)
			return el_respond_error(conn, MHD_HTTP_UNAUTHORIZED, "PGRST302",
									"Anonymous access to /metrics is disabled",
									"enterprise_lab.metrics_access is 'authenticated'.",
									"Send Authorization: Bearer <token> (Prometheus: authorization.credentials_file).");
	}
	if (el_shared == NULL)
		return el_respond_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "EL503",
								"enterprise_lab is not in shared_preload_libraries",
								NULL, NULL);

	initStringInfo(&out);
	database_up = el_queue_metrics(&out);
	el_family(&out, "enterprise_lab_database_up", "gauge",
			  "1 when the gateway could read the queue numbers from its database, else 0 (and the enterprise_lab_events* series are missing).");
	appendStringInfo(&out, "enterprise_lab_database_up %d\n", database_up ? 1 : 0);
	el_worker_metrics(&out);
	el_delivery_metrics(&out);
	/* Last, so the responses counted include every earlier scrape. */
	el_http_metrics(&out);
	return el_respond(conn, MHD_HTTP_OK, EL_METRICS_CONTENT_TYPE, out.data, out.len);
}
