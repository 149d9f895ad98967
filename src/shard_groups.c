/*
 * shard_groups.c
 *		Where the processing core's statements run: the base tables on a
 *		single node, the local shard groups on a Citus node.
 *
 * On Citus every lifecycle table is distributed by submission_id and
 * colocated with intake.submissions, so the shards with one shard index
 * (a "shard group") hold whole submissions, and each node holds the
 * placements of some groups; the reference tables have a local copy on
 * every node.  The workers of a node process the events of its own shard
 * groups with the same SQL as on a single node, the table names replaced
 * by the shard names of one group: plain local statements, planned once
 * per group, with no round trip through the coordinator and no
 * distributed transaction.  Citus allows DML on a shard table from a
 * regular session (it guards only DROP, TRUNCATE and LOCK of shards), and
 * the shards carry the triggers of their tables.
 *
 * A multi-shard SELECT ... FOR UPDATE SKIP LOCKED, the claim through the
 * distributed table, is what Citus refuses; statements on the distributed
 * names filtered by submission_id would be routed to the local shard, but
 * every one of them pays Citus's planning and local execution (about four
 * times a handler statement on the shard itself, docs/architecture.md).
 *
 * The groups are read from Citus's metadata (a join of its catalogs, some
 * milliseconds) and kept for EL_GROUPS_KEEP_MS, and read again after a
 * batch that failed: a shard moved away by the rebalancer makes the next
 * batch fail, and the one after it uses where the shard is now.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "enterprise_lab.h"

/* One table of a shard group: its name in the SQL texts, its shard's name. */
typedef struct ElGroupTable
{
	char	   *base;			/* schema.table, as the statements spell it */
	char	   *shard;			/* its local shard, qualified and quoted */
} ElGroupTable;

struct ElShardGroup
{
	int64		id;				/* integration.events' shard id; 0: base tables */
	int			ntables;
	ElGroupTable *tables;
};

/* A kept plan: of one statement text for one group. */
typedef struct ElGroupPlanKey
{
	int64		group;
	const char *sql;			/* the static text's address */
} ElGroupPlanKey;

typedef struct ElGroupPlan
{
	ElGroupPlanKey key;
	SPIPlanPtr	plan;
} ElGroupPlan;

static HTAB *group_plans = NULL;

static ElShardGroup base_group = {0, 0, NULL};
static ElShardGroup *current_group = &base_group;

#define EL_GROUPS_KEEP_MS 10000

/* The local shard groups as last read, in groups_cxt; -1: not read. */
static MemoryContext groups_cxt = NULL;
static ElShardGroup **kept_groups = NULL;
static int	kept_ngroups = -1;
static TimestampTz kept_at = 0;

/*
 * The local shard groups of integration.events, each with the local shard
 * of every table colocated with it and of every reference table.
 */
static const char *const local_groups_sql =
"WITH ev AS ("
"  SELECT p.colocationid FROM pg_catalog.pg_dist_partition p"
"   WHERE p.logicalrelid = pg_catalog.to_regclass('integration.events')),"
" here AS (SELECT groupid FROM pg_catalog.pg_dist_local_group)"
"SELECT e.shardid, n.nspname || '.' || c.relname,"
"       pg_catalog.shard_name(t.logicalrelid, ts.shardid, false)"
"  FROM pg_catalog.pg_dist_shard e"
"  JOIN pg_catalog.pg_dist_placement ep ON ep.shardid = e.shardid"
"  JOIN pg_catalog.pg_dist_partition t"
"    ON t.colocationid = (SELECT colocationid FROM ev)"
"       OR (t.partmethod = 'n' AND t.repmodel = 't')"
"  JOIN pg_catalog.pg_dist_shard ts"
"    ON ts.logicalrelid = t.logicalrelid"
"       AND (t.partmethod = 'n' OR ts.shardminvalue = e.shardminvalue)"
"  JOIN pg_catalog.pg_dist_placement tp ON tp.shardid = ts.shardid"
"  JOIN pg_catalog.pg_class c ON c.oid = t.logicalrelid"
"  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
" WHERE e.logicalrelid = pg_catalog.to_regclass('integration.events')"
"   AND ep.groupid = (SELECT groupid FROM here)"
"   AND tp.groupid = (SELECT groupid FROM here)"
" ORDER BY e.shardid";


/*
 * Whether Citus distributes the table (by any method, reference tables
 * included).  Call inside a transaction, with SPI connected.
 */
bool
el_table_is_distributed(const char *name)
{
	Oid			argtype = TEXTOID;
	Datum		arg = CStringGetTextDatum(name);
	int			rc;

	if (!OidIsValid(get_extension_oid("citus", true)))
		return false;
	rc = SPI_execute_with_args("SELECT 1 FROM pg_catalog.pg_dist_partition"
							   " WHERE logicalrelid = pg_catalog.to_regclass($1)",
							   1, &argtype, &arg, NULL, true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "enterprise_lab: reading Citus's metadata failed: %s",
			 SPI_result_code_string(rc));
	return SPI_processed > 0;
}

/*
 * The shard groups this node processes: the base tables alone without
 * Citus or before the conversion, the local groups after it (none on a
 * coordinator without shards).  Call inside a transaction, with SPI
 * connected.
 */
int
el_local_shard_groups(ElShardGroup ***groups)
{
	static ElShardGroup *base_only[1] = {&base_group};
	MemoryContext old;
	int			rc;
	uint64		nrows;

	if (!el_table_is_distributed("integration.events"))
	{
		*groups = base_only;
		return 1;
	}
	if (kept_ngroups >= 0 &&
		!TimestampDifferenceExceeds(kept_at, GetCurrentTimestamp(), EL_GROUPS_KEEP_MS))
	{
		*groups = kept_groups;
		return kept_ngroups;
	}

	rc = SPI_execute(local_groups_sql, true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "enterprise_lab: reading the local shards failed: %s",
			 SPI_result_code_string(rc));
	nrows = SPI_processed;

	if (groups_cxt == NULL)
		groups_cxt = AllocSetContextCreate(TopMemoryContext, "enterprise_lab shard groups",
										   ALLOCSET_SMALL_SIZES);
	MemoryContextReset(groups_cxt);
	kept_ngroups = -1;
	old = MemoryContextSwitchTo(groups_cxt);
	kept_groups = palloc0(sizeof(ElShardGroup *) * (nrows + 1));
	kept_ngroups = 0;
	for (uint64 i = 0; i < nrows;)
	{
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		int64		id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], desc, 1, &isnull));
		ElShardGroup *g = palloc0(sizeof(ElShardGroup));
		uint64		end = i;

		while (end < nrows &&
			   DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[end], desc, 1, &isnull)) == id)
			end++;
		g->id = id;
		g->tables = palloc(sizeof(ElGroupTable) * (end - i));
		for (; i < end; i++)
		{
			g->tables[g->ntables].base = SPI_getvalue(SPI_tuptable->vals[i], desc, 2);
			g->tables[g->ntables].shard = SPI_getvalue(SPI_tuptable->vals[i], desc, 3);
			g->ntables++;
		}
		kept_groups[kept_ngroups++] = g;
	}
	MemoryContextSwitchTo(old);
	SPI_freetuptable(SPI_tuptable);
	kept_at = GetCurrentTimestamp();
	*groups = kept_groups;
	return kept_ngroups;
}

/* Read the shard groups again at the next batch. */
void
el_forget_shard_groups(void)
{
	kept_ngroups = -1;
}

/* The statements that follow run on this group's tables. */
void
el_use_shard_group(ElShardGroup *group)
{
	current_group = group ? group : &base_group;
}

static bool
el_is_ident_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		(c >= '0' && c <= '9') || c == '_' || c == '.' || c == '"' || c == '$';
}

/*
 * The statement with each table of the group replaced by its shard: whole
 * names only ("integration.events" but not "integration.event_handlers").
 */
static char *
el_sql_for_group(const char *sql, ElShardGroup *group)
{
	StringInfoData buf;
	const char *p = sql;

	if (group->ntables == 0)
		return pstrdup(sql);

	initStringInfo(&buf);
	while (*p)
	{
		bool		replaced = false;

		if (p == sql || !el_is_ident_char(p[-1]))
		{
			for (int i = 0; i < group->ntables; i++)
			{
				size_t		len = strlen(group->tables[i].base);

				if (strncmp(p, group->tables[i].base, len) == 0 && !el_is_ident_char(p[len]))
				{
					appendStringInfoString(&buf, group->tables[i].shard);
					p += len;
					replaced = true;
					break;
				}
			}
		}
		if (!replaced)
			appendStringInfoChar(&buf, *p++);
	}
	return buf.data;
}

/*
 * The kept plan of a statement (a static text) for the current group,
 * prepared on first use.
 */
SPIPlanPtr
el_group_plan(const char *sql, int nargs, Oid *argtypes, int cursor_options)
{
	ElGroupPlanKey key;
	ElGroupPlan *entry;
	bool		found;

	if (group_plans == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(ElGroupPlanKey);
		ctl.entrysize = sizeof(ElGroupPlan);
		group_plans = hash_create("enterprise_lab plans", 64, &ctl, HASH_ELEM | HASH_BLOBS);
	}

	memset(&key, 0, sizeof(key));
	key.group = current_group->id;
	key.sql = sql;
	entry = hash_search(group_plans, &key, HASH_FIND, NULL);
	if (entry == NULL)
	{
		char	   *text = el_sql_for_group(sql, current_group);
		SPIPlanPtr	plan = SPI_prepare_cursor(text, nargs, argtypes, cursor_options);

		if (plan == NULL)
			elog(ERROR, "enterprise_lab: SPI_prepare failed: %s",
				 SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
		pfree(text);
		entry = hash_search(group_plans, &key, HASH_ENTER, &found);
		entry->plan = plan;
	}
	return entry->plan;
}

/*
 * Forget every kept plan, so the next use prepares them again: a plan a
 * worker keeps was chosen for the table sizes of when it was made, and
 * tables that start empty grow fast (see el_process_batch).
 */
void
el_forget_plans(void)
{
	HASH_SEQ_STATUS seq;
	ElGroupPlan *entry;

	if (group_plans == NULL)
		return;
	hash_seq_init(&seq, group_plans);
	while ((entry = hash_seq_search(&seq)) != NULL)
	{
		SPI_freeplan(entry->plan);
		hash_search(group_plans, &entry->key, HASH_REMOVE, NULL);
	}
}
