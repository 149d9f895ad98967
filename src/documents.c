/*
 * documents.c
 *		Document validation (name, type, content type, magic bytes, size),
 *		uploads that do not outlive their transaction, and downloads that
 *		verify their checksum.
 *
 * An object is PUT before the row that describes it is inserted, so the
 * two systems are kept together by this rule: every key this transaction
 * (or subtransaction) may have written is remembered before the PUT
 * starts, and handed to the cleanup queue (object_cleanup.c) if it aborts.
 * Deletions of documents are done the other way round: the object is
 * handed over after the commit that marked the row deleted.  The
 * transaction callbacks never talk to S3 themselves, so COMMIT and
 * ROLLBACK never wait on it; a worker deletes the objects soon after, and
 * what the queue loses (a crash, a full queue) is an orphan that
 * document_repo.reconcile_storage() removes once it is older than its
 * grace period.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/formatting.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "enterprise_lab.h"
#include "s3.h"

static int	el_max_document_size = 10 * 1024 * 1024;

#define EL_MAX_FILE_NAME_BYTES 255
#define EL_MAX_STORED_BASE_BYTES 100

void
el_define_document_gucs(void)
{
	el_s3_define_gucs();

	DefineCustomIntVariable("enterprise_lab.max_document_size",
							"Largest document that may be uploaded.",
							NULL,
							&el_max_document_size,
							10 * 1024 * 1024, 1, MaxAllocSize - VARHDRSZ,
							PGC_SUSET, GUC_UNIT_BYTE,
							NULL, NULL, NULL);
}

/* ----------------------------------------------------------------
 * Validation
 * ---------------------------------------------------------------- */

typedef struct ElDocType
{
	const char *extension;
	const char *content_type;	/* canonical, stored and sent to S3 */
	const char *also_accepted;	/* another declared type browsers send */
	const char *magic_type;		/* what the content must look like */
	const char *label;
} ElDocType;

static const ElDocType el_doc_types[] = {
	{"pdf", "application/pdf", NULL, "application/pdf", "a PDF document"},
	{"txt", "text/plain", NULL, "text/plain", "UTF-8 text"},
	/* Browsers on Windows declare CSV files as Excel data. */
	{"csv", "text/csv", "application/vnd.ms-excel", "text/plain", "UTF-8 text"},
	{"png", "image/png", NULL, "image/png", "a PNG image"},
	{"jpg", "image/jpeg", NULL, "image/jpeg", "a JPEG image"},
	{"jpeg", "image/jpeg", NULL, "image/jpeg", "a JPEG image"},
};

#define EL_ALLOWED_TYPES "pdf, txt, csv, png, jpg and jpeg"

/* What the first bytes say the content is. */
static const char *
el_sniff(const unsigned char *p, size_t len, const char **label)
{
	static const unsigned char png[] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};

	if (len >= sizeof(png) && memcmp(p, png, sizeof(png)) == 0)
	{
		*label = "a PNG image";
		return "image/png";
	}
	if (len >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff)
	{
		*label = "a JPEG image";
		return "image/jpeg";
	}
	if (len >= 5 && memcmp(p, "%PDF-", 5) == 0)
	{
		*label = "a PDF document";
		return "application/pdf";
	}
	if (memchr(p, '\0', len) == NULL && pg_verify_mbstr(PG_UTF8, (const char *) p, (int) len, true))
	{
		*label = "UTF-8 text";
		return "text/plain";
	}
	*label = "binary data of an unknown type";
	return "application/octet-stream";
}

/*
 * Bidirectional controls reorder what a reader sees: "invoice\u202Efdp.exe"
 * is shown as "invoiceexe.pdf".  A file name never needs them.
 */
static bool
el_is_bidi_control(pg_wchar c)
{
	return (c >= 0x202A && c <= 0x202E) ||	/* embeddings, overrides */
		(c >= 0x2066 && c <= 0x2069) ||	/* isolates */
		c == 0x200E || c == 0x200F ||	/* left-to-right, right-to-left marks */
		c == 0x061C;			/* Arabic letter mark */
}

/*
 * Characters that show as nothing or as blank space: a name made only of
 * these looks empty.  The same set as enterprise_lab.has_visible_text().
 */
static bool
el_is_invisible(pg_wchar c)
{
	return c == ' ' || (c >= 0x09 && c <= 0x0d) ||
		c == 0x85 || c == 0xA0 || c == 0xAD || c == 0x34F || c == 0x61C ||
		c == 0x115F || c == 0x1160 || c == 0x1680 || c == 0x180E ||
		(c >= 0x2000 && c <= 0x200F) || (c >= 0x2028 && c <= 0x202F) ||
		(c >= 0x205F && c <= 0x206F) || c == 0x3000 || c == 0x3164 ||
		c == 0xFEFF || c == 0xFFA0;
}

static void
el_check_file_name(const char *name)
{
	size_t		len = strlen(name);
	bool		blank = true;
	bool		utf8 = GetDatabaseEncoding() == PG_UTF8;
	const char *dot = strrchr(name, '.');
	bool		visible_base = false;
	int			chars = 0;

	for (const char *p = name; *p; p += utf8 ? pg_utf_mblen((const unsigned char *) p) : 1, chars++)
	{
		pg_wchar	c = utf8 ? utf8_to_unicode((const unsigned char *) p) : (unsigned char) *p;

		if (utf8 && el_is_bidi_control(c))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("file_name must not contain bidirectional control characters"),
					 errdetail("Character %d is U+%04X, which changes the order in which the name is shown.",
							   chars + 1, (unsigned int) c),
					 errhint("Rename the file without right-to-left or left-to-right overrides, embeddings, isolates or marks.")));
		if (!(utf8 ? el_is_invisible(c) : isspace((unsigned char) c)))
		{
			blank = false;
			if (dot == NULL || p < dot)
				visible_base = true;
		}
	}
	if (blank)
		ereport(ERROR,
				(errcode(ERRCODE_NOT_NULL_VIOLATION),
				 errmsg("file_name must not be blank"),
				 len > 0 ? errdetail("It has no visible character: no-break, zero-width and other invisible characters do not count.") : 0,
				 errhint("Give the document's file name, e.g. contract.pdf.")));
	if (!visible_base && dot != NULL && dot > name)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("file_name has no visible name before its extension"),
				 errdetail("Only invisible characters precede \"%s\".", dot),
				 errhint("Give the document's file name, e.g. contract.pdf.")));
	if (len > EL_MAX_FILE_NAME_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
				 errmsg("file_name is too long"),
				 errdetail("It has %zu bytes; the limit is %d.", len, EL_MAX_FILE_NAME_BYTES)));
	if (strchr(name, '/') || strchr(name, '\\'))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("file_name must not contain a path separator"),
				 errdetail("\"/\" and \"\\\" are not allowed in a file name."),
				 errhint("Give the file name only, without its directory.")));
	if (strstr(name, ".."))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("file_name must not contain \"..\""),
				 errhint("Rename the file.")));
	for (const unsigned char *p = (const unsigned char *) name; *p; p++)
	{
		/* C0 controls, DEL, and in UTF-8 the C1 controls U+0080..U+009F */
		if (*p < 0x20 || *p == 0x7f ||
			(utf8 && p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("file_name must not contain control characters"),
					 errdetail("Byte 0x%02x at offset %d is a control character.",
							   *p == 0xc2 ? p[1] : *p,
							   (int) ((const char *) p - name))));
	}
}

/*
 * The stored name: letters, digits, '-', '_' and '.', anything else
 * replaced by '_' (one per character), runs collapsed, no leading dot,
 * a bounded base name and the lowercase extension.
 */
static char *
el_safe_name(const char *name, const char *ext)
{
	const char *dot = strrchr(name, '.');
	StringInfoData buf;

	initStringInfo(&buf);
	for (const char *p = name; p < dot && buf.len < EL_MAX_STORED_BASE_BYTES; p += pg_mblen(p))
	{
		char		c = *p;

		if (!(isalnum((unsigned char) c) && !IS_HIGHBIT_SET(c)) && c != '-' && c != '.' && c != '_')
			c = '_';
		if ((c == '_' || c == '.') && buf.len > 0 && buf.data[buf.len - 1] == c)
			continue;
		if (buf.len == 0 && (c == '.' || c == '_' || c == '-'))
			continue;
		appendStringInfoChar(&buf, c);
	}
	while (buf.len > 0 && (buf.data[buf.len - 1] == '_' || buf.data[buf.len - 1] == '.'))
		buf.data[--buf.len] = '\0';
	if (buf.len == 0)
		appendStringInfoString(&buf, "document");
	appendStringInfo(&buf, ".%s", ext);
	return buf.data;
}

/* The media type of a Content-Type value: no parameters, lowercase. */
static char *
el_media_type(const char *declared)
{
	const char *end = strchr(declared, ';');
	size_t		len = end ? (size_t) (end - declared) : strlen(declared);

	while (len > 0 && isspace((unsigned char) *declared))
		declared++, len--;
	while (len > 0 && isspace((unsigned char) declared[len - 1]))
		len--;
	return asc_tolower(declared, len);
}

static bool
el_is_known_content_type(const char *media)
{
	for (size_t i = 0; i < lengthof(el_doc_types); i++)
		if (strcmp(media, el_doc_types[i].content_type) == 0 ||
			(el_doc_types[i].also_accepted && strcmp(media, el_doc_types[i].also_accepted) == 0))
			return true;
	return false;
}

/*
 * document_repo.validate_document(file_name, content_type, content):
 * every check of an upload, before anything is sent anywhere.
 */
PG_FUNCTION_INFO_V1(el_validate_document);
Datum
el_validate_document(PG_FUNCTION_ARGS)
{
	char	   *name;
	char	   *declared;
	char	   *media;
	bytea	   *content;
	const unsigned char *data;
	size_t		len;
	const char *dot;
	char	   *ext;
	const ElDocType *type = NULL;
	const char *sniffed;
	const char *sniffed_label;
	TupleDesc	tupdesc;
	Datum		values[6];
	bool		nulls[6] = {0};

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NOT_NULL_VIOLATION),
				 errmsg("file_name must not be null")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	el_check_file_name(name);

	dot = strrchr(name, '.');
	ext = dot ? asc_tolower(dot + 1, strlen(dot + 1)) : pstrdup("");
	for (size_t i = 0; i < lengthof(el_doc_types); i++)
		if (strcmp(ext, el_doc_types[i].extension) == 0)
			type = &el_doc_types[i];
	if (type == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 dot ? errmsg("file type \".%s\" is not allowed", ext)
				 : errmsg("file_name \"%s\" has no file extension", name),
				 errdetail("Allowed types are " EL_ALLOWED_TYPES "."),
				 errhint("Convert the file to one of the allowed types.")));

	if (PG_ARGISNULL(1) || VARSIZE_ANY_EXHDR(PG_GETARG_TEXT_PP(1)) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NOT_NULL_VIOLATION),
				 errmsg("content_type must not be empty"),
				 errhint("Declare the content type, e.g. %s for a .%s file.", type->content_type, ext)));
	declared = text_to_cstring(PG_GETARG_TEXT_PP(1));
	media = el_media_type(declared);
	if (!el_is_known_content_type(media))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("content_type \"%s\" is not allowed", media),
				 errdetail("Allowed are application/pdf, text/plain, text/csv, image/png and image/jpeg.")));
	if (strcmp(media, type->content_type) != 0 &&
		!(type->also_accepted && strcmp(media, type->also_accepted) == 0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("content_type \"%s\" does not match the file extension \".%s\"", media, ext),
				 errdetail("A .%s file has content type %s.", ext, type->content_type)));

	if (PG_ARGISNULL(2) || VARSIZE_ANY_EXHDR(PG_GETARG_BYTEA_PP(2)) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("content is empty"),
				 errhint("Upload a file with content.")));
	content = PG_GETARG_BYTEA_PP(2);
	data = (const unsigned char *) VARDATA_ANY(content);
	len = VARSIZE_ANY_EXHDR(content);
	if (len > (size_t) el_max_document_size)
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
				 errmsg("document \"%s\" is too large", name),
				 errdetail("It has %zu bytes; the limit is %d bytes (enterprise_lab.max_document_size).",
						   len, el_max_document_size)));

	sniffed = el_sniff(data, len, &sniffed_label);
	if (strcmp(type->magic_type, "text/plain") == 0 && strcmp(sniffed, "text/plain") != 0)
	{
		const char *nul = memchr(data, '\0', len);
		int			valid = pg_encoding_verifymbstr(PG_UTF8, (const char *) data, (int) len);

		if (nul != NULL && (const unsigned char *) nul - data <= valid)
			ereport(ERROR,
					(errcode(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE),
					 errmsg("content of \"%s\" contains a NUL byte", name),
					 errdetail("A .%s file must be text; byte %d is 0x00.", ext,
							   (int) ((const unsigned char *) nul - data)),
					 errhint("Upload binary files with the extension of their real type.")));
		ereport(ERROR,
				(errcode(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE),
				 errmsg("content of \"%s\" is not valid UTF-8", name),
				 errdetail("The first invalid byte is at offset %d; the content looks like %s.",
						   valid, sniffed_label),
				 errhint("Save the file as UTF-8 text.")));
	}
	if (strcmp(type->magic_type, sniffed) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("content of \"%s\" is not %s", name, type->label),
				 errdetail("Its first bytes are those of %s.", sniffed_label),
				 errhint("Upload the file with the extension of its real type.")));

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	values[0] = CStringGetTextDatum(el_safe_name(name, ext));
	values[1] = CStringGetTextDatum(ext);
	values[2] = CStringGetTextDatum(type->content_type);
	values[3] = CStringGetTextDatum(sniffed);
	values[4] = Int64GetDatum((int64) len);
	values[5] = CStringGetTextDatum(el_sha256_hex((const char *) data, len));
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}

/* ----------------------------------------------------------------
 * Objects tied to the fate of a transaction
 * ---------------------------------------------------------------- */

typedef struct ElPendingObject
{
	struct ElPendingObject *next;
	char	   *endpoint;		/* where the object lives */
	char	   *bucket;
	char	   *key;
	SubTransactionId subid;		/* (sub)transaction that registered it */
	bool		delete_at_commit;	/* false: an upload, deleted at abort */
} ElPendingObject;

static ElPendingObject *el_pending = NULL;
static bool el_callbacks_registered = false;

static void el_xact_callback(XactEvent event, void *arg);
static void el_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
								SubTransactionId parentSubid, void *arg);

static void
el_remember_object(const char *key, bool delete_at_commit)
{
	ElPendingObject *p;

	if (!el_callbacks_registered)
	{
		RegisterXactCallback(el_xact_callback, NULL);
		RegisterSubXactCallback(el_subxact_callback, NULL);
		el_callbacks_registered = true;
	}
	p = MemoryContextAllocZero(TopMemoryContext, sizeof(ElPendingObject));
	p->endpoint = MemoryContextStrdup(TopMemoryContext, el_s3_endpoint);
	p->bucket = MemoryContextStrdup(TopMemoryContext, el_s3_bucket);
	p->key = MemoryContextStrdup(TopMemoryContext, key);
	p->subid = GetCurrentSubTransactionId();
	p->delete_at_commit = delete_at_commit;
	p->next = el_pending;
	el_pending = p;
}

static void
el_free_object(ElPendingObject *p)
{
	pfree(p->endpoint);
	pfree(p->bucket);
	pfree(p->key);
	pfree(p);
}

/*
 * Hand one object to the cleanup queue (object_cleanup.c), from inside a
 * transaction callback: no I/O, so COMMIT and ROLLBACK never wait on S3,
 * and no error.
 */
static void
el_abandon_object(ElPendingObject *p, const char *why)
{
	if (!el_object_cleanup_enqueue(p->endpoint, p->bucket, p->key, p->delete_at_commit))
		ereport(WARNING,
				(errmsg("S3 object \"%s\" in bucket \"%s\" %s is left in the bucket", p->key, p->bucket, why),
				 errdetail("The cleanup queue is full or not available (enterprise_lab is not in shared_preload_libraries)."),
				 errhint("document_repo.reconcile_storage() removes it once it is older than its grace period.")));
}

static void
el_xact_callback(XactEvent event, void *arg)
{
	ElPendingObject *p,
			   *next;

	switch (event)
	{
		case XACT_EVENT_PRE_PREPARE:
			if (el_pending != NULL)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot PREPARE a transaction that uploaded or deleted documents")));
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_ABORT:
			for (p = el_pending; p != NULL; p = next)
			{
				next = p->next;
				if (event == XACT_EVENT_COMMIT && p->delete_at_commit)
					el_abandon_object(p, "of a deleted document");
				else if (event == XACT_EVENT_ABORT && !p->delete_at_commit)
					el_abandon_object(p, "uploaded by an aborted transaction");
				el_free_object(p);
			}
			el_pending = NULL;
			break;
		default:
			break;
	}
}

static void
el_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					SubTransactionId parentSubid, void *arg)
{
	ElPendingObject **link = &el_pending;

	if (event != SUBXACT_EVENT_COMMIT_SUB && event != SUBXACT_EVENT_ABORT_SUB)
		return;
	while (*link != NULL)
	{
		ElPendingObject *p = *link;

		if (p->subid != mySubid)
		{
			link = &p->next;
			continue;
		}
		if (event == SUBXACT_EVENT_COMMIT_SUB)
		{
			p->subid = parentSubid;
			link = &p->next;
			continue;
		}
		if (!p->delete_at_commit)
			el_abandon_object(p, "uploaded by an aborted subtransaction");
		*link = p->next;
		el_free_object(p);
	}
}

/*
 * document_repo.s3_put_object(object_key, content, content_type): PUT the
 * object, deleting it again if this (sub)transaction aborts.  Returns the
 * ETag.
 */
PG_FUNCTION_INFO_V1(el_s3_put_object);
Datum
el_s3_put_object(PG_FUNCTION_ARGS)
{
	char	   *key = text_to_cstring(PG_GETARG_TEXT_PP(0));
	bytea	   *content = PG_GETARG_BYTEA_PP(1);
	char	   *content_type = text_to_cstring(PG_GETARG_TEXT_PP(2));
	ElS3Result	r;

	/* Remembered first: a cancelled PUT may still have reached S3. */
	el_remember_object(key, false);
	PG_TRY();
	{
		el_s3_request("PUT", key, NULL, 0, content_type,
					  VARDATA_ANY(content), VARSIZE_ANY_EXHDR(content),
					  1024 * 1024, 0, &r);
	}
	PG_CATCH();
	{
		/* Never connected: there is nothing to delete at abort. */
		if (el_s3_last_failed_to_connect && el_pending != NULL && strcmp(el_pending->key, key) == 0)
		{
			ElPendingObject *p = el_pending;

			el_pending = p->next;
			el_free_object(p);
		}
		PG_RE_THROW();
	}
	PG_END_TRY();
	if (r.etag == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(r.etag));
}

/*
 * document_repo.s3_delete_object_at_commit(object_key): delete the object
 * once this transaction has committed.
 */
PG_FUNCTION_INFO_V1(el_s3_delete_object_at_commit);
Datum
el_s3_delete_object_at_commit(PG_FUNCTION_ARGS)
{
	el_remember_object(text_to_cstring(PG_GETARG_TEXT_PP(0)), true);
	PG_RETURN_VOID();
}

/*
 * document_repo.s3_get_verified(object_key, sha256, size_bytes): GET the
 * object and return it only if it has the recorded size and SHA-256.
 */
PG_FUNCTION_INFO_V1(el_s3_get_verified);
Datum
el_s3_get_verified(PG_FUNCTION_ARGS)
{
	char	   *key = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *expected = text_to_cstring(PG_GETARG_TEXT_PP(1));
	int64		size = PG_GETARG_INT64(2);
	ElS3Result	r;
	char	   *actual;
	bytea	   *out;

	if (size < 0 || size > (int64) (MaxAllocSize - VARHDRSZ))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("size_bytes %lld is out of range", (long long) size)));
	/* One byte more than recorded is enough to notice a longer object. */
	el_s3_request("GET", key, NULL, 0, NULL, NULL, 0, (size_t) size + 1, EL_S3_MISSING_OK, &r);
	if (r.status == 404)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FILE),
				 errmsg("document object \"%s\" is missing from bucket \"%s\"", key, el_s3_bucket),
				 errhint("document_repo.reconcile_storage() marks such documents as missing.")));
	actual = el_sha256_hex(r.body.data, r.body.len);
	if ((int64) r.body.len != size || strcmp(actual, expected) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("document object \"%s\" does not match its checksum", key),
				 errdetail("Recorded: %lld bytes, SHA-256 %s; stored: %d bytes, SHA-256 %s.",
						   (long long) size, expected, r.body.len, actual),
				 errhint("The object was changed in the bucket after upload.")));
	out = palloc(VARHDRSZ + r.body.len);
	SET_VARSIZE(out, VARHDRSZ + r.body.len);
	memcpy(VARDATA(out), r.body.data, r.body.len);
	PG_RETURN_BYTEA_P(out);
}
