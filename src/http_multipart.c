/*
 * http_multipart.c
 *		POST /intake/submissions as a form (multipart/form-data, or
 *		application/x-www-form-urlencoded without a file): libmicrohttpd's
 *		post processor parses the body the gateway has read, and the fields
 *		and the one optional file become the JSON body of
 *		api.original_submit_request, the file as its "document"
 *		(file_name, content_type, content_base64, and the form's
 *		document_type field when there is one).  What a file may be
 *		(type, size) is decided where every document is checked,
 *		document_repo.upload_document.
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/json.h"

#include "gateway.h"
#include "pg_compat.h"

/* Bounds of a form: fields, the length of one value, the file's part name. */
#define EL_FORM_MAX_FIELDS 32
#define EL_FORM_MAX_VALUE 16384
/* The post processor's own buffer (its minimum is 256). */
#define EL_FORM_BUFFER 8192

typedef struct ElFormField
{
	char	   *key;
	StringInfoData value;
} ElFormField;

typedef struct ElForm
{
	ElFormField fields[EL_FORM_MAX_FIELDS];
	int			nfields;
	bool		has_file;
	char	   *file_key;
	char	   *file_name;
	char	   *file_type;
	StringInfoData file;
	const char *problem;		/* why the form is refused, or NULL */
	ErrorData  *error;			/* an ERROR raised inside the iterator */
} ElForm;

/* The field of the form's document-type selector: it describes the file. */
#define EL_FORM_DOCUMENT_TYPE "document_type"

/* The part names a file may come in: ours, and the name forms commonly use. */
static bool
el_is_file_key(const char *key)
{
	return strcmp(key, "file") == 0 || strcmp(key, "document") == 0;
}

bool
el_is_form_post(struct MHD_Connection *conn)
{
	const char *type = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);

	return type != NULL &&
		(pg_strncasecmp(type, MHD_HTTP_POST_ENCODING_MULTIPART_FORMDATA,
						strlen(MHD_HTTP_POST_ENCODING_MULTIPART_FORMDATA)) == 0 ||
		 pg_strncasecmp(type, MHD_HTTP_POST_ENCODING_FORM_URLENCODED,
						strlen(MHD_HTTP_POST_ENCODING_FORM_URLENCODED)) == 0);
}

/* One piece of one part.  A part starts at off 0; long values come in pieces. */
static bool
el_form_piece(ElForm *form, const char *key, const char *filename, const char *content_type,
			  const char *data, uint64_t off, size_t size)
{
	ElFormField *field;

	if (filename != NULL || el_is_file_key(key))
	{
		if (off == 0)
		{
			if (form->has_file)
			{
				form->problem = "A submission takes at most one file";
				return false;
			}
			form->has_file = true;
			form->file_key = pstrdup(key);
			form->file_name = pstrdup(filename ? filename : "");
			form->file_type = pstrdup(content_type ? content_type : "application/octet-stream");
			initStringInfo(&form->file);
		}
		else if (strcmp(form->file_key, key) != 0)
		{
			form->problem = "The form's parts are out of order";
			return false;
		}
		/* The gateway's body limit bounds the file; the document limit is checked in SQL. */
		appendBinaryStringInfo(&form->file, data, size);
		return true;
	}

	if (off == 0)
	{
		for (int i = 0; i < form->nfields; i++)
			if (strcmp(form->fields[i].key, key) == 0)
			{
				form->problem = psprintf("The field \"%s\" is given more than once", key);
				return false;
			}
		if (form->nfields >= EL_FORM_MAX_FIELDS)
		{
			form->problem = psprintf("A form has at most %d fields", EL_FORM_MAX_FIELDS);
			return false;
		}
		field = &form->fields[form->nfields++];
		field->key = pstrdup(key);
		initStringInfo(&field->value);
	}
	else
	{
		if (form->nfields == 0 || strcmp(form->fields[form->nfields - 1].key, key) != 0)
		{
			form->problem = "The form's parts are out of order";
			return false;
		}
		field = &form->fields[form->nfields - 1];
	}
	if ((uint64) field->value.len + size > EL_FORM_MAX_VALUE)
	{
		form->problem = psprintf("The field \"%s\" is longer than %d bytes", key, EL_FORM_MAX_VALUE);
		return false;
	}
	appendBinaryStringInfo(&field->value, data, size);
	return true;
}

/*
 * libmicrohttpd's iterator.  It runs inside MHD_post_process, so an ERROR
 * must not unwind from here: it is kept and raised again by the caller.
 */
static enum MHD_Result
el_form_iterator(void *cls, enum MHD_ValueKind kind, const char *key, const char *filename,
				 const char *content_type, const char *transfer_encoding,
				 const char *data, uint64_t off, size_t size)
{
	ElForm	   *form = (ElForm *) cls;
	MemoryContext cxt = CurrentMemoryContext;
	volatile bool ok = false;

	PG_TRY();
	{
		ok = el_form_piece(form, key, filename, content_type, data, off, size);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		form->error = CopyErrorData();
		FlushErrorState();
	}
	PG_END_TRY();
	return ok ? MHD_YES : MHD_NO;
}

static bool
el_valid_text(const char *s, int len)
{
	return pg_verify_mbstr(PG_UTF8, s, len, true);
}

/*
 * Parse the form in body into json.  false: refused, with *refusal set
 * (400 for a malformed or over-long form).
 */
bool
el_form_to_json(struct MHD_Connection *conn, StringInfo body, StringInfo json, ElRefusal *refusal)
{
	ElForm	   *form = palloc0(sizeof(ElForm));
	struct MHD_PostProcessor *pp;
	bool		parsed;
	const char *document_type = NULL;

	refusal->status = MHD_HTTP_BAD_REQUEST;
	refusal->code = "PGRST102";

	pp = MHD_create_post_processor(conn, EL_FORM_BUFFER, el_form_iterator, form);
	if (pp == NULL)
	{
		refusal->message = "The form cannot be read: a multipart body needs a boundary in its Content-Type";
		return false;
	}
	parsed = MHD_post_process(pp, body->data, body->len) == MHD_YES;
	/* It also says whether the body ended where the form did. */
	if (MHD_destroy_post_processor(pp) != MHD_YES)
		parsed = false;
	if (form->error)
		ReThrowError(form->error);
	if (form->problem || !parsed)
	{
		refusal->message = form->problem ? form->problem : "The form is malformed or cut short";
		return false;
	}

	appendStringInfoChar(json, '{');
	for (int i = 0; i < form->nfields; i++)
	{
		ElFormField *f = &form->fields[i];

		if (!el_valid_text(f->key, strlen(f->key)) || !el_valid_text(f->value.data, f->value.len))
		{
			refusal->message = "A form field is not valid UTF-8";
			return false;
		}
		if (strcmp(f->key, EL_FORM_DOCUMENT_TYPE) == 0)
		{
			document_type = f->value.data;
			continue;
		}
		if (json->len > 1)
			appendStringInfoChar(json, ',');
		escape_json(json, f->key);
		appendStringInfoChar(json, ':');
		escape_json(json, f->value.data);
	}

	/*
	 * A file input left empty sends a part with no name and no bytes; the
	 * portal's selector sends a document type all the same, which then
	 * describes nothing.
	 */
	if (form->has_file && (form->file.len > 0 || form->file_name[0] != '\0'))
	{
		int			b64len = pg_b64_enc_len(form->file.len);
		char	   *b64 = palloc(b64len + 1);
		int			n;

		if (!el_valid_text(form->file_name, strlen(form->file_name)) ||
			!el_valid_text(form->file_type, strlen(form->file_type)))
		{
			refusal->message = "The file's name or type is not valid UTF-8";
			return false;
		}
		n = el_b64_encode(form->file.data, form->file.len, b64, b64len);
		if (n < 0)
			elog(ERROR, "could not encode the uploaded file as base64");
		b64[n] = '\0';
		if (json->len > 1)
			appendStringInfoChar(json, ',');
		appendStringInfoString(json, "\"document\":{");
		if (document_type && document_type[0] != '\0')
			el_json_field(json, EL_FORM_DOCUMENT_TYPE, document_type, false);
		el_json_field(json, "file_name", form->file_name, false);
		el_json_field(json, "content_type", form->file_type, false);
		el_json_field(json, "content_base64", b64, true);
		appendStringInfoChar(json, '}');
	}
	appendStringInfoChar(json, '}');
	return true;
}
