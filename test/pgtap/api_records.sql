-- The records across submissions (api.events, api.sync_logs, api.lineage
-- without a submission_id): pages newest first that, followed by their
-- "next", give every row exactly once; the bad positions they refuse; and
-- what the intake form is offered (document types, current agreements)
-- next to what the server refuses.
BEGIN;
CREATE EXTENSION IF NOT EXISTS enterprise_lab;
SELECT plan(38);

-- Five submissions, processed: events, sync logs and lineage edges, the
-- edges all with the same created_at (one transaction), so the pages must
-- tell them apart by the rest of their key.
SELECT intake.submit_request('Page Tester', 'page@example.test', 'records ' || i, 'incident', 'low', 'operations',
                             '10000000-0000-4000-8000-000000000002') FROM generate_series(1, 5) AS i;
SELECT integration.process_events() AS processed \gset

CREATE FUNCTION pg_temp.walk(fn text, page_size integer) RETURNS TABLE (page integer, item jsonb)
LANGUAGE plpgsql AS $$
DECLARE
  body jsonb := jsonb_build_object('limit', page_size);
  answer jsonb;
  n integer := 0;
BEGIN
  LOOP
    EXECUTE format('SELECT api.%I($1)', fn) INTO answer USING body;
    n := n + 1;
    RETURN QUERY SELECT n, i FROM jsonb_array_elements(answer -> 'items') i;
    EXIT WHEN answer -> 'next' = 'null'::jsonb OR n > 1000;
    body := body || (answer -> 'next');
  END LOOP;
END $$;

-- What the pages must add up to, read before becoming the anonymous role.
SELECT (SELECT array_agg(seq ORDER BY seq DESC) FROM integration.events) AS want_events,
       (SELECT ceil(count(*) / 4.0)::integer FROM integration.events) AS event_pages,
       (SELECT array_agg(id ORDER BY id DESC) FROM integration.sync_logs) AS want_logs,
       (SELECT array_agg(array[from_id::text, to_id::text, relationship]
                         ORDER BY created_at DESC, from_id DESC, to_id DESC, relationship DESC)
          FROM canonical.lineage_records) AS want_edges,
       (SELECT submission_id FROM intake.submissions LIMIT 1) AS some_submission,
       (SELECT count(*) FROM reference.document_types WHERE active) AS active_types \gset

SET LOCAL ROLE lab_anon;
SELECT set_config('request.jwt.claims', '{"role": "lab_anon"}', true) AS claims \gset

-- Events.
SELECT is(jsonb_array_length(api.events('{"limit": 3}') -> 'items'), 3, 'events: a first page of the size asked for');
SELECT is(api.events('{"limit": 3}') #>> '{next,before_seq}',
          api.events('{"limit": 3}') #>> '{items,2,seq}', 'events: next starts below the last row shown');
SELECT is(api.events('{"limit": 1000}') -> 'next', 'null'::jsonb, 'events: the last page has no next');
SELECT is((SELECT array_agg((item ->> 'seq')::bigint) FROM pg_temp.walk('events', 3)), :'want_events'::bigint[],
          'events: following next gives every event once, newest first');
SELECT ok((SELECT bool_and(item ? 'event_type' AND item ? 'source_system' AND item ? 'created_at' AND item ? 'request_number')
             FROM pg_temp.walk('events', 4)), 'events: each row has its type, source system, time and request number');
SELECT is((SELECT count(DISTINCT page) FROM pg_temp.walk('events', 4))::integer, :event_pages, 'events: pages of four');
SELECT is(jsonb_array_length(api.events(jsonb_build_object('submission_id', :'some_submission', 'limit', 1)) -> 'items'), 1,
          'events: one submission''s, paged as well');

-- Sync logs.
SELECT is((SELECT array_agg((item ->> 'id')::bigint) FROM pg_temp.walk('sync_logs', 2)), :'want_logs'::bigint[],
          'sync_logs: following next gives every log once, newest first');
SELECT ok((SELECT bool_and(item ? 'action' AND item ? 'message' AND item ? 'created_at' AND item ? 'request_number')
             FROM pg_temp.walk('sync_logs', 2)), 'sync_logs: each row has its action, message, time and request number');
SELECT is(api.sync_logs('{"limit": 2}') #>> '{next,before_id}', api.sync_logs('{"limit": 2}') #>> '{items,1,id}',
          'sync_logs: next starts below the last row shown');

-- Lineage.
SELECT is((SELECT array_agg(array[item ->> 'from_id', item ->> 'to_id', item ->> 'relationship']) FROM pg_temp.walk('lineage', 3)),
          :'want_edges'::text[], 'lineage: following next gives every edge once, newest first');
SELECT is((SELECT count(DISTINCT page) FROM pg_temp.walk('lineage', 3))::integer,
          ceil(cardinality(:'want_edges'::text[]) / 3 / 3.0)::integer, 'lineage: pages of three');
SELECT ok((SELECT bool_and(item ? 'from_type' AND item ? 'to_type' AND item ? 'relationship' AND item ? 'request_number')
             FROM pg_temp.walk('lineage', 3)), 'lineage: each row has from, to, relationship and request number');
SELECT is(api.lineage('{"limit": 1}') #> '{next,before}',
          (api.lineage('{"limit": 1}') #> '{items,0}') - 'submission_id' - 'request_number' - 'from_type' - 'to_type' - 'event_id',
          'lineage: next.before is the position of the last row shown');

-- Positions that are refused.
SELECT throws_ok($$SELECT api.events('{"before_seq": "12"}')$$, '22023', 'events: before_seq must be a number',
                 'events: a string position is 22023');
SELECT throws_ok($$SELECT api.events('{"before_seq": 0}')$$, '22023', NULL, 'events: position 0 is 22023');
SELECT throws_ok($$SELECT api.events('{"before_seq": 1.5}')$$, '22023', NULL, 'events: a fractional position is 22023');
SELECT throws_ok($$SELECT api.events('{"before_seq": 1e30}')$$, '22023', NULL, 'events: a position past bigint is 22023');
SELECT throws_ok($$SELECT api.events('{"after_seq": 1}')$$, '22023', 'events: unknown key "after_seq"',
                 'events: an unknown key is 22023');
SELECT throws_ok($$SELECT api.sync_logs('{"before_id": -1}')$$, '22023', NULL, 'sync_logs: a negative position is 22023');
SELECT throws_ok($$SELECT api.sync_logs('{"before_id": true}')$$, '22023', 'sync_logs: before_id must be a number',
                 'sync_logs: a boolean position is 22023');
SELECT throws_ok($$SELECT api.lineage('{"before": "x"}')$$, '22023', 'lineage: before must be an object',
                 'lineage: a string position is 22023');
SELECT throws_ok($$SELECT api.lineage('{"before": {"created_at": "2026-01-01", "from_id": "10000000-0000-4000-8000-000000000001",
                                       "to_id": "10000000-0000-4000-8000-000000000001", "relationship": "x", "seq": 1}}')$$,
                 '22023', 'lineage before: unknown key "seq"', 'lineage: an unknown key in the position is 22023');
SELECT throws_ok($$SELECT api.lineage('{"before": {"created_at": "yesterday-ish", "from_id": "10000000-0000-4000-8000-000000000001",
                                       "to_id": "10000000-0000-4000-8000-000000000001", "relationship": "x"}}')$$,
                 '22007', 'lineage: before.created_at is not a timestamp', 'lineage: a position with a bad time is 22007');
SELECT throws_ok($$SELECT api.lineage('{"before": {"created_at": "2026-01-01"}}')$$, '23502', 'lineage: from_id is required',
                 'lineage: an incomplete position is 23502');
SELECT throws_ok($$SELECT api.lineage('{"before": {"created_at": "2026-01-01", "from_id": "nope",
                                       "to_id": "10000000-0000-4000-8000-000000000001", "relationship": "x"}}')$$,
                 '22P02', NULL, 'lineage: a position with a malformed id is 22P02');
SELECT throws_ok(format($$SELECT api.lineage('{"submission_id": "%s", "limit": 5}')$$, :'some_submission'),
                 '22023', 'lineage: one submission''s lineage is not paged', 'lineage: one submission''s edges are not paged');

-- What the form is offered, and what the server refuses anyway.
SELECT is(api.reference_data() #>> '{document_types,types,0,code}', 'supporting_document',
          'reference_data: document types, supporting_document first');
SELECT is((SELECT count(*) FROM jsonb_array_elements(api.reference_data() #> '{document_types,types}'))::integer,
          :active_types, 'reference_data: every active document type');
SELECT is((SELECT c ->> 'status' FROM jsonb_array_elements(api.reference_data() -> 'customers') c WHERE c ->> 'code' = 'OLDCO'),
          'inactive', 'reference_data: an inactive customer is marked so');
SELECT results_eq($$SELECT a ->> 'agreement_number', (a ->> 'current')::boolean
                      FROM jsonb_array_elements(api.reference_data() -> 'customers') c, jsonb_array_elements(c -> 'agreements') a
                     ORDER BY 1$$,
                  $$VALUES ('AGR-AL-001', true), ('AGR-AL-002', false), ('AGR-BH-001', true), ('AGR-NW-001', true), ('AGR-NW-002', false)$$,
                  'reference_data: only active agreements valid today are current');
SELECT throws_ok($$SELECT api.submit_request('{"requester_name": "A", "requester_email": "a@example.test", "description": "x",
                   "request_type": "incident", "priority": "low", "team": "operations",
                   "customer_id": "10000000-0000-4000-8000-000000000004"}')$$,
                 '22023', 'customer OLDCO (10000000-0000-4000-8000-000000000004) is not active',
                 'submit_request: an inactive customer is refused');
SELECT throws_ok($$SELECT api.submit_request('{"requester_name": "A", "requester_email": "a@example.test", "description": "x",
                   "request_type": "incident", "priority": "low", "team": "operations",
                   "customer_id": "10000000-0000-4000-8000-000000000001", "agreement_id": "20000000-0000-4000-8000-000000000002"}')$$,
                 '22023', 'agreement AGR-NW-002 is not valid today', 'submit_request: an expired agreement is refused');
SELECT throws_ok($$SELECT api.submit_request('{"requester_name": "A", "requester_email": "a@example.test", "description": "x",
                   "request_type": "incident", "priority": "low", "team": "operations",
                   "customer_id": "10000000-0000-4000-8000-000000000003", "agreement_id": "20000000-0000-4000-8000-000000000005"}')$$,
                 '22023', 'agreement AGR-AL-002 is not active', 'submit_request: a suspended agreement is refused');
SELECT throws_ok($$SELECT api.submit_request('{"requester_name": "A", "requester_email": "a@example.test", "description": "x",
                   "request_type": "incident", "priority": "low", "team": "operations",
                   "customer_id": "10000000-0000-4000-8000-000000000002",
                   "document": {"file_name": "a.txt", "content_type": "text/plain", "content_base64": "aGk=", "document_type": "passport"}}')$$,
                 '22023', 'submit_request: document_type "passport" is not known', 'submit_request: an unknown document type is refused');
SELECT throws_ok($$SELECT api.submit_request('{"requester_name": "A", "requester_email": "a@example.test", "description": "x",
                   "request_type": "incident", "priority": "low", "team": "operations",
                   "customer_id": "10000000-0000-4000-8000-000000000002",
                   "document": {"file_name": "a.txt", "content_type": "text/plain", "content_base64": "aGk=", "document_type": 7}}')$$,
                 '22023', 'submit_request: document_type must be a string', 'submit_request: a document type that is no string is refused');
RESET ROLE;
UPDATE reference.document_types SET active = false WHERE code = 'invoice';
SET LOCAL ROLE lab_anon;
SELECT throws_ok($$SELECT api.submit_request('{"requester_name": "A", "requester_email": "a@example.test", "description": "x",
                   "request_type": "incident", "priority": "low", "team": "operations",
                   "customer_id": "10000000-0000-4000-8000-000000000002",
                   "document": {"file_name": "a.txt", "content_type": "text/plain", "content_base64": "aGk=", "document_type": "invoice"}}')$$,
                 '22023', 'submit_request: document_type "invoice" is not known', 'submit_request: an inactive document type is refused');
SELECT ok(NOT (api.reference_data() #> '{document_types,types}') @> '[{"code": "invoice"}]',
          'reference_data: an inactive document type is not offered');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
