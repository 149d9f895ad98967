/*
 * uuid_v7.c
 *		enterprise_lab.uuid_v7(): time-ordered UUIDs (RFC 9562, version 7)
 *		for the rows written at the event rate.
 *
 * A random (version 4) key sends every insert to a random leaf of each
 * index that starts with it.  With a dozen such indexes on the lifecycle
 * tables, nearly every page an event touches is a different one: the
 * working set is the whole of every index, and after each checkpoint the
 * first change to every page writes a full-page image into the WAL.  At
 * 1,000 submissions a second the WAL then filled max_wal_size in seconds,
 * and the checkpoints it forced made more full-page images.  Version 7
 * keys start with the time, so the new entries of every such index land
 * on its last few pages.
 *
 * Layout: 48 bits of Unix time in milliseconds, the version (7), 12 bits of
 * sub-millisecond time (RFC 9562 section 6.2, method 3: so that the keys a
 * backend makes sort in the order it made them), the variant (10), and 62
 * random bits from pg_strong_random().  PostgreSQL 18 has uuidv7() built
 * in; this one works on every supported version.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"


/* Unix epoch to PostgreSQL's epoch (2000-01-01), in microseconds. */
#define EL_UNIX_TO_PG_EPOCH_US \
	((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY * USECS_PER_SEC)

PG_FUNCTION_INFO_V1(el_uuid_v7);
Datum
el_uuid_v7(PG_FUNCTION_ARGS)
{
	static int64 last_us = 0;
	pg_uuid_t  *uuid = palloc(sizeof(pg_uuid_t));
	int64		us = (int64) GetCurrentTimestamp() + EL_UNIX_TO_PG_EPOCH_US;
	uint64		ms;
	uint32		sub_ms;

	/* Never go back within a backend, even if the clock does. */
	if (us <= last_us)
		us = last_us + 1;
	last_us = us;

	ms = (uint64) (us / 1000);
	sub_ms = (uint32) ((us % 1000) * 4096 / 1000);

	if (!pg_strong_random(uuid->data + 8, UUID_LEN - 8))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate random values for a UUID")));

	uuid->data[0] = (unsigned char) (ms >> 40);
	uuid->data[1] = (unsigned char) (ms >> 32);
	uuid->data[2] = (unsigned char) (ms >> 24);
	uuid->data[3] = (unsigned char) (ms >> 16);
	uuid->data[4] = (unsigned char) (ms >> 8);
	uuid->data[5] = (unsigned char) ms;
	uuid->data[6] = (unsigned char) (0x70 | (sub_ms >> 8));
	uuid->data[7] = (unsigned char) (sub_ms & 0xFF);
	uuid->data[8] = (unsigned char) ((uuid->data[8] & 0x3F) | 0x80);

	PG_RETURN_UUID_P(uuid);
}
