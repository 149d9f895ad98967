/*
 * http_routes.c
 *		enterprise_lab.http_routes(): the gateway's routes besides
 *		POST /rpc/<name>, shown to SQL so that api.openapi() describes exactly
 *		the routes the gateway serves, declared once in the route table of
 *		http_original.c.
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"

#include "gateway.h"

/*
 * enterprise_lab.http_routes(): el_route_infos() (http_original.c), one row
 * per route.
 */
PG_FUNCTION_INFO_V1(el_http_routes);
Datum
el_http_routes(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ElRouteInfo *routes;
	int			n;

	InitMaterializedSRF(fcinfo, 0);
	n = el_route_infos(&routes);
	for (int i = 0; i < n; i++)
	{
		const ElRouteInfo *r = &routes[i];
		const char *texts[6] = {r->method, r->path, r->api_function, r->summary,
		r->query_parameters, r->content_types};
		Datum		values[8];
		bool		nulls[8];

		for (int k = 0; k < 6; k++)
		{
			nulls[k] = texts[k] == NULL;
			values[k] = nulls[k] ? (Datum) 0 : CStringGetTextDatum(texts[k]);
		}
		values[6] = BoolGetDatum(r->needs_token);
		nulls[6] = false;
		values[7] = Int32GetDatum((int32) r->ok_status);
		nulls[7] = false;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
