/*
 * http_openapi.c
 *		GET /openapi.json: the OpenAPI 3.1 description api.openapi() generates
 *		from the catalog (src/sql/47_openapi.sql), called as the anonymous
 *		role like any anonymous POST /rpc/openapi.  GET /docs is Swagger UI,
 *		static files (http_static.c) that read this.
 */
#include "postgres.h"

#include "gateway.h"

enum MHD_Result
el_handle_openapi(struct MHD_Connection *conn)
{
	ElAuth		auth;
	ElApiCall	call = {0};
	StringInfoData none;

	/* The description is public: a token, even a bad one, changes nothing. */
	el_anonymous_auth(&auth);
	initStringInfo(&none);
	call.name = "openapi";
	call.body = &none;
	call.auth = &auth;
	call.method = MHD_HTTP_METHOD_GET;
	call.path = "/openapi.json";
	call.ok_status = MHD_HTTP_OK;
	return el_answer_api(conn, &call);
}
