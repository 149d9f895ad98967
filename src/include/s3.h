/*
 * s3.h
 *		The libcurl S3 client (s3.c), used by the document repository.
 */
#ifndef EL_S3_H
#define EL_S3_H

#include "lib/stringinfo.h"

/* GUCs (s3.c) */
extern char *el_s3_endpoint;
extern char *el_s3_region;
extern char *el_s3_bucket;
extern char *el_s3_access_key;
extern char *el_s3_secret_key;
extern int	el_s3_connect_timeout_ms;
extern int	el_s3_timeout_ms;
extern bool el_s3_path_style;

extern void el_s3_define_gucs(void);

/* One query-string parameter or request header, unencoded. */
typedef struct ElS3Param
{
	const char *name;
	const char *value;
} ElS3Param;

/* Flags of el_s3_request() */
#define EL_S3_MISSING_OK	0x01	/* a 404 is returned, not reported */
#define EL_S3_QUIET			0x02	/* never ereport: return -1 on failure */

/* What a request returned. */
typedef struct ElS3Result
{
	long		status;			/* HTTP status, or -1 (EL_S3_QUIET) */
	StringInfoData body;		/* response body (palloc'd) */
	char	   *etag;			/* ETag response header, or NULL */
	char	   *error;			/* EL_S3_QUIET: what went wrong */
	bool		sent;			/* the request may have reached the server */
} ElS3Result;

/*
 * Send one signed request.  key NULL addresses the bucket itself.  Bodies
 * longer than max_body are refused (the transfer is aborted).
 */
extern void el_s3_request(const char *method, const char *key,
						  const ElS3Param *query, int nquery,
						  const char *content_type,
						  const char *data, size_t len,
						  size_t max_body, int flags, ElS3Result *result);

/* Set when the last el_s3_request() could not even connect. */
extern bool el_s3_last_failed_to_connect;

/* Hex SHA-256 of a buffer (OpenSSL). */
extern char *el_sha256_hex(const char *data, size_t len);

#endif							/* EL_S3_H */
