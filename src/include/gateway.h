/*
 * gateway.h
 *		Declarations shared by the files of the built-in HTTP gateway:
 *		gateway.c (settings, the daemon and its loop, request dispatch),
 *		http_guard.c, http_limits.c, http_response.c, http_auth.c,
 *		http_static.c, http_rpc.c, http_original.c, http_multipart.c,
 *		http_health.c, http_metrics.c, http_openapi.c and http_routes.c.
 *		Everything here runs in the gateway process, on its
 *		only thread, inside PG_TRY (see gateway.c).
 */
#ifndef EL_GATEWAY_H
#define EL_GATEWAY_H

#include "postgres.h"

#include <microhttpd.h>

#include "lib/stringinfo.h"

/* Connections one gateway process serves at once; more wait in the backlog. */
#define EL_HTTP_MAX_CONNECTIONS 64

/* Settings (gateway.c) */
extern int	el_http_port;
extern char *el_http_listen;
extern int	el_http_workers;
extern int	el_http_max_connections_per_ip;
extern char *el_http_anon_role;
extern char *el_http_authenticator;
extern char *el_jwt_secret;
extern int	el_http_max_body;
extern int	el_http_max_buffered;
extern int	el_http_read_timeout_ms;
extern int	el_http_request_timeout_ms;
extern char *el_http_host_names;
extern char *el_http_cors_origins;

/* http_listen.c: the listening socket, opened by the postmaster */
extern pgsocket el_http_listen_socket;
extern char el_http_listen_error[256];
extern void el_open_listen_socket(void);

/* What the launcher passes a gateway it starts (bgw_extra). */
typedef struct ElGatewayStart
{
	int			index;			/* 0 .. http_workers - 1 */
	Oid			roleoid;		/* the authenticator; InvalidOid without a database */
} ElGatewayStart;

/* Whether this gateway is connected to enterprise_lab.database (gateway.c) */
extern bool el_gateway_has_database;

/* One HTTP request in progress: lives from its headers until completion. */
typedef struct ElRequest
{
	MemoryContext cxt;
	StringInfoData body;
	bool		too_large;
	uint64		reserved;		/* bytes counted in ElShared.http_body_bytes */
} ElRequest;

/* Why a request is refused before it is served. */
typedef struct ElRefusal
{
	unsigned int status;
	const char *code;
	const char *message;
} ElRefusal;

/* http_guard.c: framing, Host, Origin and Content-Type checks */
extern bool el_guard_request(struct MHD_Connection *conn, const char *url,
							 const char *method, const char *version, ElRefusal *refusal);
extern bool el_origin_allowed(const char *origin);

/* http_limits.c: deadlines and the body-memory budget */
extern void el_connection_notify(void *cls, struct MHD_Connection *conn,
								 void **socket_context, enum MHD_ConnectionNotificationCode toe);
extern void el_request_received(struct MHD_Connection *conn);
extern void el_response_sent(struct MHD_Connection *conn);
extern bool el_request_overdue(struct MHD_Connection *conn);
extern long el_enforce_deadlines(long max_ms);
extern bool el_reserve_body(ElRequest *req, uint64 bytes);
extern void el_release_body(ElRequest *req);
extern void el_release_all_bodies(int code, Datum arg);

/* http_response.c: responses and PostgREST's error body and status table */
extern enum MHD_Result el_queue_response(struct MHD_Connection *conn, unsigned int status,
										 struct MHD_Response *response);
extern enum MHD_Result el_respond(struct MHD_Connection *conn, unsigned int status,
								  const char *content_type, const char *body, size_t len);
extern enum MHD_Result el_respond_error(struct MHD_Connection *conn, unsigned int status,
										const char *code, const char *message,
										const char *details, const char *hint);
extern enum MHD_Result el_respond_not_allowed(struct MHD_Connection *conn, const char *allow,
											  const char *method, const char *url);
extern enum MHD_Result el_respond_close(struct MHD_Connection *conn, unsigned int status,
										const char *code, const char *message);
extern char *el_error_json(const char *code, const char *message,
						   const char *details, const char *hint);
extern void el_json_field(StringInfo buf, const char *key, const char *value, bool last);
extern enum MHD_Result el_respond_unauthorized(struct MHD_Connection *conn,
											   const char *code, const char *message);
extern void el_set_response_origin(const char *origin);
extern void el_add_cors_headers(struct MHD_Response *response);
extern unsigned int el_http_status_for(int sqlerrcode, bool anonymous);

/* http_static.c: the dashboard's files */
extern void el_static_init(void);
extern enum MHD_Result el_serve_static(struct MHD_Connection *conn, const char *url);

/* http_auth.c: who the request runs as */
typedef struct ElAuth
{
	char	   *role;			/* role to SET LOCAL ROLE to */
	char	   *claims;			/* JSON for request.jwt.claims */
	bool		anonymous;
	/* when the token is refused: */
	unsigned int status;
	const char *code;
	const char *message;
} ElAuth;

extern void el_load_libjwt(void);
extern void el_anonymous_auth(ElAuth *auth);
extern void el_authenticate(struct MHD_Connection *conn, ElAuth *auth);

/* One call of api.<name>(jsonb) on behalf of a request. */
typedef struct ElApiCall
{
	const char *name;			/* api function */
	StringInfo	body;			/* JSON from the client; empty: {} */
	const char *overlay;		/* JSON object merged over it (path, query), or NULL */
	ElAuth	   *auth;
	const char *method;			/* request.method */
	const char *path;			/* request.path */
	unsigned int ok_status;		/* status of a successful call */
} ElApiCall;

/* http_rpc.c: POST /rpc/<name>, and the frame of a request's transaction */
extern void el_request_begin(void);
extern void el_stop_request_timeout(void);
extern enum MHD_Result el_handle_rpc(struct MHD_Connection *conn, const char *url,
									 ElRequest *req);
extern enum MHD_Result el_answer_api(struct MHD_Connection *conn, const ElApiCall *call);
extern bool el_call_api(const ElApiCall *call, unsigned int *status, char **json);

/* http_original.c: the original lab's routes */
extern bool el_is_original_path(const char *url);
extern enum MHD_Result el_handle_original(struct MHD_Connection *conn, const char *url,
										  const char *method, ElRequest *req);

/* http_multipart.c: a form post as the JSON body of api.original_submit_request */
extern bool el_is_form_post(struct MHD_Connection *conn);
extern bool el_form_to_json(struct MHD_Connection *conn, StringInfo body, StringInfo json,
							ElRefusal *refusal);

/* http_metrics.c: GET /metrics (Prometheus) */
typedef enum ElMetricsAccess
{
	EL_METRICS_ANONYMOUS,
	EL_METRICS_AUTHENTICATED,
	EL_METRICS_OFF
} ElMetricsAccess;

extern int	el_metrics_access;
extern enum MHD_Result el_handle_metrics(struct MHD_Connection *conn);

/*
 * The routes besides POST /rpc/<name> as api.openapi() describes them:
 * el_route_infos() (http_original.c, over its route table) returns how many
 * there are and sets *routes to them (palloc'd); enterprise_lab.http_routes()
 * (http_routes.c) shows them to SQL.
 */
typedef struct ElRouteInfo
{
	const char *method;			/* GET, POST, PUT, PATCH or DELETE */
	const char *path;			/* {name} marks a path parameter */
	const char *api_function;	/* api.<name>(jsonb) the route calls */
	const char *summary;		/* NULL: the function's COMMENT */
	const char *query_parameters;	/* comma-separated, or NULL */
	const char *content_types;	/* of the request body, comma-separated; NULL: JSON */
	bool		needs_token;	/* refused without a token */
	unsigned int ok_status;		/* status of a success */
} ElRouteInfo;

extern int	el_route_infos(ElRouteInfo **routes);

/* http_openapi.c: GET /openapi.json */
extern enum MHD_Result el_handle_openapi(struct MHD_Connection *conn);

/* http_health.c: GET /health */
extern enum MHD_Result el_handle_health(struct MHD_Connection *conn);

#endif							/* EL_GATEWAY_H */
