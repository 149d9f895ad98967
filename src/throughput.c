/*
 * throughput.c
 *		"Events completed in the last minute" without reading a row: a ring of
 *		per-second completion counts in shared memory, added to when a
 *		processing transaction commits.
 *
 * The dashboard asks for throughput on every refresh; counting completed
 * events by processed_at would scan every event completed in the window,
 * and more as the rate grows.  The ring holds EL_THROUGHPUT_SECONDS buckets,
 * each stamped with the second it counts; a bucket whose stamp is older than
 * the window is stale and reads as zero, so nothing has to clear it.
 *
 * Locking: ElThroughput.mutex (a spinlock) guards every bucket's second and
 * count; it is held for a few instructions per committing batch or read.
 *
 * The counts live in memory only: they start at zero when the server starts
 * and cover the completions of this server's processing transactions (the
 * workers' and integration.process_events() calls; a call inside a
 * savepoint that is rolled back still counts, since only the top-level
 * commit is seen).  Without
 * shared_preload_libraries there is no ring and the reading function
 * returns NULL.
 */
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/timestamp.h"

#include "enterprise_lab.h"

/* More than the one-minute window, so a slow reader never sees a reused bucket. */
#define EL_THROUGHPUT_SECONDS 64

typedef struct ElThroughput
{
	slock_t		mutex;
	int64		second[EL_THROUGHPUT_SECONDS];	/* the Unix second a bucket counts */
	uint64		completed[EL_THROUGHPUT_SECONDS];
} ElThroughput;

static ElThroughput *el_throughput = NULL;

/* Completions of the current transaction, published only if it commits. */
static uint64 completed_in_xact = 0;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static int64
el_unix_second(void)
{
	return (int64) (GetCurrentTimestamp() / USECS_PER_SEC);
}

static void
el_throughput_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(ElThroughput)));
}

static void
el_throughput_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	el_throughput = ShmemInitStruct("enterprise_lab throughput", sizeof(ElThroughput), &found);
	if (!found)
	{
		memset(el_throughput, 0, sizeof(ElThroughput));
		SpinLockInit(&el_throughput->mutex);
	}
	LWLockRelease(AddinShmemInitLock);
}

static void
el_throughput_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (completed_in_xact > 0 && el_throughput != NULL)
			{
				int64		now = el_unix_second();
				int			i = (int) (now % EL_THROUGHPUT_SECONDS);

				SpinLockAcquire(&el_throughput->mutex);
				if (el_throughput->second[i] != now)
				{
					el_throughput->second[i] = now;
					el_throughput->completed[i] = 0;
				}
				el_throughput->completed[i] += completed_in_xact;
				SpinLockRelease(&el_throughput->mutex);
			}
			completed_in_xact = 0;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			completed_in_xact = 0;
			break;
		default:
			break;
	}
}

/* Called from _PG_init while shared_preload_libraries is being processed. */
void
el_throughput_init(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = el_throughput_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = el_throughput_shmem_startup;
	RegisterXactCallback(el_throughput_xact_callback, NULL);
}

/* The processing core completed n events in the current transaction. */
void
el_throughput_note_completed(int n)
{
	completed_in_xact += n;
}

/*
 * integration.completed_last_minute() RETURNS bigint
 *
 * Events completed by transactions that committed in the last 60 seconds
 * (whole seconds, the current one included); NULL without the preloaded
 * library.
 */
PG_FUNCTION_INFO_V1(el_completed_last_minute);
Datum
el_completed_last_minute(PG_FUNCTION_ARGS)
{
	int64		now;
	uint64		total = 0;

	if (el_throughput == NULL)
		PG_RETURN_NULL();

	now = el_unix_second();
	SpinLockAcquire(&el_throughput->mutex);
	for (int i = 0; i < EL_THROUGHPUT_SECONDS; i++)
	{
		if (el_throughput->second[i] > now - 60 && el_throughput->second[i] <= now)
			total += el_throughput->completed[i];
	}
	SpinLockRelease(&el_throughput->mutex);
	PG_RETURN_INT64((int64) total);
}
