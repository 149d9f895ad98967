/*
 * s3.c
 *		A small S3 client on libcurl: AWS Signature Version 4 (header signing
 *		and presigned URLs, HMAC and SHA-256 from OpenSSL), path-style or
 *		virtual-hosted addressing, S3 XML error bodies read with libxml2.
 *
 * Rules this file keeps:
 * - No ereport() inside a libcurl callback: callbacks only copy bytes (with
 *   malloc, which never longjmps) or set a flag; errors are reported after
 *   curl_easy_perform() has returned.
 * - A transfer stops when the backend is asked to cancel or terminate: the
 *   progress callback returns non-zero when QueryCancelPending or
 *   ProcDiePending is set, and CHECK_FOR_INTERRUPTS() then raises the error.
 * - The secret key never appears in a message, a log line or a URL; it is
 *   read from the file enterprise_lab.s3_secret_key names (secrets.c).
 */
#include "postgres.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <libxml/parser.h>
#include <libxml/xpath.h>

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/formatting.h"
#include "utils/datetime.h"
#include "utils/guc.h"
#include "utils/timestamp.h"
#include "utils/xml.h"

#include "enterprise_lab.h"
#include "s3.h"

char	   *el_s3_endpoint = NULL;
char	   *el_s3_region = NULL;
char	   *el_s3_bucket = NULL;
char	   *el_s3_access_key = NULL;
char	   *el_s3_secret_key = NULL;
int			el_s3_connect_timeout_ms = 5000;
int			el_s3_timeout_ms = 60000;
bool		el_s3_path_style = true;

bool		el_s3_last_failed_to_connect = false;

#define EL_SIGV4_ALGORITHM "AWS4-HMAC-SHA256"
#define EL_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"
/* Largest response body other than a downloaded object (list pages, errors). */
#define EL_S3_MAX_META_BODY (8 * 1024 * 1024)

/* ----------------------------------------------------------------
 * Settings
 * ---------------------------------------------------------------- */

static bool
el_check_endpoint(char **newval, void **extra, GucSource source)
{
	if (**newval == '\0' ||
		strncmp(*newval, "http://", 7) == 0 ||
		strncmp(*newval, "https://", 8) == 0)
		return true;
	GUC_check_errdetail("The endpoint must be an http:// or https:// URL, e.g. http://127.0.0.1:9000.");
	return false;
}

/* Bucket names: 3-63 lowercase letters, digits, dots and hyphens. */
static bool
el_check_bucket(char **newval, void **extra, GucSource source)
{
	size_t		len = strlen(*newval);

	if (len < 3 || len > 63 ||
		strspn(*newval, "abcdefghijklmnopqrstuvwxyz0123456789.-") != len ||
		(*newval)[0] == '.' || (*newval)[0] == '-')
	{
		GUC_check_errdetail("A bucket name has 3 to 63 lowercase letters, digits, dots or hyphens and starts with a letter or digit.");
		return false;
	}
	return true;
}

static bool
el_check_region(char **newval, void **extra, GucSource source)
{
	size_t		len = strlen(*newval);

	if (len == 0 || len > 64 ||
		strspn(*newval, "abcdefghijklmnopqrstuvwxyz0123456789-") != len)
	{
		GUC_check_errdetail("A region name has lowercase letters, digits and hyphens, e.g. us-east-1.");
		return false;
	}
	return true;
}

/* SHOW prints the file the secret is read from, never a secret set inline. */
static const char *
el_show_secret(void)
{
	return el_secret_show(el_s3_secret_key);
}

void
el_s3_define_gucs(void)
{
	DefineCustomStringVariable("enterprise_lab.s3_endpoint",
							   "URL of the S3 endpoint that stores documents.",
							   "For example http://127.0.0.1:9000 (MinIO) or https://s3.eu-west-1.amazonaws.com.",
							   &el_s3_endpoint,
							   "",
							   PGC_SUSET, 0,
							   el_check_endpoint, NULL, NULL);

	DefineCustomStringVariable("enterprise_lab.s3_region",
							   "Region used in S3 request signatures.",
							   NULL,
							   &el_s3_region,
							   "us-east-1",
							   PGC_SUSET, 0,
							   el_check_region, NULL, NULL);

	DefineCustomStringVariable("enterprise_lab.s3_bucket",
							   "Bucket that stores documents.",
							   NULL,
							   &el_s3_bucket,
							   "enterprise-documents",
							   PGC_SUSET, 0,
							   el_check_bucket, NULL, NULL);

	DefineCustomStringVariable("enterprise_lab.s3_access_key",
							   "Access key id used to sign S3 requests.",
							   NULL,
							   &el_s3_access_key,
							   "",
							   PGC_SUSET, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("enterprise_lab.s3_secret_key",
							   "File that holds the secret access key used to sign S3 requests, as @/path/to/file.",
							   "The file must be readable by the server's user only; a key set inline is refused.",
							   &el_s3_secret_key,
							   "",
							   PGC_SUSET, GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL,
							   NULL, NULL, el_show_secret);

	DefineCustomIntVariable("enterprise_lab.s3_connect_timeout",
							"Longest wait for a connection to the S3 endpoint.",
							NULL,
							&el_s3_connect_timeout_ms,
							5000, 1, 3600 * 1000,
							PGC_SUSET, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("enterprise_lab.s3_timeout",
							"Longest time one S3 request may take, transfer included.",
							NULL,
							&el_s3_timeout_ms,
							60000, 1, 24 * 3600 * 1000,
							PGC_SUSET, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("enterprise_lab.s3_path_style",
							 "Address buckets as endpoint/bucket (path style) rather than bucket.endpoint.",
							 "MinIO and most S3-compatible servers want path style; AWS S3 accepts both.",
							 &el_s3_path_style,
							 true,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);
}

/* ----------------------------------------------------------------
 * Hashing and encoding
 * ---------------------------------------------------------------- */

static void
el_hex(const unsigned char *bytes, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++)
	{
		out[2 * i] = digits[bytes[i] >> 4];
		out[2 * i + 1] = digits[bytes[i] & 0x0f];
	}
	out[2 * len] = '\0';
}

char *
el_sha256_hex(const char *data, size_t len)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char	   *out = palloc(2 * 32 + 1);

	if (EVP_Digest(data ? data : "", len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute a SHA-256 digest with OpenSSL")));
	el_hex(md, mdlen, out);
	return out;
}

static void
el_hmac(const unsigned char *key, size_t keylen, const char *msg, unsigned char *out)
{
	unsigned int outlen = 0;

	if (HMAC(EVP_sha256(), key, (int) keylen, (const unsigned char *) msg,
			 strlen(msg), out, &outlen) == NULL || outlen != 32)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute an HMAC-SHA256 with OpenSSL")));
}

/*
 * URI-encode per the Signature V4 rules: every byte except the unreserved
 * characters A-Z a-z 0-9 - . _ ~ becomes %XY (uppercase hex); '/' is kept
 * in object key paths and encoded everywhere else.
 */
static void
el_uri_encode(StringInfo buf, const char *s, bool keep_slash)
{
	static const char digits[] = "0123456789ABCDEF";

	for (const unsigned char *p = (const unsigned char *) s; *p; p++)
	{
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
			(*p >= '0' && *p <= '9') || *p == '-' || *p == '.' ||
			*p == '_' || *p == '~' || (keep_slash && *p == '/'))
			appendStringInfoChar(buf, (char) *p);
		else
		{
			appendStringInfoChar(buf, '%');
			appendStringInfoChar(buf, digits[*p >> 4]);
			appendStringInfoChar(buf, digits[*p & 0x0f]);
		}
	}
}

static char *
el_uri_encoded(const char *s, bool keep_slash)
{
	StringInfoData buf;

	initStringInfo(&buf);
	el_uri_encode(&buf, s, keep_slash);
	return buf.data;
}

/* Header values are signed trimmed, with inner runs of spaces collapsed. */
static char *
el_trimall(const char *s)
{
	StringInfoData buf;
	bool		pending_space = false;

	initStringInfo(&buf);
	for (const char *p = s; *p; p++)
	{
		if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\v' || *p == '\f')
		{
			pending_space = buf.len > 0;
			continue;
		}
		if (pending_space)
			appendStringInfoChar(&buf, ' ');
		pending_space = false;
		appendStringInfoChar(&buf, *p);
	}
	return buf.data;
}

static int
el_param_cmp(const void *a, const void *b)
{
	const ElS3Param *pa = a;
	const ElS3Param *pb = b;
	int			c = strcmp(pa->name, pb->name);

	return c != 0 ? c : strcmp(pa->value, pb->value);
}

/* ----------------------------------------------------------------
 * Signature V4
 * ---------------------------------------------------------------- */

/* Everything one signing produced. */
typedef struct ElS3Signature
{
	char	   *url;
	char	   *host;
	char	   *amz_date;
	char	   *payload_hash;
	char	   *canonical_request;
	char	   *string_to_sign;
	char	   *signature;
	char	   *authorization;	/* NULL when presigned */
	ElS3Param  *headers;		/* signed headers, canonical form, sorted */
	int			nheaders;
} ElS3Signature;

static void
el_s3_require_settings(void)
{
	const char *missing = NULL;

	if (el_s3_endpoint == NULL || el_s3_endpoint[0] == '\0')
		missing = "enterprise_lab.s3_endpoint";
	else if (el_s3_access_key == NULL || el_s3_access_key[0] == '\0')
		missing = "enterprise_lab.s3_access_key";
	else if (el_secret_get("enterprise_lab.s3_secret_key", el_s3_secret_key, ERROR) == NULL)
		missing = "enterprise_lab.s3_secret_key";
	if (missing)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s is not set", missing),
				 errhint("Set enterprise_lab.s3_endpoint, s3_access_key and s3_secret_key (as @/path/to/file) in postgresql.conf (see docs/documents.md).")));
}

/* Scheme and host[:port] of the endpoint, parsed by libcurl's URL API. */
static void
el_s3_endpoint_parts(char **scheme, char **hostport)
{
	CURLU	   *u = curl_url();
	char	   *s = NULL,
			   *h = NULL,
			   *p = NULL,
			   *path = NULL;
	bool		ok;

	if (u == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	ok = curl_url_set(u, CURLUPART_URL, el_s3_endpoint, 0) == CURLUE_OK &&
		curl_url_get(u, CURLUPART_SCHEME, &s, 0) == CURLUE_OK &&
		curl_url_get(u, CURLUPART_HOST, &h, 0) == CURLUE_OK &&
		curl_url_get(u, CURLUPART_PATH, &path, 0) == CURLUE_OK &&
		(strcmp(path, "/") == 0 || path[0] == '\0');
	if (ok)
	{
		/* Absent, or the scheme's default: not part of the Host header. */
		if (curl_url_get(u, CURLUPART_PORT, &p, CURLU_NO_DEFAULT_PORT) != CURLUE_OK)
			p = NULL;
		*scheme = pstrdup(s);
		*hostport = p ? psprintf("%s:%s", h, p) : pstrdup(h);
	}
	curl_free(s);
	curl_free(h);
	curl_free(p);
	curl_free(path);
	curl_url_cleanup(u);
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("enterprise_lab.s3_endpoint \"%s\" is not a valid endpoint URL", el_s3_endpoint),
				 errhint("Give scheme, host and port only, e.g. http://127.0.0.1:9000.")));
}

static char *
el_amz_date(TimestampTz at)
{
	struct pg_tm tm;
	fsec_t		fsec;

	if (TIMESTAMP_NOT_FINITE(at) || timestamp2tm(at, NULL, &tm, &fsec, NULL, NULL) != 0 ||
		tm.tm_year < 1000 || tm.tm_year > 9999)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("signing time is out of range")));
	return psprintf("%04d%02d%02dT%02d%02d%02dZ",
					tm.tm_year, tm.tm_mon, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/*
 * Sign one request.  key NULL addresses the bucket.  presign_expires > 0
 * makes a presigned URL (query-string authentication, payload unsigned);
 * otherwise payload_hash is signed and an Authorization header produced.
 */
static void
el_s3_sign(const char *method, const char *key,
		   const ElS3Param *query, int nquery,
		   const ElS3Param *headers, int nheaders,
		   const char *payload_hash, TimestampTz at, int presign_expires,
		   ElS3Signature *sig)
{
	char	   *scheme,
			   *hostport,
			   *host,
			   *path,
			   *scope,
			   *credential;
	ElS3Param  *q,
			   *h;
	int			nq = 0,
				nh = 0;
	StringInfoData buf,
				cq,
				ch,
				sh;
	unsigned char k1[32],
				k2[32],
				k3[32],
				k4[32],
				mac[32];
	char	   *secret;

	el_s3_require_settings();
	el_s3_endpoint_parts(&scheme, &hostport);
	host = el_s3_path_style ? hostport : psprintf("%s.%s", el_s3_bucket, hostport);

	initStringInfo(&buf);
	if (el_s3_path_style)
	{
		appendStringInfo(&buf, "/%s", el_s3_bucket);
		if (key)
			appendStringInfoChar(&buf, '/');
	}
	else
		appendStringInfoChar(&buf, '/');
	if (key)
		el_uri_encode(&buf, key, true);
	path = buf.data;

	sig->amz_date = el_amz_date(at);
	scope = psprintf("%.8s/%s/s3/aws4_request", sig->amz_date, el_s3_region);
	credential = psprintf("%s/%s", el_s3_access_key, scope);

	/* Canonical headers: lowercase names, trimmed values, sorted by name. */
	h = palloc(sizeof(ElS3Param) * (nheaders + 3));
	for (int i = 0; i < nheaders; i++)
	{
		char	   *name = asc_tolower(headers[i].name, strlen(headers[i].name));

		if (strcmp(name, "host") == 0 || strcmp(name, "x-amz-date") == 0 ||
			strcmp(name, "x-amz-content-sha256") == 0 || strcmp(name, "authorization") == 0)
			continue;			/* set below */
		h[nh].name = name;
		h[nh++].value = el_trimall(headers[i].value);
	}
	h[nh].name = "host";
	h[nh++].value = host;
	if (presign_expires <= 0)
	{
		h[nh].name = "x-amz-content-sha256";
		h[nh++].value = payload_hash;
		h[nh].name = "x-amz-date";
		h[nh++].value = sig->amz_date;
	}
	qsort(h, nh, sizeof(ElS3Param), el_param_cmp);
	initStringInfo(&ch);
	initStringInfo(&sh);
	for (int i = 0; i < nh; i++)
	{
		if (i > 0 && strcmp(h[i].name, h[i - 1].name) == 0)
		{
			/* repeated header: one line, values joined by commas */
			appendStringInfo(&ch, ",%s", h[i].value);
			continue;
		}
		if (i > 0)
		{
			appendStringInfoChar(&ch, '\n');
			appendStringInfoChar(&sh, ';');
		}
		appendStringInfo(&ch, "%s:%s", h[i].name, h[i].value);
		appendStringInfoString(&sh, h[i].name);
	}
	appendStringInfoChar(&ch, '\n');

	/* Canonical query: encoded names and values, sorted. */
	q = palloc(sizeof(ElS3Param) * (nquery + 5));
	for (int i = 0; i < nquery; i++)
	{
		q[nq].name = el_uri_encoded(query[i].name, false);
		q[nq++].value = el_uri_encoded(query[i].value, false);
	}
	if (presign_expires > 0)
	{
		q[nq].name = "X-Amz-Algorithm";
		q[nq++].value = EL_SIGV4_ALGORITHM;
		q[nq].name = "X-Amz-Credential";
		q[nq++].value = el_uri_encoded(credential, false);
		q[nq].name = "X-Amz-Date";
		q[nq++].value = sig->amz_date;
		q[nq].name = "X-Amz-Expires";
		q[nq++].value = psprintf("%d", presign_expires);
		q[nq].name = "X-Amz-SignedHeaders";
		q[nq++].value = el_uri_encoded(sh.data, false);
		payload_hash = EL_UNSIGNED_PAYLOAD;
	}
	qsort(q, nq, sizeof(ElS3Param), el_param_cmp);
	initStringInfo(&cq);
	for (int i = 0; i < nq; i++)
		appendStringInfo(&cq, "%s%s=%s", i > 0 ? "&" : "", q[i].name, q[i].value);

	sig->payload_hash = pstrdup(payload_hash);
	sig->canonical_request = psprintf("%s\n%s\n%s\n%s\n%s\n%s",
									  method, path, cq.data, ch.data, sh.data, payload_hash);
	sig->string_to_sign = psprintf("%s\n%s\n%s\n%s", EL_SIGV4_ALGORITHM, sig->amz_date, scope,
								   el_sha256_hex(sig->canonical_request, strlen(sig->canonical_request)));

	/* kSigning = HMAC chain over date, region, service, "aws4_request" */
	secret = psprintf("AWS4%s", el_secret_get("enterprise_lab.s3_secret_key", el_s3_secret_key, ERROR));
	el_hmac((unsigned char *) secret, strlen(secret), psprintf("%.8s", sig->amz_date), k1);
	explicit_bzero(secret, strlen(secret));
	pfree(secret);
	el_hmac(k1, 32, el_s3_region, k2);
	el_hmac(k2, 32, "s3", k3);
	el_hmac(k3, 32, "aws4_request", k4);
	el_hmac(k4, 32, sig->string_to_sign, mac);
	explicit_bzero(k1, sizeof(k1));
	explicit_bzero(k4, sizeof(k4));
	sig->signature = palloc(65);
	el_hex(mac, 32, sig->signature);

	sig->host = host;
	sig->headers = h;
	sig->nheaders = nh;
	if (presign_expires > 0)
	{
		sig->authorization = NULL;
		sig->url = psprintf("%s://%s%s?%s&X-Amz-Signature=%s",
							scheme, host, path, cq.data, sig->signature);
	}
	else
	{
		sig->authorization = psprintf("%s Credential=%s, SignedHeaders=%s, Signature=%s",
									  EL_SIGV4_ALGORITHM, credential, sh.data, sig->signature);
		sig->url = psprintf("%s://%s%s%s%s", scheme, host, path, cq.len > 0 ? "?" : "", cq.data);
	}
}

/* ----------------------------------------------------------------
 * Transfers
 * ---------------------------------------------------------------- */

/* Filled by the callbacks; plain malloc so that nothing can longjmp. */
typedef struct ElCurlBody
{
	char	   *data;
	size_t		len;
	size_t		cap;
	size_t		max;			/* for a successful response */
	CURL	   *curl;
	bool		too_large;
	bool		out_of_memory;
} ElCurlBody;

static size_t
el_curl_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	ElCurlBody *body = userdata;
	size_t		n = size * nmemb;

	size_t		max = body->max;
	long		status = 0;

	/* An error body may be longer than the object that was expected. */
	if (curl_easy_getinfo(body->curl, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK && status >= 300)
		max = Max(max, (size_t) EL_S3_MAX_META_BODY);
	if (body->len + n > max)
	{
		body->too_large = true;
		return 0;
	}
	if (body->len + n > body->cap)
	{
		size_t		cap = Max(Max(body->cap * 2, body->len + n), (size_t) 16384);
		char	   *p;

		cap = Min(cap, max);
		p = realloc(body->data, cap);
		if (p == NULL)
		{
			body->out_of_memory = true;
			return 0;
		}
		body->data = p;
		body->cap = cap;
	}
	memcpy(body->data + body->len, ptr, n);
	body->len += n;
	return n;
}

static int
el_curl_progress(void *clientp, curl_off_t dltotal, curl_off_t dlnow,
				 curl_off_t ultotal, curl_off_t ulnow)
{
	/* Only look: CHECK_FOR_INTERRUPTS() runs once curl has returned. */
	return (QueryCancelPending || ProcDiePending) ? 1 : 0;
}

static CURL *
el_curl_handle(void)
{
	static CURL *handle = NULL;

	if (handle == NULL)
	{
		static bool initialized = false;

		if (!initialized)
		{
			if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK)
				ereport(ERROR,
						(errcode(ERRCODE_INTERNAL_ERROR),
						 errmsg("could not initialize libcurl")));
			initialized = true;
		}
		/* Kept for the life of the backend: connections are reused. */
		handle = curl_easy_init();
		if (handle == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not create a libcurl handle")));
	}
	else
		curl_easy_reset(handle);
	return handle;
}

/* Code, Message and RequestId of an S3 <Error> body, if it is one. */
static void
el_s3_parse_error(const char *body, size_t len, char **code, char **message, char **request_id)
{
	PgXmlErrorContext *xmlerrcxt;
	xmlDocPtr	doc = NULL;
	xmlXPathContextPtr ctx = NULL;
	const char *const paths[3] = {
		"string(/*[local-name()='Error']/*[local-name()='Code'])",
		"string(/*[local-name()='Error']/*[local-name()='Message'])",
		"string(/*[local-name()='Error']/*[local-name()='RequestId'])",
	};
	char	  **out[3] = {code, message, request_id};

	*code = *message = *request_id = NULL;
	if (len == 0 || len > INT_MAX)
		return;

	xmlerrcxt = pg_xml_init(PG_XML_STRICTNESS_LEGACY);
	PG_TRY();
	{
		doc = xmlReadMemory(body, (int) len, NULL, NULL,
							XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
		if (doc != NULL)
			ctx = xmlXPathNewContext(doc);
		for (int i = 0; ctx != NULL && i < 3; i++)
		{
			xmlXPathObjectPtr r = xmlXPathEvalExpression((const xmlChar *) paths[i], ctx);

			if (r != NULL && r->type == XPATH_STRING && r->stringval && r->stringval[0])
				*out[i] = pstrdup((const char *) r->stringval);
			if (r != NULL)
				xmlXPathFreeObject(r);
		}
	}
	PG_CATCH();
	{
		if (ctx)
			xmlXPathFreeContext(ctx);
		if (doc)
			xmlFreeDoc(doc);
		pg_xml_done(xmlerrcxt, true);
		PG_RE_THROW();
	}
	PG_END_TRY();
	if (ctx)
		xmlXPathFreeContext(ctx);
	if (doc)
		xmlFreeDoc(doc);
	pg_xml_done(xmlerrcxt, doc == NULL);
}

static const char *
el_s3_hint(const char *code, long status)
{
	if (code == NULL)
		return status == 403 ? "Check enterprise_lab.s3_access_key and enterprise_lab.s3_secret_key." : NULL;
	if (strcmp(code, "SignatureDoesNotMatch") == 0 || strcmp(code, "InvalidAccessKeyId") == 0 ||
		strcmp(code, "AccessDenied") == 0)
		return "Check enterprise_lab.s3_access_key and enterprise_lab.s3_secret_key, and the clock of this server.";
	if (strcmp(code, "NoSuchBucket") == 0)
		return "Create it with document_repo.ensure_bucket(), or check enterprise_lab.s3_bucket.";
	if (strcmp(code, "AuthorizationHeaderMalformed") == 0)
		return "Check enterprise_lab.s3_region.";
	return NULL;
}

void
el_s3_request(const char *method, const char *key,
			  const ElS3Param *query, int nquery,
			  const char *content_type,
			  const char *data, size_t len,
			  size_t max_body, int flags, ElS3Result *result)
{
	ElS3Signature sig;
	ElS3Param	ct = {"content-type", content_type};
	char	   *lines[16];
	int			nlines = 0;
	char		errbuf[CURL_ERROR_SIZE];
	ElCurlBody	body = {0};
	struct curl_slist *slist = NULL;
	struct curl_header *etag = NULL;
	CURL	   *curl;
	CURLcode	rc;
	long		status = 0;
	bool		quiet = (flags & EL_S3_QUIET) != 0;
	const char *what;

	memset(result, 0, sizeof(*result));
	initStringInfo(&result->body);
	el_s3_last_failed_to_connect = false;
	what = key ? psprintf("object \"%s\"", key) : psprintf("bucket \"%s\"", el_s3_bucket);

	el_s3_sign(method, key, query, nquery, content_type ? &ct : NULL, content_type ? 1 : 0,
			   el_sha256_hex(data, len), GetCurrentTimestamp(), 0, &sig);

	/* Send exactly the headers that were signed, plus the Authorization. */
	for (int i = 0; i < sig.nheaders; i++)
		lines[nlines++] = psprintf("%s: %s", sig.headers[i].name, sig.headers[i].value);
	lines[nlines++] = psprintf("Authorization: %s", sig.authorization);
	if (content_type == NULL)
		lines[nlines++] = "Content-Type:";	/* no curl default */
	lines[nlines++] = "Expect:";	/* no 100-continue round trip */

	curl = el_curl_handle();
	errbuf[0] = '\0';
	body.max = max_body;
	body.curl = curl;

	/* From here to curl_slist_free_all() nothing may ereport. */
	for (int i = 0; i < nlines; i++)
	{
		struct curl_slist *n = curl_slist_append(slist, lines[i]);

		if (n == NULL)
			break;
		slist = n;
	}
	curl_easy_setopt(curl, CURLOPT_URL, sig.url);
	curl_easy_setopt(curl, CURLOPT_PATH_AS_IS, 1L);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, (long) el_s3_connect_timeout_ms);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long) el_s3_timeout_ms);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, slist);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, el_curl_write);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
	curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, el_curl_progress);
	curl_easy_setopt(curl, CURLOPT_USERAGENT, "enterprise_lab");
	if (strcmp(method, "GET") == 0)
		curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
	else if (strcmp(method, "HEAD") == 0)
		curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
	else
	{
		curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
		if (strcmp(method, "PUT") == 0 || strcmp(method, "POST") == 0)
		{
			curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) len);
			curl_easy_setopt(curl, CURLOPT_POSTFIELDS, data ? data : "");
		}
	}

	rc = curl_easy_perform(curl);
	if (rc == CURLE_OK)
	{
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
		if (curl_easy_header(curl, "ETag", 0, CURLH_HEADER, -1, &etag) != CURLHE_OK)
			etag = NULL;
	}
	curl_slist_free_all(slist);
	/* ... and from here on palloc and ereport are fine again. */

	if (rc == CURLE_OK && etag != NULL && etag->value != NULL)
		result->etag = pstrdup(etag->value);
	if (body.len > 0)
		appendBinaryStringInfo(&result->body, body.data, (int) body.len);
	free(body.data);

	if (rc != CURLE_OK)
	{
		int			sqlstate;
		char	   *msg;

		el_s3_last_failed_to_connect = (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST);

		if (rc == CURLE_ABORTED_BY_CALLBACK && !quiet)
			CHECK_FOR_INTERRUPTS();

		if (rc == CURLE_ABORTED_BY_CALLBACK)
		{
			sqlstate = ERRCODE_QUERY_CANCELED;
			msg = psprintf("S3 %s of %s was interrupted", method, what);
		}
		else if (rc == CURLE_WRITE_ERROR && body.too_large)
		{
			sqlstate = ERRCODE_PROGRAM_LIMIT_EXCEEDED;
			msg = psprintf("S3 response to %s of %s is larger than %zu bytes", method, what, max_body);
		}
		else if (rc == CURLE_WRITE_ERROR && body.out_of_memory)
		{
			sqlstate = ERRCODE_OUT_OF_MEMORY;
			msg = psprintf("out of memory reading the S3 response to %s of %s", method, what);
		}
		else if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST)
		{
			sqlstate = ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION;
			msg = psprintf("could not connect to the S3 endpoint %s", el_s3_endpoint);
		}
		else if (rc == CURLE_OPERATION_TIMEDOUT)
		{
			sqlstate = ERRCODE_CONNECTION_FAILURE;
			msg = psprintf("S3 %s of %s timed out", method, what);
		}
		else
		{
			sqlstate = ERRCODE_CONNECTION_FAILURE;
			msg = psprintf("S3 %s of %s failed", method, what);
		}
		if (quiet)
		{
			result->status = -1;
			result->error = psprintf("%s: %s", msg, errbuf[0] ? errbuf : curl_easy_strerror(rc));
			return;
		}
		ereport(ERROR,
				(errcode(sqlstate),
				 errmsg_internal("%s", msg),
				 errdetail("libcurl: %s", errbuf[0] ? errbuf : curl_easy_strerror(rc)),
				 rc == CURLE_OPERATION_TIMEDOUT ?
				 errhint("The limits are enterprise_lab.s3_connect_timeout (%d ms) and enterprise_lab.s3_timeout (%d ms).",
						 el_s3_connect_timeout_ms, el_s3_timeout_ms) :
				 rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ?
				 errhint("Check that the S3 server is running and that enterprise_lab.s3_endpoint points at it.") : 0));
	}

	result->status = status;
	if (status >= 300 && !(status == 404 && (flags & EL_S3_MISSING_OK)))
	{
		char	   *code,
				   *message,
				   *request_id;
		const char *hint;

		el_s3_parse_error(result->body.data, result->body.len, &code, &message, &request_id);
		if (quiet)
		{
			result->error = psprintf("S3 refused %s of %s: %s (HTTP %ld)", method, what,
									 code ? code : "no error code", status);
			return;
		}
		hint = el_s3_hint(code, status);
		ereport(ERROR,
				(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
				 errmsg("S3 refused %s of %s: %s", method, what, code ? code : "no error code"),
				 errdetail("HTTP status %ld%s%s%s%s.", status,
						   message ? ", message: " : "", message ? message : "",
						   request_id ? ", request id " : "", request_id ? request_id : ""),
				 hint ? errhint("%s", hint) : 0));
	}
}

/* ----------------------------------------------------------------
 * SQL-callable functions
 * ---------------------------------------------------------------- */

/* Name/value pairs given as two parallel text[] arrays. */
static int
el_text_array_pairs(ArrayType *names, ArrayType *values, ElS3Param **out, const char *what)
{
	Datum	   *nd,
			   *vd;
	bool	   *nn,
			   *vn;
	int			n,
				nv;

	deconstruct_array(names, TEXTOID, -1, false, TYPALIGN_INT, &nd, &nn, &n);
	deconstruct_array(values, TEXTOID, -1, false, TYPALIGN_INT, &vd, &vn, &nv);
	if (n != nv)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s names and values differ in number", what)));
	*out = palloc(sizeof(ElS3Param) * (n + 1));
	for (int i = 0; i < n; i++)
	{
		if (nn[i] || vn[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s names and values must not be null", what)));
		(*out)[i].name = TextDatumGetCString(nd[i]);
		(*out)[i].value = TextDatumGetCString(vd[i]);
	}
	return n;
}

static char *
el_method_arg(text *t)
{
	char	   *method = text_to_cstring(t);

	if (strspn(method, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != strlen(method) || method[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("HTTP method \"%s\" is not valid", method),
				 errhint("Use an uppercase method such as GET or PUT.")));
	return method;
}

/*
 * document_repo.s3_presign(method, object_key, expires_seconds, signed_at):
 * a presigned URL for the configured endpoint, bucket and keys.
 */
PG_FUNCTION_INFO_V1(el_s3_presign);
Datum
el_s3_presign(PG_FUNCTION_ARGS)
{
	char	   *method = el_method_arg(PG_GETARG_TEXT_PP(0));
	char	   *key = text_to_cstring(PG_GETARG_TEXT_PP(1));
	int32		expires = PG_GETARG_INT32(2);
	TimestampTz at = PG_GETARG_TIMESTAMPTZ(3);
	ElS3Signature sig;

	if (expires < 1 || expires > 604800)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("expires_seconds must be between 1 and 604800 (7 days), not %d", expires),
				 errdetail("Signature Version 4 limits presigned URLs to seven days.")));
	if (key[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("object_key must not be empty")));
	el_s3_sign(method, key, NULL, 0, NULL, 0, NULL, at, expires, &sig);
	PG_RETURN_TEXT_P(cstring_to_text(sig.url));
}

/*
 * document_repo.s3_signature(method, object_key, query_names, query_values,
 * header_names, header_values, payload, signed_at): the header signature
 * the client would send, with its canonical request and string to sign.
 * It runs the same code as every real request, so tests can compare it
 * with an independent signer.
 */
PG_FUNCTION_INFO_V1(el_s3_signature);
Datum
el_s3_signature(PG_FUNCTION_ARGS)
{
	char	   *method = el_method_arg(PG_GETARG_TEXT_PP(0));
	char	   *key = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));
	bytea	   *payload = PG_GETARG_BYTEA_PP(6);
	TimestampTz at = PG_GETARG_TIMESTAMPTZ(7);
	ElS3Param  *query,
			   *headers;
	int			nquery,
				nheaders;
	ElS3Signature sig;
	TupleDesc	tupdesc;
	Datum		values[6];
	bool		nulls[6] = {0};
	StringInfoData hdrs;

	nquery = el_text_array_pairs(PG_GETARG_ARRAYTYPE_P(2), PG_GETARG_ARRAYTYPE_P(3), &query, "query");
	nheaders = el_text_array_pairs(PG_GETARG_ARRAYTYPE_P(4), PG_GETARG_ARRAYTYPE_P(5), &headers, "header");
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	el_s3_sign(method, key, query, nquery, headers, nheaders,
			   el_sha256_hex(VARDATA_ANY(payload), VARSIZE_ANY_EXHDR(payload)),
			   at, 0, &sig);

	initStringInfo(&hdrs);
	for (int i = 0; i < sig.nheaders; i++)
		appendStringInfo(&hdrs, "%s: %s\n", sig.headers[i].name, sig.headers[i].value);

	values[0] = CStringGetTextDatum(sig.url);
	values[1] = CStringGetTextDatum(sig.canonical_request);
	values[2] = CStringGetTextDatum(sig.string_to_sign);
	values[3] = CStringGetTextDatum(sig.signature);
	values[4] = CStringGetTextDatum(sig.authorization);
	values[5] = CStringGetTextDatum(hdrs.data);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}

/* document_repo.s3_get_object(object_key): the object's bytes. */
PG_FUNCTION_INFO_V1(el_s3_get_object);
Datum
el_s3_get_object(PG_FUNCTION_ARGS)
{
	char	   *key = text_to_cstring(PG_GETARG_TEXT_PP(0));
	ElS3Result	r;
	bytea	   *out;

	el_s3_request("GET", key, NULL, 0, NULL, NULL, 0, MaxAllocSize - VARHDRSZ, EL_S3_MISSING_OK, &r);
	if (r.status == 404)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FILE),
				 errmsg("S3 object \"%s\" does not exist in bucket \"%s\"", key, el_s3_bucket)));
	out = palloc(VARHDRSZ + r.body.len);
	SET_VARSIZE(out, VARHDRSZ + r.body.len);
	memcpy(VARDATA(out), r.body.data, r.body.len);
	PG_RETURN_BYTEA_P(out);
}

/* document_repo.s3_object_exists(object_key): HEAD of the object. */
PG_FUNCTION_INFO_V1(el_s3_object_exists);
Datum
el_s3_object_exists(PG_FUNCTION_ARGS)
{
	char	   *key = text_to_cstring(PG_GETARG_TEXT_PP(0));
	ElS3Result	r;

	el_s3_request("HEAD", key, NULL, 0, NULL, NULL, 0, EL_S3_MAX_META_BODY, EL_S3_MISSING_OK, &r);
	PG_RETURN_BOOL(r.status != 404);
}

/* document_repo.s3_delete_object(object_key): DELETE (absent is fine). */
PG_FUNCTION_INFO_V1(el_s3_delete_object);
Datum
el_s3_delete_object(PG_FUNCTION_ARGS)
{
	char	   *key = text_to_cstring(PG_GETARG_TEXT_PP(0));
	ElS3Result	r;

	el_s3_request("DELETE", key, NULL, 0, NULL, NULL, 0, EL_S3_MAX_META_BODY, EL_S3_MISSING_OK, &r);
	PG_RETURN_VOID();
}

/* document_repo.s3_bucket_exists(): HEAD of the bucket. */
PG_FUNCTION_INFO_V1(el_s3_bucket_exists);
Datum
el_s3_bucket_exists(PG_FUNCTION_ARGS)
{
	ElS3Result	r;

	el_s3_request("HEAD", NULL, NULL, 0, NULL, NULL, 0, EL_S3_MAX_META_BODY, EL_S3_MISSING_OK, &r);
	PG_RETURN_BOOL(r.status != 404);
}

/* document_repo.s3_create_bucket(): CreateBucket in the configured region. */
PG_FUNCTION_INFO_V1(el_s3_create_bucket);
Datum
el_s3_create_bucket(PG_FUNCTION_ARGS)
{
	ElS3Result	r;
	char	   *config = NULL;

	/* us-east-1 is the default location and must not be named. */
	if (strcmp(el_s3_region, "us-east-1") != 0)
		config = psprintf("<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
						  "<LocationConstraint>%s</LocationConstraint></CreateBucketConfiguration>",
						  el_s3_region);	/* the check hook allows [a-z0-9-] only */
	el_s3_request("PUT", NULL, NULL, 0, config ? "application/xml" : NULL,
				  config, config ? strlen(config) : 0, EL_S3_MAX_META_BODY, 0, &r);
	PG_RETURN_VOID();
}

/*
 * document_repo.s3_list_objects_page(prefix, continuation_token): one
 * ListObjectsV2 page, as the XML S3 returned (parsed by the SQL caller).
 */
PG_FUNCTION_INFO_V1(el_s3_list_objects_page);
Datum
el_s3_list_objects_page(PG_FUNCTION_ARGS)
{
	ElS3Param	q[3];
	int			nq = 0;
	ElS3Result	r;

	q[nq].name = "list-type";
	q[nq++].value = "2";
	q[nq].name = "prefix";
	q[nq++].value = PG_ARGISNULL(0) ? "" : text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (!PG_ARGISNULL(1))
	{
		q[nq].name = "continuation-token";
		q[nq++].value = text_to_cstring(PG_GETARG_TEXT_PP(1));
	}
	el_s3_request("GET", NULL, q, nq, NULL, NULL, 0, EL_S3_MAX_META_BODY, 0, &r);
	PG_RETURN_TEXT_P(cstring_to_text_with_len(r.body.data, r.body.len));
}

/*
 * document_repo.s3_bucket(): the configured bucket.  Being C, calling it
 * also loads the library, and with it the enterprise_lab.s3_* settings.
 */
PG_FUNCTION_INFO_V1(el_s3_configured_bucket);
Datum
el_s3_configured_bucket(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(el_s3_bucket));
}
