-- enterprise_lab (nodes): what each node keeps for itself -- the counts of
-- its rows (dashboard.status_count_slots) and its workers (shared memory)
-- -- read from every node.  On a single node that is this node.  After
-- enterprise_lab.distribute() the lifecycle rows, their triggers and the
-- workers that process them live on the Citus worker nodes, each counting
-- its own rows, so the coordinator asks every node once (one round trip per
-- node, whatever the number of rows) and sums.

-- What tells a Citus coordinator from any other node.  The node_* functions
-- below read this node's own rows directly where it is false (a single
-- node costs what it did before), and every node's through
-- enterprise_lab.on_every_node() where it is true.
CREATE FUNCTION enterprise_lab.is_distributed() RETURNS boolean
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  distributed boolean := false;
BEGIN
  IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
    -- Citus's catalog exists only where Citus is installed: dynamic SQL.
    EXECUTE 'SELECT pg_catalog.citus_is_coordinator()
                AND EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition
                             WHERE logicalrelid = ''intake.submissions''::regclass)'
       INTO distributed;
  END IF;
  RETURN distributed;
END $$;
COMMENT ON FUNCTION enterprise_lab.is_distributed() IS
  'True on a Citus coordinator whose lifecycle tables are distributed (enterprise_lab.distribute() has run); false on a single node and on a Citus worker node.';

CREATE FUNCTION enterprise_lab.on_every_node(query text)
RETURNS TABLE (node text, rows jsonb, error text)
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  -- A node that does not answer is a row with its error, not a failure:
  -- the status of the others is what an operator needs then.  Citus's
  -- catalog exists only where Citus is installed: dynamic SQL.
  RETURN QUERY EXECUTE
    'SELECT coalesce(n.nodename || '':'' || n.nodeport, ''coordinator''),
            CASE WHEN r.success THEN r.result::jsonb END,
            CASE WHEN NOT r.success THEN r.result END
       FROM pg_catalog.run_command_on_all_nodes($1) r
       -- nodeid 0: a coordinator that is not in the metadata.
       LEFT JOIN pg_catalog.pg_dist_node n ON n.nodeid = r.nodeid
      ORDER BY n.groupid NULLS FIRST, n.nodeid'
    USING format('SELECT coalesce(jsonb_agg(to_jsonb(x)), ''[]'') FROM (%s) x', query);
END $$;
REVOKE ALL ON FUNCTION enterprise_lab.on_every_node(text) FROM PUBLIC;
COMMENT ON FUNCTION enterprise_lab.on_every_node(text) IS
  'On a Citus coordinator: run a query on every node (run_command_on_all_nodes, one connection per node) and return its rows as a jsonb array per node (host:port), or the node''s error.';

CREATE FUNCTION enterprise_lab.node_status_counts()
RETURNS TABLE (node text, layer text, status text, count bigint)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF NOT enterprise_lab.is_distributed() THEN
    RETURN QUERY
      SELECT 'local'::text, c.layer, c.status, sum(c.count)::bigint FROM dashboard.status_count_slots c
       GROUP BY c.layer, c.status HAVING sum(c.count) <> 0;
    RETURN;
  END IF;
  RETURN QUERY
    SELECT n.node, c.layer, c.status, c.count
      FROM enterprise_lab.on_every_node(
             'SELECT layer, status, sum(count)::bigint AS count FROM dashboard.status_count_slots
               GROUP BY layer, status HAVING sum(count) <> 0') n
     CROSS JOIN LATERAL jsonb_to_recordset(n.rows) AS c (layer text, status text, count bigint);
END $$;
COMMENT ON FUNCTION enterprise_lab.node_status_counts() IS
  'The maintained counts (dashboard.status_count_slots) of every node, per node (host:port on a Citus coordinator, else local): rows per status in each layer of the rows that node holds.';

CREATE FUNCTION enterprise_lab.node_worker_status()
RETURNS TABLE (node text, worker integer, pid integer, state text, events_processed bigint,
               events_failed bigint, events_dead_lettered bigint, batches bigint,
               started_at timestamptz, last_batch_at timestamptz, last_batch_events integer,
               last_batch_ms double precision, error text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF NOT enterprise_lab.is_distributed() THEN
    RETURN QUERY SELECT 'local'::text, w.*, NULL::text FROM integration.worker_status w;
    RETURN;
  END IF;
  RETURN QUERY
    SELECT n.node, w.worker, w.pid, w.state, w.events_processed, w.events_failed, w.events_dead_lettered,
           w.batches, w.started_at, w.last_batch_at, w.last_batch_events, w.last_batch_ms, n.error
      FROM enterprise_lab.on_every_node('SELECT * FROM integration.worker_status') n
      LEFT JOIN LATERAL jsonb_to_recordset(n.rows) AS w (
             worker integer, pid integer, state text, events_processed bigint, events_failed bigint,
             events_dead_lettered bigint, batches bigint, started_at timestamptz, last_batch_at timestamptz,
             last_batch_events integer, last_batch_ms double precision) ON true
     WHERE w.worker IS NOT NULL OR n.error IS NOT NULL;
END $$;
COMMENT ON FUNCTION enterprise_lab.node_worker_status() IS
  'integration.worker_status of every node, per node (a node that did not answer: one row with its error).';

CREATE FUNCTION enterprise_lab.node_completed_last_minute() RETURNS TABLE (node text, completed bigint)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF NOT enterprise_lab.is_distributed() THEN
    RETURN QUERY SELECT 'local'::text, integration.completed_last_minute();
    RETURN;
  END IF;
  RETURN QUERY
    SELECT n.node, (n.rows -> 0 ->> 'n')::bigint
      FROM enterprise_lab.on_every_node('SELECT integration.completed_last_minute() AS n') n;
END $$;
COMMENT ON FUNCTION enterprise_lab.node_completed_last_minute() IS
  'integration.completed_last_minute() of every node, per node.';
