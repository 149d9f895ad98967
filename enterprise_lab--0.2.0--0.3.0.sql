-- enterprise_lab 0.2.0 -> 0.3.0.
--
-- Every change to src/sql/ after 0.2.0 must be repeated here: the upgrade
-- suite (test/suites/upgrade) compares an upgraded database with a fresh
-- install of the newest version, object by object.

\echo Use "ALTER EXTENSION enterprise_lab UPDATE TO '0.3.0'" to load this file. \quit

-- The gateway connects as the authenticator (never as a superuser), so the
-- authenticator logs in.
DO $$
BEGIN
  IF NOT (SELECT rolcanlogin FROM pg_catalog.pg_roles WHERE rolname = 'lab_authenticator') THEN
    ALTER ROLE lab_authenticator LOGIN;
  END IF;
END $$;

CREATE OR REPLACE FUNCTION api.health(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
BEGIN
  PERFORM enterprise_lab.api_body('health', body, '{}');
  -- Anyone may ask, as often as they like: the counts walk partial indexes
  -- and stop at 10000, so an answer costs the same however many events
  -- there are.
  RETURN jsonb_build_object(
    'status', 'ok',
    'database', true,
    'workers_running', (SELECT count(*) FROM integration.worker_status),
    'pending_events', (SELECT count(*) FROM (SELECT FROM integration.events
                         WHERE status IN ('pending', 'failed') LIMIT 10000) AS e),
    'dead_letters', (SELECT count(*) FROM (SELECT FROM integration.events
                       WHERE status = 'dead_letter' LIMIT 10000) AS e),
    'version', (SELECT extversion FROM pg_extension WHERE extname = 'enterprise_lab'));
END $$;
COMMENT ON FUNCTION api.health(jsonb) IS
  'Liveness: {"status": "ok", "database": true, workers running, pending events and dead letters (each counted up to 10000), extension version}. Body: {}.';
