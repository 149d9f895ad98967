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
	unsigned int status;
	char	   *json;

	if (!el_gateway_has_database)
		return el_respond_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "PGRST001",
								"The gateway is not connected to its database",
								NULL, "See the server log.");

	/* The description is public: a token, even a bad one, changes nothing. */
	el_anonymous_auth(&auth);
	(void) el_call_api("openapi", NULL, &auth, "/openapi.json", &status, &json);
	return el_respond(conn, status, "application/json; charset=utf-8", json, strlen(json));
}
