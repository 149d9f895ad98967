/*
 * http_rpc.c
 *		POST /rpc/<name>: PostgREST's contract.  One call is one
 *		transaction of the gateway's session (connected as the
 *		authenticator): SET LOCAL ROLE to the request's role, its claims, and
 *		api.<name>(body); an error rolls everything back and becomes
 *		PostgREST's error body.  The original's routes (http_original.c) run
 *		their api functions through the same el_answer_api().
 */
#include "postgres.h"

#include <ctype.h>

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timeout.h"

#include "enterprise_lab.h"
#include "gateway.h"

/* Longest name accepted in /rpc/<name>. */
#define EL_RPC_NAME_MAX (NAMEDATALEN - 1)

static bool
el_valid_rpc_name(const char *name)
{
	size_t		len = strlen(name);

	if (len == 0 || len > EL_RPC_NAME_MAX || isdigit((unsigned char) name[0]))
		return false;
	for (const char *p = name; *p; p++)
		if (!(isalnum((unsigned char) *p) || *p == '_'))
			return false;
	return true;
}

/* The response of one request, built inside and copied out of a transaction. */
typedef struct ElOutcome
{
	unsigned int status;
	char	   *body;			/* JSON */
	ErrorData  *error;			/* set when the call raised an error */
	bool		reading_body;	/* error came from the request body */
} ElOutcome;

static void
el_set_local(const char *name, const char *value)
{
	(void) set_config_option(name, value, PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_LOCAL, true, 0, false);
}

/*
 * api.<name>(jsonb), found in the catalog alone: the authenticator has no
 * rights on schema api (only the request's role does, after SET ROLE), and
 * looking a name up must not need them.
 */
static Oid
el_lookup_api_function(const char *name)
{
	Oid			nspoid = get_namespace_oid("api", true);
	Oid			argtype = JSONBOID;
	HeapTuple	tup;
	Oid			funcoid;

	if (!OidIsValid(nspoid))
		return InvalidOid;
	tup = SearchSysCache3(PROCNAMEARGSNSP, CStringGetDatum(name),
						  PointerGetDatum(buildoidvector(&argtype, 1)),
						  ObjectIdGetDatum(nspoid));
	if (!HeapTupleIsValid(tup))
		return InvalidOid;
	funcoid = ((Form_pg_proc) GETSTRUCT(tup))->oid;
	ReleaseSysCache(tup);
	return funcoid;
}

/*
 * The work of one transaction: authenticator, role, claims, then
 * api.<name>(body).  Sets outcome->status and ->body, also when the request
 * is refused before the call (no extension, no such function); errors
 * raised by PostgreSQL propagate to the caller.
 */
static void
el_rpc_transaction(const ElApiCall *call, MemoryContext keep, ElOutcome *outcome)
{
	const char *name = call->name;
	StringInfo	body = call->body;
	Oid			argtype = JSONBOID;
	Oid			funcoid;
	Datum		arg;
	char	   *sql;
	char	   *result;
	int			rc;

	if (!OidIsValid(get_extension_oid("enterprise_lab", true)))
	{
		outcome->status = MHD_HTTP_SERVICE_UNAVAILABLE;
		outcome->body = MemoryContextStrdup(keep,
											"{\"code\":\"PGRST002\",\"message\":\"extension enterprise_lab is not installed in the gateway's database\",\"details\":null,\"hint\":\"Run CREATE EXTENSION enterprise_lab there.\"}");
		return;
	}

	funcoid = el_lookup_api_function(name);
	if (!OidIsValid(funcoid) || get_func_prokind(funcoid) != PROKIND_FUNCTION)
	{
		StringInfoData buf;
		char	   *message = psprintf("Could not find the function api.%s(jsonb)", name);

		initStringInfo(&buf);
		appendStringInfoChar(&buf, '{');
		el_json_field(&buf, "code", "PGRST202", false);
		el_json_field(&buf, "message", message, false);
		el_json_field(&buf, "details", NULL, false);
		el_json_field(&buf, "hint", "Only functions of schema api taking one jsonb argument are served.", true);
		appendStringInfoChar(&buf, '}');
		outcome->status = MHD_HTTP_NOT_FOUND;
		outcome->body = MemoryContextStrdup(keep, buf.data);
		return;
	}

	if (!OidIsValid(get_role_oid(el_http_anon_role, true)))
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("gateway role \"%s\" does not exist", el_http_anon_role),
				 errhint("Check enterprise_lab.http_anon_role.")));

	/* The body: UTF-8 (no NUL bytes), JSON; {} when there is none. */
	outcome->reading_body = true;
	arg = DirectFunctionCall1(jsonb_in,
							  CStringGetDatum(body->len == 0 ? "{}" :
											  pg_any_to_server(body->data, body->len, PG_UTF8)));
	outcome->reading_body = false;
	/* Values from the path and query string, which win over the body's. */
	if (call->overlay)
		arg = DirectFunctionCall2(jsonb_concat, arg,
								  DirectFunctionCall1(jsonb_in, CStringGetDatum(call->overlay)));

	/*
	 * The gateway is connected as the authenticator; a role from a token is
	 * accepted only if the authenticator is a member of it (the check of
	 * SET ROLE), exactly as behind PostgREST.
	 */
	el_set_local("role", call->auth->role);
	el_set_local("request.jwt.claims", call->auth->claims);
	el_set_local("request.method", call->method);
	el_set_local("request.path", call->path);

	sql = psprintf("SELECT api.%s($1)::text", quote_identifier(name));
	rc = SPI_execute_with_args(sql, 1, &argtype, &arg, NULL, false, 1);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("api.%s returned no row", name)));
	result = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	outcome->status = call->ok_status;
	outcome->body = MemoryContextStrdup(keep, result ? result : "null");
}

void
el_stop_request_timeout(void)
{
	disable_timeout(STATEMENT_TIMEOUT, false);
	/* A timeout that fired after the last check must not cancel the next request. */
	QueryCancelPending = false;
}

/*
 * Start of one request's work, inside its transaction and PG_TRY: the
 * per-request statement timeout, SPI, a snapshot.
 */
void
el_request_begin(void)
{
	if (el_http_request_timeout_ms > 0)
		enable_timeout_after(STATEMENT_TIMEOUT, el_http_request_timeout_ms);
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
}

static void
el_run_rpc(const ElApiCall *call, ElOutcome *outcome)
{
	MemoryContext keep = CurrentMemoryContext;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PG_TRY();
	{
		el_request_begin();
		pgstat_report_activity(STATE_RUNNING, call->path);

		el_rpc_transaction(call, keep, outcome);

		SPI_finish();
		PopActiveSnapshot();
		if (outcome->status == call->ok_status)
			CommitTransactionCommand();
		else
			AbortCurrentTransaction();
		el_stop_request_timeout();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(keep);
		outcome->error = CopyErrorData();
		FlushErrorState();
		el_stop_request_timeout();
		AbortCurrentTransaction();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(keep);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/* Does a text name a setting (enterprise_lab.*, s3_*)? */
static bool
el_names_setting(const char *text)
{
	return text && (strstr(text, "enterprise_lab.") != NULL || strstr(text, "s3_") != NULL);
}

/*
 * What anonymous callers are told.  A server error, or any error of the
 * storage client (s3.c: endpoints, buckets, object keys), becomes a bare
 * "could not be completed" with its SQLSTATE; elsewhere a detail or hint
 * that names a setting is dropped.  The server log keeps it all.
 */
static void
el_redact_for_anonymous(ErrorData *e, unsigned int status)
{
	const char *file = e->filename ? strrchr(e->filename, '/') : NULL;

	file = file ? file + 1 : e->filename;
	if (status >= 500 || (file && strcmp(file, "s3.c") == 0) || el_names_setting(e->message))
	{
		if (status < 500)
			ereport(LOG,
					(errmsg("enterprise_lab gateway: an anonymous request failed: %s", e->message),
					 e->detail ? errdetail_internal("%s", e->detail) : 0));
		e->message = "The request could not be completed";
		e->detail = NULL;
		e->hint = "The server log has the details.";
		return;
	}
	if (el_names_setting(e->detail))
		e->detail = NULL;
	if (el_names_setting(e->hint))
		e->hint = NULL;
}

/*
 * Run one api call in its transaction.  Sets *status and *json: the
 * function's result, or PostgREST's error body and the status its SQLSTATE
 * maps to (redacted for anonymous callers); true when the call succeeded.
 * el_answer_api() sends that as the answer; GET /metrics reads it.
 */
bool
el_call_api(const ElApiCall *call, unsigned int *status, char **json)
{
	ElOutcome	outcome = {0};
	ErrorData  *e;

	el_run_rpc(call, &outcome);
	if (outcome.error == NULL)
	{
		*status = outcome.status;
		*json = outcome.body;
		return outcome.status == call->ok_status;
	}
	e = outcome.error;
	if (outcome.reading_body)
	{
		*status = MHD_HTTP_BAD_REQUEST;
		*json = el_error_json("PGRST102", "Empty or invalid json in the request body",
							  e->detail ? psprintf("%s %s", e->message, e->detail) : e->message,
							  "Send a JSON object (UTF-8), e.g. {}.");
		return false;
	}
	*status = el_http_status_for(e->sqlerrcode, call->auth->anonymous);
	if (*status >= 500)
		ereport(LOG,
				(errmsg("enterprise_lab gateway: %s %s failed: %s", call->method, call->path, e->message),
				 e->detail ? errdetail_internal("%s", e->detail) : 0));
	if (call->auth->anonymous)
		el_redact_for_anonymous(e, *status);
	*json = el_error_json(unpack_sql_state(e->sqlerrcode), e->message, e->detail, e->hint);
	return false;
}

enum MHD_Result
el_handle_rpc(struct MHD_Connection *conn, const char *url, ElRequest *req)
{
	const char *name = url + strlen("/rpc/");
	ElAuth		auth;
	ElApiCall	call = {0};

	if (!el_valid_rpc_name(name))
		return el_respond_error(conn, MHD_HTTP_NOT_FOUND, "PGRST202",
								"Could not find the function",
								"A function name has letters, digits and underscores only.",
								"Only functions of schema api taking one jsonb argument are served.");

	el_authenticate(conn, &auth);
	if (auth.status != MHD_HTTP_OK)
		return auth.status == MHD_HTTP_UNAUTHORIZED
			? el_respond_unauthorized(conn, auth.code, auth.message)
			: el_respond_error(conn, auth.status, auth.code, auth.message, NULL, NULL);

	call.name = name;
	call.body = &req->body;
	call.auth = &auth;
	call.method = MHD_HTTP_METHOD_POST;
	call.path = url;
	call.ok_status = MHD_HTTP_OK;
	return el_answer_api(conn, &call);
}

/*
 * Run one api call in its transaction and answer with its result, or with
 * PostgREST's error body and the status its SQLSTATE maps to.
 */
enum MHD_Result
el_answer_api(struct MHD_Connection *conn, const ElApiCall *call)
{
	unsigned int status;
	char	   *json;

	/* Why is in the server log (the launcher says it once). */
	if (!el_gateway_has_database)
		return el_respond_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "PGRST001",
								"The gateway is not connected to its database",
								NULL, "See the server log.");

	(void) el_call_api(call, &status, &json);
	return el_respond(conn, status, "application/json; charset=utf-8", json, strlen(json));
}
