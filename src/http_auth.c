/*
 * http_auth.c
 *		Who a gateway request runs as: no Authorization header is the
 *		anonymous role; "Bearer <JWT>" is verified as PostgREST verifies it
 *		and names the role and the claims.  Nothing here raises an ERROR
 *		while libjwt holds memory: every refusal is a result.
 */
#include "postgres.h"

#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "utils/json.h"

#include "enterprise_lab.h"
#include "gateway.h"

static void
el_auth_refuse(ElAuth *auth, unsigned int status, const char *code, const char *message)
{
	auth->status = status;
	auth->code = code;
	auth->message = message;
}

/*
 * libjwt, loaded with RTLD_DEEPBIND instead of linked: it and its JSON
 * library (jansson) must not see the postgres executable's symbols, since
 * PostgreSQL's SQL function json_object() has the name of jansson's
 * constructor and would be called in its place.
 *
 * The gateway speaks libjwt's 1.x API, which Debian ships as libjwt.so.0
 * (bookworm) and libjwt.so.2 (trixie on); it is declared here rather than
 * taken from jwt.h because the library is found by soname at run time and a
 * build machine's jwt.h may be 3.x's, a different API.
 */
typedef struct jwt jwt_t;

static const char *const el_libjwt_sonames[] = {"libjwt.so.2", "libjwt.so.0"};

static struct
{
	bool		loaded;
	int			(*decode) (jwt_t **jwt, const char *token, const unsigned char *key, int key_len);
	const char *(*get_header) (jwt_t *jwt, const char *header);
	const char *(*get_grant) (jwt_t *jwt, const char *grant);
	long		(*get_grant_int) (jwt_t *jwt, const char *grant);
	char	   *(*get_grants_json) (jwt_t *jwt, const char *grant);
	char	   *(*get_headers_json) (jwt_t *jwt, const char *header);
	void		(*free) (jwt_t *jwt);
}			libjwt;

void
el_load_libjwt(void)
{
	void	   *lib = NULL;
	const char *soname = NULL;

	for (size_t i = 0; i < lengthof(el_libjwt_sonames) && lib == NULL; i++)
		lib = dlopen(soname = el_libjwt_sonames[i], RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
	if (lib == NULL)
	{
		bool		v3 = (dlopen("libjwt.so.3", RTLD_LAZY | RTLD_LOCAL) != NULL);

		ereport(WARNING,
				(errmsg("enterprise_lab gateway: could not load libjwt with its 1.x API"),
				 v3 ? errdetail("Only libjwt 3 (libjwt.so.3) is installed; its API is not the one the gateway uses.  Requests with a token will be refused.")
				 : errdetail("Neither libjwt.so.2 nor libjwt.so.0 was found.  Requests with a token will be refused."),
				 errhint("Install libjwt2 (Debian trixie and later) or libjwt0 (bookworm).")));
		return;
	}
	libjwt.decode = dlsym(lib, "jwt_decode");
	libjwt.get_header = dlsym(lib, "jwt_get_header");
	libjwt.get_grant = dlsym(lib, "jwt_get_grant");
	libjwt.get_grant_int = dlsym(lib, "jwt_get_grant_int");
	libjwt.get_grants_json = dlsym(lib, "jwt_get_grants_json");
	libjwt.get_headers_json = dlsym(lib, "jwt_get_headers_json");
	libjwt.free = dlsym(lib, "jwt_free");
	libjwt.loaded = libjwt.decode && libjwt.get_header && libjwt.get_grant &&
		libjwt.get_grant_int && libjwt.get_grants_json && libjwt.get_headers_json && libjwt.free;
	if (!libjwt.loaded)
		ereport(WARNING,
				(errmsg("enterprise_lab gateway: %s lacks a function of libjwt's 1.x API", soname),
				 errdetail("Requests with a token will be refused.")));
}

/* PostgREST's allowance for clocks that differ, in seconds. */
#define EL_JWT_CLOCK_SKEW 30
/* Shortest secret PostgREST accepts for HS256. */
#define EL_JWT_MIN_SECRET 32

typedef enum ElTimeClaim
{
	EL_CLAIM_ABSENT,
	EL_CLAIM_NUMBER,
	EL_CLAIM_NOT_A_NUMBER
} ElTimeClaim;

/*
 * A NumericDate claim (exp, nbf, iat): absent, a JSON number (integer or
 * not, as RFC 7519 allows), or anything else, which refuses the token.
 * libjwt hands the claim's JSON text; the caller frees nothing.
 */
static ElTimeClaim
el_time_claim(jwt_t *jwt, const char *name, double *value)
{
	char	   *json = libjwt.get_grants_json(jwt, name);
	char	   *end;
	ElTimeClaim result = EL_CLAIM_NOT_A_NUMBER;

	if (json == NULL)
		return EL_CLAIM_ABSENT;
	errno = 0;
	*value = strtod(json, &end);
	/* a JSON number starts with a digit or '-'; strtod also takes "inf", "0x1" */
	if ((isdigit((unsigned char) json[0]) || json[0] == '-') && end != json &&
		*end == '\0' && errno == 0 && strpbrk(json, "xXnN") == NULL)
		result = EL_CLAIM_NUMBER;
	free(json);
	return result;
}

/* A request without a token: the anonymous role and its one claim. */
void
el_anonymous_auth(ElAuth *auth)
{
	StringInfoData buf;

	memset(auth, 0, sizeof(*auth));
	auth->status = MHD_HTTP_OK;
	auth->anonymous = true;
	auth->role = pstrdup(el_http_anon_role);
	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"role\":");
	escape_json(&buf, el_http_anon_role);
	appendStringInfoChar(&buf, '}');
	auth->claims = buf.data;
}

/*
 * Verify "Authorization: Bearer <JWT>" as PostgREST does: HS256 only,
 * signature, no critical extensions, exp, nbf and iat with 30 seconds'
 * allowance for clock skew; the role claim (or the anonymous role when the
 * token has none) and all claims for request.jwt.claims.  libjwt does the
 * parsing and the signature check; nothing here can raise an ERROR, and all
 * of libjwt's allocations are freed before returning.
 */
void
el_authenticate(struct MHD_Connection *conn, ElAuth *auth)
{
	const char *header = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
													 MHD_HTTP_HEADER_AUTHORIZATION);
	jwt_t	   *jwt = NULL;
	const char *secret;
	const char *alg;
	const char *role;
	char	   *claims;
	char	   *crit;
	double		t;
	ElTimeClaim kind;
	double		now = (double) time(NULL);

	if (header == NULL)
	{
		el_anonymous_auth(auth);
		return;
	}
	memset(auth, 0, sizeof(*auth));
	auth->status = MHD_HTTP_OK;

	if (pg_strncasecmp(header, "Bearer ", 7) != 0 || header[7] == '\0')
	{
		el_auth_refuse(auth, MHD_HTTP_UNAUTHORIZED, "PGRST301",
					   "Authorization header is not \"Bearer <token>\"");
		return;
	}
	if (!libjwt.loaded)
	{
		el_auth_refuse(auth, MHD_HTTP_INTERNAL_SERVER_ERROR, "PGRST300",
					   "Server cannot verify JWTs: libjwt is not available");
		return;
	}
	/* read from its file; a problem with the file is logged (LOG never throws) */
	secret = el_secret_get("enterprise_lab.jwt_secret", el_jwt_secret, LOG);
	if (secret == NULL || strlen(secret) < EL_JWT_MIN_SECRET)
	{
		static bool reported = false;

		if (secret != NULL && !reported)
			ereport(LOG,
					(errmsg("enterprise_lab gateway: requests with a token are refused: the JWT secret is shorter than 32 characters"),
					 errhint("Write a random string of at least 32 characters to the file enterprise_lab.jwt_secret names.")));
		reported = (secret != NULL);
		el_auth_refuse(auth, MHD_HTTP_INTERNAL_SERVER_ERROR, "PGRST300",
					   "Server lacks JWT secret");
		return;
	}
	if (libjwt.decode(&jwt, header + 7, (const unsigned char *) secret,
				   (int) strlen(secret)) != 0 || jwt == NULL)
	{
		el_auth_refuse(auth, MHD_HTTP_UNAUTHORIZED, "PGRST301",
					   "JWT cannot be decoded or its signature is invalid");
		return;
	}
	/* exactly "HS256", as PostgREST: libjwt itself matches names loosely */
	alg = libjwt.get_header(jwt, "alg");
	if (alg == NULL || strcmp(alg, "HS256") != 0)
	{
		libjwt.free(jwt);
		el_auth_refuse(auth, MHD_HTTP_UNAUTHORIZED, "PGRST301",
					   "JWT algorithm is not HS256");
		return;
	}
	/* RFC 7515: a "crit" extension the server does not implement refuses the token; we implement none */
	crit = libjwt.get_headers_json(jwt, "crit");
	if (crit != NULL)
	{
		free(crit);
		libjwt.free(jwt);
		el_auth_refuse(auth, MHD_HTTP_UNAUTHORIZED, "PGRST301",
					   "JWT has critical header parameters this server does not understand");
		return;
	}

	kind = el_time_claim(jwt, "exp", &t);
	if (kind == EL_CLAIM_NOT_A_NUMBER || (kind == EL_CLAIM_NUMBER && now - EL_JWT_CLOCK_SKEW >= t))
	{
		libjwt.free(jwt);
		el_auth_refuse(auth, MHD_HTTP_UNAUTHORIZED, "PGRST303",
					   kind == EL_CLAIM_NUMBER ? "JWT expired" : "JWT exp claim is not a number");
		return;
	}
	kind = el_time_claim(jwt, "nbf", &t);
	if (kind == EL_CLAIM_NOT_A_NUMBER || (kind == EL_CLAIM_NUMBER && now + EL_JWT_CLOCK_SKEW < t))
	{
		libjwt.free(jwt);
		el_auth_refuse(auth, MHD_HTTP_UNAUTHORIZED, "PGRST303",
					   kind == EL_CLAIM_NUMBER ? "JWT not yet valid" : "JWT nbf claim is not a number");
		return;
	}
	kind = el_time_claim(jwt, "iat", &t);
	if (kind == EL_CLAIM_NOT_A_NUMBER || (kind == EL_CLAIM_NUMBER && now + EL_JWT_CLOCK_SKEW < t))
	{
		libjwt.free(jwt);
		el_auth_refuse(auth, MHD_HTTP_UNAUTHORIZED, "PGRST303",
					   kind == EL_CLAIM_NUMBER ? "JWT issued at future" : "JWT iat claim is not a number");
		return;
	}

	claims = libjwt.get_grants_json(jwt, NULL);
	if (claims == NULL)
	{
		libjwt.free(jwt);
		el_auth_refuse(auth, MHD_HTTP_UNAUTHORIZED, "PGRST303", "JWT claims cannot be read");
		return;
	}
	auth->claims = pstrdup(claims);
	free(claims);

	errno = 0;
	role = libjwt.get_grant(jwt, "role");
	if (role == NULL && errno != ENOENT)
	{
		/* "role" is there but is not a string */
		libjwt.free(jwt);
		el_auth_refuse(auth, MHD_HTTP_UNAUTHORIZED, "PGRST303", "JWT role claim is not a string");
		return;
	}
	auth->role = pstrdup(role && role[0] ? role : el_http_anon_role);
	auth->anonymous = false;
	libjwt.free(jwt);
}
