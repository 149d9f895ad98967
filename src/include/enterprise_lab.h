/*
 * enterprise_lab.h
 *		Declarations shared by the C files of enterprise_lab.
 */
#ifndef ENTERPRISE_LAB_H
#define ENTERPRISE_LAB_H

#include "postgres.h"

#include "pg_compat.h"

#include "executor/spi.h"
#include "port/atomics.h"
#include "storage/latch.h"
#include "storage/spin.h"

/* Upper bound for enterprise_lab.worker_count (slots in shared memory). */
#define EL_MAX_WORKERS 32
/* Upper bound for enterprise_lab.http_workers (gateway processes). */
#define EL_MAX_HTTP_WORKERS 16

/*
 * Writing subtransactions one batch may open.  Above this a transaction
 * overflows its PGPROC subxid cache (PGPROC_MAX_CACHED_SUBXIDS), which slows
 * every snapshot in every session; see docs/architecture.md.
 */
#define EL_MAX_SUBXACTS_PER_BATCH 64

/*
 * The events of a chunk ($1, their ids) for the handlers' and the outbox's
 * statements, each found by its key.  Written "id = ANY ($1)", the
 * lookup is estimated from the table's statistics, and a new installation
 * has none until autovacuum first analyzes it: the planner then takes the
 * chunk for a tenth of the table and joins it by hashing whole tables, a
 * plan that slows with every row until the first ANALYZE, a minute or more
 * into the load.  One index probe per id needs no statistics.
 */
#define EL_CHUNK_EVENTS \
"(SELECT x.* FROM pg_catalog.unnest($1) AS chunk (id)" \
"   CROSS JOIN LATERAL (SELECT * FROM integration.events y WHERE y.id = chunk.id LIMIT 1) x)"

/* GUCs (enterprise_lab.c) */
extern char *el_database;
extern int	el_worker_count;
extern int	el_batch_size;
extern int	el_chunk_size;
extern int	el_naptime_ms;
extern int	el_max_attempts;
extern int	el_backoff_base_ms;
extern int	el_backoff_max_ms;
extern int	el_event_retention_s;

/* documents.c: S3 and document GUCs (enterprise_lab.s3_*, max_document_size) */
extern void el_define_document_gucs(void);

/* secrets.c: secrets read from the file a setting names ("@/path") */
extern const char *el_secret_get(const char *setting, const char *value, int elevel);
extern const char *el_secret_show(const char *value);

/* What one call of the processing core did. */
typedef struct ElBatchResult
{
	int			claimed;		/* events locked by the claim */
	int			completed;		/* events whose handlers succeeded */
	int			failed;			/* events recorded as failed (will retry) */
	int			dead_lettered;	/* events moved to dead_letter */
	int			released;		/* left untouched: subtransaction budget spent */
	int			subxacts;		/* subtransactions opened */
} ElBatchResult;

/* process.c: the shared core, used by SQL callers and by the workers */
extern void el_process_batch(int max_events, ElBatchResult *result);

/*
 * status_counts.c: a worker's batch holds the count triggers' deltas back
 * and writes them once, at its end
 */
extern void el_hold_counts(void);
extern void el_write_held_counts(void);

/* throughput.c: completions per second in shared memory */
extern void el_throughput_init(void);
extern void el_throughput_note_completed(int n);

/*
 * handlers.c: built-in handlers, applied set-based to a chunk of events;
 * "again" for a chunk whose first application met rows it had written
 * before (unique_violation): it keeps the existing ones
 */
extern bool el_is_builtin_event_type(const char *event_type);
extern void el_apply_chunk(Datum *event_ids, char **event_types, int n, bool again);

/*
 * shard_groups.c: the tables the core's statements run on; on a Citus node
 * the local shard groups, on a single node the base tables.
 */
typedef struct ElShardGroup ElShardGroup;
extern int	el_local_shard_groups(ElShardGroup ***groups);
extern void el_forget_shard_groups(void);
extern void el_use_shard_group(ElShardGroup *group);
extern SPIPlanPtr el_group_plan(const char *sql, int nargs, Oid *argtypes, int cursor_options);
extern void el_forget_plans(void);
extern bool el_table_is_distributed(const char *name);

/*
 * Upper bounds, in seconds, of the buckets of the batch-duration histogram
 * (worker.c); a last bucket counts the batches slower than all of them.
 */
#define EL_BATCH_BUCKETS 13
extern const double el_batch_bucket_bounds[EL_BATCH_BUCKETS];

/* Per-worker state in shared memory (enterprise_lab.c) */
typedef enum ElWorkerState
{
	EL_WORKER_STOPPED = 0,
	EL_WORKER_STARTING,
	EL_WORKER_IDLE,
	EL_WORKER_PROCESSING,
	EL_WORKER_WAITING_FOR_EXTENSION
} ElWorkerState;

typedef struct ElWorkerSlot
{
	slock_t		mutex;
	pid_t		pid;
	Latch	   *latch;
	ElWorkerState state;
	uint64		processed;
	uint64		failed;
	uint64		dead_lettered;
	uint64		batches;
	TimestampTz started_at;
	TimestampTz last_batch_at;
	int			last_batch_events;
	double		last_batch_ms;
	/* batches that claimed events, by duration (not cumulative) */
	uint64		batch_histogram[EL_BATCH_BUCKETS + 1];
	double		batch_seconds_sum;
} ElWorkerSlot;

/* A running gateway process; its mutex guards pid and latch. */
typedef struct ElGatewaySlot
{
	slock_t		mutex;
	pid_t		pid;
	Latch	   *latch;
} ElGatewaySlot;

/*
 * launcher_pid is written only by the launcher (an aligned pid_t store) and
 * read without a lock: workers and gateways compare it with the launcher
 * that started them and exit when another launcher has taken over.  Each
 * slot's mutex guards that slot.  http_body_bytes counts the request bodies
 * every gateway process holds in memory, for enterprise_lab.http_max_buffered.
 * http_responses counts the gateway's responses by status (100 to 599), for
 * GET /metrics.
 */
#define EL_HTTP_STATUS_MIN 100
#define EL_HTTP_STATUSES 500

typedef struct ElShared
{
	pid_t		launcher_pid;
	ElWorkerSlot workers[EL_MAX_WORKERS];
	ElGatewaySlot gateways[EL_MAX_HTTP_WORKERS];
	pg_atomic_uint64 http_body_bytes;
	pg_atomic_uint64 http_responses[EL_HTTP_STATUSES];
} ElShared;

extern ElShared *el_shared;

/* object_cleanup.c: S3 objects to delete outside the transaction that left them */
#define EL_CLEANUP_PER_PASS 32	/* deletions one worker pass attempts at most */
extern void el_object_cleanup_shmem_request(void);
extern void el_object_cleanup_shmem_init(void);
extern bool el_object_cleanup_enqueue(const char *endpoint, const char *bucket,
									  const char *key, bool after_delete);
extern bool el_object_cleanup_pending(void);
extern long el_object_cleanup_next_due_ms(void);
extern int	el_object_cleanup_run(int max_objects);

/* enterprise_lab.c: wake the worker that deletes abandoned objects */
extern void el_wake_cleanup_worker(void);

/* launcher.c: starts and supervises the workers and the gateway */
extern PGDLLEXPORT void el_launcher_main(Datum arg);
extern void el_register_launcher(void);

/* worker.c: an event worker */
extern PGDLLEXPORT void el_worker_main(Datum arg);

/* gateway.c: the built-in HTTP gateway, started by the launcher */
extern void el_gateway_define_gucs(void);
extern PGDLLEXPORT void el_gateway_main(Datum arg);

#endif							/* ENTERPRISE_LAB_H */
