/*
 * object_cleanup.c
 *		Objects left to delete, and the deleting of them, away from the
 *		transactions that left them.
 *
 * An object uploaded by a transaction that aborts, or belonging to a
 * document whose deletion committed, must go from the bucket.  Deleting it
 * from the transaction callback would make COMMIT and ROLLBACK wait on S3
 * (a timeout per object when S3 is unreachable), so the callback only
 * records the object here, in shared memory, and wakes the first
 * processing worker, which deletes it outside any transaction.  Failed
 * deletions are retried with backoff.
 *
 * The queue is bounded and does not survive a restart; whatever it loses
 * (a full queue, a crash, a server without the preloaded library) is an
 * orphan that document_repo.reconcile_storage() removes once it is older
 * than its grace period.  So the queue makes cleanup prompt and
 * reconcile_storage makes it certain.
 *
 * Locking: one LWLock (ElCleanupQueue.lock) guards every field of the
 * queue.  It is held to scan and copy entries, never across I/O.
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "enterprise_lab.h"
#include "s3.h"

/* Objects the queue holds at most; beyond, reconcile_storage takes over. */
#define EL_CLEANUP_QUEUE_SIZE 256

/* A deletion is given up (left to reconcile_storage) after this many tries. */
#define EL_CLEANUP_MAX_ATTEMPTS 8

/* One deletion may take this long at most, whatever enterprise_lab.s3_timeout says. */
#define EL_CLEANUP_TIMEOUT_MS 5000

typedef struct ElCleanupEntry
{
	bool		in_use;
	bool		in_flight;		/* a worker is deleting it right now */
	bool		after_delete;	/* a deleted document's; else an aborted upload's */
	int			attempts;		/* failed deletions so far */
	TimestampTz not_before;		/* next try */
	char		endpoint[256];
	char		bucket[64];
	char		key[512];
} ElCleanupEntry;

typedef struct ElCleanupQueue
{
	LWLock	   *lock;
	int			used;			/* entries in use */
	ElCleanupEntry entries[EL_CLEANUP_QUEUE_SIZE];
} ElCleanupQueue;

static ElCleanupQueue *el_cleanup = NULL;

#define EL_CLEANUP_TRANCHE "enterprise_lab object cleanup"

/* Called from the shmem request hook. */
void
el_object_cleanup_shmem_request(void)
{
	RequestAddinShmemSpace(MAXALIGN(sizeof(ElCleanupQueue)));
	RequestNamedLWLockTranche(EL_CLEANUP_TRANCHE, 1);
}

/* Called from the shmem startup hook, with AddinShmemInitLock held. */
void
el_object_cleanup_shmem_init(void)
{
	bool		found;

	el_cleanup = ShmemInitStruct(EL_CLEANUP_TRANCHE, sizeof(ElCleanupQueue), &found);
	if (!found)
	{
		memset(el_cleanup, 0, sizeof(ElCleanupQueue));
		el_cleanup->lock = &(GetNamedLWLockTranche(EL_CLEANUP_TRANCHE))->lock;
	}
}

static bool
el_cleanup_put(const ElCleanupEntry *entry)
{
	bool		stored = false;

	LWLockAcquire(el_cleanup->lock, LW_EXCLUSIVE);
	for (int i = 0; i < EL_CLEANUP_QUEUE_SIZE; i++)
	{
		if (el_cleanup->entries[i].in_use)
			continue;
		el_cleanup->entries[i] = *entry;
		el_cleanup->entries[i].in_use = true;
		el_cleanup->used++;
		stored = true;
		break;
	}
	LWLockRelease(el_cleanup->lock);
	return stored;
}

/*
 * Record an object to delete.  Called from transaction callbacks: never
 * throws, does no I/O.  Returns false when the object could not be
 * recorded (then reconcile_storage() removes it later).
 */
bool
el_object_cleanup_enqueue(const char *endpoint, const char *bucket,
						  const char *key, bool after_delete)
{
	ElCleanupEntry entry;

	if (el_cleanup == NULL ||
		strlen(endpoint) >= sizeof(entry.endpoint) ||
		strlen(bucket) >= sizeof(entry.bucket) ||
		strlen(key) >= sizeof(entry.key))
		return false;

	memset(&entry, 0, sizeof(entry));
	entry.after_delete = after_delete;
	entry.not_before = 0;
	strlcpy(entry.endpoint, endpoint, sizeof(entry.endpoint));
	strlcpy(entry.bucket, bucket, sizeof(entry.bucket));
	strlcpy(entry.key, key, sizeof(entry.key));
	if (!el_cleanup_put(&entry))
		return false;
	el_wake_cleanup_worker();
	return true;
}

/*
 * Claim one entry that is due: it stays listed, marked in flight, until
 * el_cleanup_done().  Returns its slot, or -1 when nothing is due.
 */
static int
el_cleanup_take(TimestampTz now, ElCleanupEntry *out)
{
	int			slot = -1;

	LWLockAcquire(el_cleanup->lock, LW_EXCLUSIVE);
	for (int i = 0; i < EL_CLEANUP_QUEUE_SIZE && el_cleanup->used > 0; i++)
	{
		ElCleanupEntry *e = &el_cleanup->entries[i];

		if (!e->in_use || e->in_flight || e->not_before > now)
			continue;
		e->in_flight = true;
		*out = *e;
		slot = i;
		break;
	}
	LWLockRelease(el_cleanup->lock);
	return slot;
}

/* Forget a claimed entry (deleted, or given up), or release it for a retry at not_before. */
static void
el_cleanup_done(int slot, bool forget, int attempts, TimestampTz not_before)
{
	ElCleanupEntry *e = &el_cleanup->entries[slot];

	LWLockAcquire(el_cleanup->lock, LW_EXCLUSIVE);
	if (forget)
	{
		e->in_use = false;
		el_cleanup->used--;
	}
	e->in_flight = false;
	e->attempts = attempts;
	e->not_before = not_before;
	LWLockRelease(el_cleanup->lock);
}

/* Delete one object with the server's credentials; the error, or NULL. */
static char *
el_cleanup_delete(const ElCleanupEntry *e)
{
	char	   *saved_endpoint = el_s3_endpoint;
	char	   *saved_bucket = el_s3_bucket;
	int			saved_timeout = el_s3_timeout_ms;
	MemoryContext oldcxt = CurrentMemoryContext;
	char	   *volatile error = NULL;

	el_s3_endpoint = (char *) e->endpoint;
	el_s3_bucket = (char *) e->bucket;
	el_s3_timeout_ms = Min(el_s3_timeout_ms, EL_CLEANUP_TIMEOUT_MS);
	PG_TRY();
	{
		ElS3Result r;

		el_s3_request("DELETE", e->key, NULL, 0, NULL, NULL, 0, 1024 * 1024,
					  EL_S3_QUIET | EL_S3_MISSING_OK, &r);
		if (r.error != NULL)
			error = r.error;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		/* Settings or allocation errors only: the transfer is over. */
		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		error = edata->message;
	}
	PG_END_TRY();
	el_s3_endpoint = saved_endpoint;
	el_s3_bucket = saved_bucket;
	el_s3_timeout_ms = saved_timeout;
	return error;
}

/*
 * Delete up to max_objects due objects; returns how many were deleted.
 * Runs outside a transaction in the worker (and inside one when called
 * from SQL, where it holds no locks).  A failure is retried later with
 * exponential backoff; one failed transfer ends the pass, since S3 is then
 * likely down for the rest as well.
 */
int
el_object_cleanup_run(int max_objects)
{
	int			deleted = 0;
	ElCleanupEntry e;
	int			slot;

	if (el_cleanup == NULL)
		return 0;

	for (int i = 0; i < max_objects && (slot = el_cleanup_take(GetCurrentTimestamp(), &e)) >= 0; i++)
	{
		const char *why = e.after_delete ? "after its document was deleted" :
			"uploaded by an aborted transaction";
		char	   *error;
		int			attempts;

		/* An interrupt here leaves the entry in flight; release it first. */
		if (INTERRUPTS_PENDING_CONDITION())
		{
			el_cleanup_done(slot, false, e.attempts, e.not_before);
			CHECK_FOR_INTERRUPTS();
		}
		error = el_cleanup_delete(&e);
		if (error == NULL)
		{
			el_cleanup_done(slot, true, e.attempts, e.not_before);
			ereport(LOG,
					(errmsg("deleted S3 object \"%s\" in bucket \"%s\" %s", e.key, e.bucket, why)));
			deleted++;
			continue;
		}

		attempts = e.attempts + 1;
		if (attempts >= EL_CLEANUP_MAX_ATTEMPTS)
		{
			el_cleanup_done(slot, true, attempts, e.not_before);
			ereport(WARNING,
					(errmsg("gave up deleting S3 object \"%s\" in bucket \"%s\" %s", e.key, e.bucket, why),
					 errdetail("Attempt %d failed: %s", attempts, error),
					 errhint("document_repo.reconcile_storage() removes it once it is older than its grace period.")));
			break;
		}
		/* 2, 4, 8, ... seconds */
		el_cleanup_done(slot, false, attempts,
						TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 1000L << Min(attempts, 8)));
		ereport(LOG,
				(errmsg("could not delete S3 object \"%s\" in bucket \"%s\" %s; will retry", e.key, e.bucket, why),
				 errdetail("Attempt %d failed: %s", attempts, error)));
		break;
	}
	return deleted;
}

/*
 * document_repo.delete_abandoned_objects(max_objects integer) RETURNS integer
 *
 * Run one cleanup pass now (what the first worker does after each wake-up).
 */
PG_FUNCTION_INFO_V1(el_delete_abandoned_objects);
Datum
el_delete_abandoned_objects(PG_FUNCTION_ARGS)
{
	int32		max_objects = PG_GETARG_INT32(0);

	if (max_objects < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_objects must be at least 1"),
				 errdetail("The value given was %d.", max_objects)));
	PG_RETURN_INT32(el_object_cleanup_run(max_objects));
}

/*
 * document_repo.abandoned_objects() RETURNS TABLE (...)
 *
 * The objects waiting to be deleted, for operators and tests.
 */
PG_FUNCTION_INFO_V1(el_abandoned_objects);
Datum
el_abandoned_objects(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ElCleanupEntry *copy;
	int			n = 0;

	InitMaterializedSRF(fcinfo, 0);
	if (el_cleanup == NULL)
		return (Datum) 0;

	copy = palloc(sizeof(ElCleanupEntry) * EL_CLEANUP_QUEUE_SIZE);
	LWLockAcquire(el_cleanup->lock, LW_SHARED);
	for (int i = 0; i < EL_CLEANUP_QUEUE_SIZE; i++)
		if (el_cleanup->entries[i].in_use)
			copy[n++] = el_cleanup->entries[i];
	LWLockRelease(el_cleanup->lock);

	for (int i = 0; i < n; i++)
	{
		Datum		values[5];
		bool		nulls[5] = {0};

		values[0] = CStringGetTextDatum(copy[i].bucket);
		values[1] = CStringGetTextDatum(copy[i].key);
		values[2] = CStringGetTextDatum(copy[i].after_delete ? "deleted_document" : "aborted_upload");
		values[3] = Int32GetDatum(copy[i].attempts);
		if (copy[i].not_before == 0)
			nulls[4] = true;
		else
			values[4] = TimestampTzGetDatum(copy[i].not_before);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/* Is there anything queued for the worker? */
bool
el_object_cleanup_pending(void)
{
	bool		pending;

	if (el_cleanup == NULL)
		return false;
	LWLockAcquire(el_cleanup->lock, LW_SHARED);
	pending = el_cleanup->used > 0;
	LWLockRelease(el_cleanup->lock);
	return pending;
}

/*
 * Milliseconds until the next queued deletion is due (0: now), or -1 when
 * nothing waits, so the worker's nap does not delay a retry.
 */
long
el_object_cleanup_next_due_ms(void)
{
	TimestampTz next = 0;
	bool		any = false;

	if (el_cleanup == NULL)
		return -1;
	LWLockAcquire(el_cleanup->lock, LW_SHARED);
	for (int i = 0; i < EL_CLEANUP_QUEUE_SIZE && el_cleanup->used > 0; i++)
	{
		ElCleanupEntry *e = &el_cleanup->entries[i];

		if (!e->in_use || e->in_flight)
			continue;
		if (!any || e->not_before < next)
			next = e->not_before;
		any = true;
	}
	LWLockRelease(el_cleanup->lock);
	if (!any)
		return -1;
	return TimestampDifferenceMilliseconds(GetCurrentTimestamp(), next);
}
