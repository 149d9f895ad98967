/*
 * gateway.h
 *		Declarations shared by the files of the built-in HTTP gateway:
 *		gateway.c (settings, the daemon and its loop, request dispatch),
 *		http_response.c, http_auth.c, http_static.c, http_rpc.c and
 *		http_health.c.  Everything here runs in the gateway process, on its
 *		only thread, inside PG_TRY (see gateway.c).
 */
#ifndef EL_GATEWAY_H
#define EL_GATEWAY_H

#include "postgres.h"

#include <microhttpd.h>

#include "lib/stringinfo.h"

/* Settings (gateway.c) */
extern int	el_http_port;
extern char *el_http_listen;
extern char *el_http_anon_role;
extern char *el_http_authenticator;
extern char *el_jwt_secret;
extern int	el_http_max_body;
extern int	el_http_request_timeout_ms;

/* Whether this gateway is connected to enterprise_lab.database (gateway.c) */
extern bool el_gateway_has_database;

/* One HTTP request in progress: lives from its headers until completion. */
typedef struct ElRequest
{
	MemoryContext cxt;
	StringInfoData body;
	bool		too_large;
} ElRequest;

/* http_response.c: responses and PostgREST's error body and status table */
extern enum MHD_Result el_respond(struct MHD_Connection *conn, unsigned int status,
								  const char *content_type, const char *body, size_t len);
extern enum MHD_Result el_respond_error(struct MHD_Connection *conn, unsigned int status,
										const char *code, const char *message,
										const char *details, const char *hint);
extern void el_json_field(StringInfo buf, const char *key, const char *value, bool last);
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
extern void el_authenticate(struct MHD_Connection *conn, ElAuth *auth);

/* http_rpc.c: POST /rpc/<name>, and the frame of a request's transaction */
extern void el_request_begin(void);
extern void el_stop_request_timeout(void);
extern enum MHD_Result el_handle_rpc(struct MHD_Connection *conn, const char *url,
									 ElRequest *req);

/* http_health.c: GET /health */
extern enum MHD_Result el_handle_health(struct MHD_Connection *conn);

#endif							/* EL_GATEWAY_H */
