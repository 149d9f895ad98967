-- Every rejection of the lifecycle core: a specific SQLSTATE, a message that
-- names the field, and nothing left behind.
BEGIN;
CREATE EXTENSION IF NOT EXISTS enterprise_lab;
SELECT plan(31);

CREATE FUNCTION pg_temp.submit(name text = 'Tess Tap', email text = 'tess@example.test',
                               descr text = 'Something to do.', rtype text = 'incident',
                               prio text = 'medium', team text = 'operations',
                               customer uuid = '10000000-0000-4000-8000-000000000002',
                               agreement uuid = NULL)
RETURNS void LANGUAGE sql AS
$$ SELECT FROM intake.submit_request(name, email, descr, rtype, prio, team, customer, agreement) $$;

SELECT throws_ok($$ SELECT pg_temp.submit(customer => '10000000-0000-4000-8000-0000000000ff') $$,
  '22023', 'customer 10000000-0000-4000-8000-0000000000ff does not exist', 'unknown customer');
SELECT throws_ok($$ SELECT pg_temp.submit(customer => '10000000-0000-4000-8000-000000000004') $$,
  '22023', 'customer OLDCO (10000000-0000-4000-8000-000000000004) is not active', 'inactive customer');
SELECT throws_ok($$ SELECT pg_temp.submit(agreement => '20000000-0000-4000-8000-0000000000ff') $$,
  '22023', 'agreement 20000000-0000-4000-8000-0000000000ff does not exist', 'unknown agreement');
SELECT throws_ok($$ SELECT pg_temp.submit(agreement => '20000000-0000-4000-8000-000000000001') $$,
  '22023', 'agreement AGR-NW-001 belongs to another customer', 'agreement of another customer');
SELECT throws_ok($$ SELECT pg_temp.submit(customer => '10000000-0000-4000-8000-000000000003',
                                          agreement => '20000000-0000-4000-8000-000000000005') $$,
  '22023', 'agreement AGR-AL-002 is not active', 'suspended agreement');
SELECT throws_ok($$ SELECT pg_temp.submit(customer => '10000000-0000-4000-8000-000000000001',
                                          agreement => '20000000-0000-4000-8000-000000000002') $$,
  '22023', 'agreement AGR-NW-002 is not valid today', 'expired agreement');
SELECT throws_ok($$ SELECT pg_temp.submit(rtype => 'teleport') $$,
  '22023', 'request_type "teleport" does not exist', 'unknown request type');
SELECT throws_ok($$ SELECT pg_temp.submit(prio => 'urgent!!') $$,
  '22023', 'priority "urgent!!" does not exist', 'unknown priority');
SELECT throws_ok($$ SELECT pg_temp.submit(team => 'nobody') $$,
  '22023', 'assigned_team "nobody" does not exist', 'unknown team');
SELECT throws_ok($$ SELECT pg_temp.submit(email => 'not-an-email') $$,
  '22023', 'requester_email is not a valid e-mail address', 'malformed e-mail');
SELECT throws_ok($$ SELECT pg_temp.submit(email => 'two@@example.test') $$,
  '22023', 'requester_email is not a valid e-mail address', 'e-mail with two @');
SELECT throws_ok($$ SELECT pg_temp.submit(email => NULL) $$,
  '22023', 'requester_email is not a valid e-mail address', 'missing e-mail');
SELECT throws_ok($$ SELECT pg_temp.submit(name => '   ') $$,
  '23502', 'requester_name must not be blank', 'blank requester name');
SELECT throws_ok($$ SELECT pg_temp.submit(name => repeat('x', 201)) $$,
  '22001', 'requester_name is too long', 'requester name over 200 characters');
SELECT throws_ok($$ SELECT pg_temp.submit(descr => E'\t\n ') $$,
  '23502', 'request_description must not be blank', 'blank description');
SELECT throws_ok($$ SELECT pg_temp.submit(descr => repeat('x', 4001)) $$,
  '22001', 'request_description is too long', 'description over 4000 characters');
SELECT throws_ok($$ INSERT INTO intake.submissions (requester_name, requester_email, request_description, request_type,
                      priority, assigned_team, customer_id, intake_method)
                    VALUES ('A', 'a@example.test', 'd', 'incident', 'low', 'operations',
                            '10000000-0000-4000-8000-000000000002', 'pigeon') $$,
  '22023', 'intake_method "pigeon" does not exist', 'unknown intake method');

SELECT is((SELECT count(*) FROM intake.submissions), 0::bigint, 'no submission left behind by any rejection');
SELECT is((SELECT count(*) FROM source_system.service_requests), 0::bigint, 'no service request left behind');
SELECT is((SELECT count(*) FROM integration.events), 0::bigint, 'no event left behind');

-- The workflow.
SELECT pg_temp.submit();
SELECT integration.process_events();
SELECT throws_ok($$ SELECT operational.set_case_status('00000000-0000-4000-8000-000000000000', 'in_progress', 'op', NULL) $$,
  'P0002', 'case 00000000-0000-4000-8000-000000000000 does not exist', 'unknown case id');
SELECT throws_ok(format($$ SELECT operational.set_case_status(%L, 'completed', 'op', NULL) $$,
                        (SELECT id FROM operational.operation_cases)),
  '23514', 'case status cannot change from open to completed', 'transition not in the table');
SELECT throws_ok(format($$ SELECT operational.set_case_status(%L, 'paused', 'op', NULL) $$,
                        (SELECT id FROM operational.operation_cases)),
  '22023', 'case status "paused" does not exist', 'unknown status');
SELECT throws_ok(format($$ SELECT operational.set_case_status(%L, 'in_progress', ' ', NULL) $$,
                        (SELECT id FROM operational.operation_cases)),
  '23502', 'changed_by must not be blank', 'blank changed_by');
SELECT operational.set_case_status(id, 'rejected', 'op', 'no') FROM operational.operation_cases;
SELECT throws_ok(format($$ SELECT operational.set_case_status(%L, 'in_progress', 'op', NULL) $$,
                        (SELECT id FROM operational.operation_cases)),
  '55000', 'case OC-000001 is rejected and can no longer change', 'change to a terminal case');
SELECT throws_ok($$ UPDATE operational.operation_cases SET processing_status = 'open' $$,
  '55000', 'case OC-000001 is rejected and can no longer change', 'direct UPDATE of a terminal case');
SELECT is((SELECT count(*) FROM operational.case_status_history), 2::bigint,
  'rejected changes wrote no history');
SELECT is((SELECT count(*) FROM integration.events WHERE event_type = 'OperationalCaseStatusChanged'), 1::bigint,
  'rejected changes enqueued no event');

-- The processing core.
SELECT throws_ok($$ SELECT integration.process_events(0) $$, '22023', 'max_events must be at least 1',
  'max_events below 1');
SELECT throws_ok($$ SELECT integration.skip_event((SELECT id FROM integration.events LIMIT 1), '') $$,
  '23502', 'a reason is required to skip an event', 'skip without a reason');
SELECT throws_ok($$ SELECT integration.replay_event('00000000-0000-4000-8000-000000000000') $$,
  'P0002', 'event 00000000-0000-4000-8000-000000000000 does not exist', 'replay of an unknown event');

SELECT * FROM finish();
ROLLBACK;
