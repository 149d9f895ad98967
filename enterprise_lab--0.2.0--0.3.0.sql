-- enterprise_lab 0.2.0 -> 0.3.0.
--
-- Every change to src/sql/ after 0.2.0 must be repeated here: the upgrade
-- suite (test/suites/upgrade) compares an upgraded database with a fresh
-- install of the newest version, object by object.

\echo Use "ALTER EXTENSION enterprise_lab UPDATE TO '0.3.0'" to load this file. \quit

-- reset_demo() empties every lifecycle table (documents and SLA breaches
-- too, and through CASCADE any table added later) and names the objects it
-- leaves in the bucket.
CREATE OR REPLACE FUNCTION enterprise_lab.reset_demo() RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  objects bigint;
BEGIN
  -- Demo databases only.  Every lifecycle table hangs off these by a
  -- foreign key, so CASCADE also empties the ones a later version adds.
  SELECT count(*) INTO objects FROM document_repo.documents WHERE status = 'stored';
  TRUNCATE intake.submissions, source_system.service_requests, integration.events,
           integration.sync_logs, operational.operation_cases, operational.case_status_history,
           operational.sla_breaches, canonical.business_objects, canonical.lineage_records,
           document_repo.documents CASCADE;
  PERFORM setval('source_system.request_number_seq', 1, false);
  IF objects > 0 THEN
    -- The bucket is not emptied here: deleting objects cannot be undone if
    -- this transaction rolls back.
    RAISE NOTICE '% stored document object(s) stay in the bucket', objects
      USING HINT = 'SELECT document_repo.reconcile_storage(grace => ''0 seconds'') removes them (and any upload in flight).';
  END IF;
  RETURN enterprise_lab.load_demo_data();
END $$;
COMMENT ON FUNCTION enterprise_lab.reset_demo() IS
  'Demo databases only: delete every lifecycle row (documents and SLA breaches included; their objects stay in the bucket until reconcile_storage removes them) and load the demo data again; returns how many requests it loaded.';
