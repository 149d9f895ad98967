-- Completing an event or a delivery moves it out of the partial indexes the
-- claims use, but its entry stays there, dead, until a vacuum.  With 20,000
-- such entries and statistics that see those indexes nearly empty (what
-- ANALYZE sees between two vacuums under load), the worker's claim, the
-- delivery claim and the dashboard's submission list still probe the
-- indexes by submission: they read a handful of their blocks, not the
-- whole index for every row.  Nor, before the first statistics, does the
-- claim check the order of every due event to take a few.
BEGIN;
CREATE EXTENSION IF NOT EXISTS enterprise_lab;
SELECT plan(6);

-- Blocks of the given indexes that q reads (this transaction's counters).
CREATE FUNCTION pg_temp.index_blocks(q text, indexes regclass[]) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  before bigint;
  after bigint;
BEGIN
  SELECT sum(pg_stat_get_xact_blocks_fetched(i)) INTO before FROM unnest(indexes) i;
  EXECUTE q;
  SELECT sum(pg_stat_get_xact_blocks_fetched(i)) INTO after FROM unnest(indexes) i;
  RETURN after - before;
END $$;

-- Before any statistics (a new installation, before autovacuum's first
-- ANALYZE), a claim takes its batch off the front of events_due_idx: it
-- checks the order of the events it takes, not of every due event.
SELECT count(intake.submit_request('Backlog', 'backlog@example.test', 'waiting', 'incident', 'low',
                                   'operations', '10000000-0000-4000-8000-000000000002'))
  FROM generate_series(1, 2000);
SELECT cmp_ok(pg_temp.index_blocks('SELECT integration.process_events(10)',
                                   ARRAY['integration.events_unfinished_idx']::regclass[]),
              '<', 200::bigint,
              'with no statistics, a claim of 10 of 2,000 due events checks the order of about 10');

INSERT INTO integration.events (submission_id, event_type, source_system, aggregate_type, aggregate_id)
SELECT gen_random_uuid(), 'Bulk', 'custom', 'service_request', gen_random_uuid()
  FROM generate_series(1, 20000);
UPDATE integration.events SET event_status = 'completed', processed_at = now() WHERE event_type = 'Bulk';

SELECT integration.create_subscription('dead-entries', 'https://203.0.113.20/hooks') IS NOT NULL AS subscribed \gset
INSERT INTO integration.deliveries (subscription_id, event_id, event_seq, submission_id, event_type, payload)
SELECT s.id, e.id, e.seq, e.submission_id, e.event_type, '{}'
  FROM integration.events e, integration.subscriptions s
 WHERE e.event_type = 'Bulk' AND s.name = 'dead-entries';
UPDATE integration.deliveries SET status = 'delivered', delivered_at = now() WHERE event_type = 'Bulk';
ANALYZE integration.events;
ANALYZE integration.deliveries;
SELECT cmp_ok(pg_relation_size('integration.events_unfinished_idx') / 8192, '>=', 50::bigint,
              'events_unfinished_idx holds 20,000 dead entries');

-- Fifty submissions whose first event waits; the list shows them.
SELECT count(intake.submit_request('Dead entries', 'dead@example.test', 'waiting', 'incident', 'low',
                                   'operations', '10000000-0000-4000-8000-000000000002'))
  FROM generate_series(1, 50);

SELECT cmp_ok(pg_temp.index_blocks($$SELECT api.submissions('{}')$$,
                                   ARRAY['integration.events_due_idx', 'integration.events_unfinished_idx']::regclass[]),
              '<', 50::bigint,
              'the first page of submissions reads the partial indexes of events for none of its 50 rows');
SELECT results_eq($$SELECT (i ->> 'unfinished_events')::bigint FROM jsonb_array_elements(api.submissions('{}') -> 'items') i$$,
                  $$SELECT (SELECT count(*) FROM integration.events e
                             WHERE e.submission_id = (i ->> 'submission_id')::uuid AND e.event_status IN ('pending', 'failed'))
                      FROM jsonb_array_elements(api.submissions('{}') -> 'items') i$$,
                  'and still counts the unfinished events of each');

SELECT cmp_ok(pg_temp.index_blocks('SELECT integration.process_events(50)',
                                   ARRAY['integration.events_unfinished_idx']::regclass[]),
              '<', 500::bigint,
              'the claim of 50 events probes events_unfinished_idx by submission (a few blocks each)');

-- Fifty deliveries waiting, one per submission just processed.
SELECT cmp_ok(pg_temp.index_blocks('SELECT count(*) FROM integration.claim_deliveries(50, ''1 minute'')',
                                   ARRAY['integration.deliveries_unfinished_idx', 'integration.deliveries_leased_idx']::regclass[]),
              '<', 1000::bigint,
              'the delivery claim probes deliveries_unfinished_idx by subscription and submission');

SELECT * FROM finish();
ROLLBACK;
