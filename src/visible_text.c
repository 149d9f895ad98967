/*
 * visible_text.c
 *		enterprise_lab.has_visible_text(text): does the text contain a
 *		visible character?
 *
 * It backs CHECK constraints of intake.submissions.  As a SQL function it was
 * inlined into them, which PostgreSQL does by parsing its body again for
 * every statement that checks them; in C it is the same regular expression
 * (the same engine, the caller's collation, the compiled-pattern cache) with
 * no parsing.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "enterprise_lab.h"

/* Spaces of every kind, zero-width and other invisible characters. */
#define EL_VISIBLE_CHARACTER_PATTERN \
	"[^[:space:]\\u0085\\u00A0\\u00AD\\u034F\\u061C\\u115F\\u1160\\u1680\\u180E\\u2000-\\u200F" \
	"\\u2028-\\u202F\\u205F-\\u206F\\u3000\\u3164\\uFEFF\\uFFA0]"

PG_FUNCTION_INFO_V1(el_has_visible_text);
Datum
el_has_visible_text(PG_FUNCTION_ARGS)
{
	static text *pattern = NULL;

	if (pattern == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		pattern = cstring_to_text(EL_VISIBLE_CHARACTER_PATTERN);
		MemoryContextSwitchTo(old);
	}
	return DirectFunctionCall2Coll(textregexeq, PG_GET_COLLATION(),
								   PG_GETARG_DATUM(0), PointerGetDatum(pattern));
}
