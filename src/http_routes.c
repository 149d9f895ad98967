/*
 * http_routes.c
 *		The gateway's routes besides POST /rpc/<name> (el_routes, see
 *		gateway.h), and enterprise_lab.http_routes(), which shows the same
 *		array to SQL: api.openapi() describes exactly the routes the gateway
 *		serves, declared once.
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"

#include "gateway.h"

/*
 * Every route a handler serves is one entry; the original lab's routes
 * (POST /intake/submissions, PATCH /operational/cases/{operation_case_id}/status,
 * GET /dashboard/..., the reference reads) go here with their handlers.
 */
const ElRoute el_routes[] = {
	{NULL}
};

/*
 * enterprise_lab.http_routes(): one row per entry of el_routes, for
 * api.openapi() (src/sql/47_openapi.sql).
 */
PG_FUNCTION_INFO_V1(el_http_routes);
Datum
el_http_routes(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	for (const ElRoute *r = el_routes; r->method != NULL; r++)
	{
		const char *fields[6] = {r->method, r->path, r->api_function, r->summary,
		r->query_parameters, r->content_types};
		Datum		values[6];
		bool		nulls[6];

		for (int i = 0; i < 6; i++)
		{
			nulls[i] = fields[i] == NULL;
			values[i] = nulls[i] ? (Datum) 0 : CStringGetTextDatum(fields[i]);
		}
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
