/*
 * pg_compat.h
 *		Every difference between the PostgreSQL majors enterprise_lab builds
 *		on (15, 17, 18), in one place, so the rest of the code reads as one
 *		version.  Nothing older than 15 is supported.
 */
#ifndef EL_PG_COMPAT_H
#define EL_PG_COMPAT_H

#include "postgres.h"

#if PG_VERSION_NUM < 150000
#error "enterprise_lab needs PostgreSQL 15 or later"
#endif

#include "datatype/timestamp.h"
#include "storage/latch.h"
#if PG_VERSION_NUM >= 180000
#include "storage/waiteventset.h"
#endif
#include "utils/memutils.h"

/* The varlena macros (VARDATA_ANY, ...) left postgres.h for varatt.h in 16. */
#if PG_VERSION_NUM >= 160000
#include "varatt.h"
#endif

/*
 * A wait event set that lives as long as the process.  From 17 on the first
 * argument is a resource owner (NULL: the caller owns the set, allocated in
 * TopMemoryContext); before, it was the memory context to allocate in.
 */
#if PG_VERSION_NUM >= 170000
#define el_create_process_wait_event_set(nevents) CreateWaitEventSet(NULL, (nevents))
#else
#define el_create_process_wait_event_set(nevents) CreateWaitEventSet(TopMemoryContext, (nevents))
#endif

/*
 * This backend's slot among the running processes, unique while it runs:
 * MyProcNumber from 17 on, MyBackendId before.
 */
#if PG_VERSION_NUM >= 170000
#include "storage/procnumber.h"
#define el_my_proc_number() ((int) MyProcNumber)
#else
#include "storage/backendid.h"
#define el_my_proc_number() ((int) MyBackendId)
#endif

/*
 * EXECUTE privilege on a function.  PostgreSQL 16 replaced the per-catalog
 * pg_*_aclcheck() functions by object_aclcheck().
 */
#include "catalog/pg_proc.h"
#include "utils/acl.h"
#if PG_VERSION_NUM >= 160000
#define el_proc_aclcheck(proc, role, mode) object_aclcheck(ProcedureRelationId, (proc), (role), (mode))
#else
#define el_proc_aclcheck(proc, role, mode) pg_proc_aclcheck((proc), (role), (mode))
#endif

/*
 * The "extra" of a GUC check hook: plain malloc before 16, guc_malloc (in
 * the GUC memory context) from 16 on.
 */
#if PG_VERSION_NUM >= 160000
#define el_guc_malloc(size) guc_malloc(LOG, (size))
#define el_guc_free(p) guc_free(p)
#else
#define el_guc_malloc(size) malloc(size)
#define el_guc_free(p) free(p)
#endif

/*
 * Base64 of bytes (common/base64.h): the source is const uint8 * from 18
 * on, const char * before.
 */
#include "common/base64.h"
#if PG_VERSION_NUM >= 180000
#define el_b64_encode(src, len, dst, dstlen) pg_b64_encode((const uint8 *) (src), (len), (dst), (dstlen))
#else
#define el_b64_encode(src, len, dst, dstlen) pg_b64_encode((src), (len), (dst), (dstlen))
#endif

/*
 * Whether this process is a background worker: the flag IsBackgroundWorker
 * became a backend type in 17.
 */
#include "miscadmin.h"
#if PG_VERSION_NUM >= 170000
#define el_am_background_worker() AmBackgroundWorkerProcess()
#else
#define el_am_background_worker() IsBackgroundWorker
#endif

#endif							/* EL_PG_COMPAT_H */
