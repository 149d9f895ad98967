-- Time-ordered keys: enterprise_lab.uuid_v7() makes RFC 9562 version 7
-- UUIDs that start with the time and ascend within a session, and the rows
-- written at the event rate take them by default.
BEGIN;
CREATE EXTENSION IF NOT EXISTS enterprise_lab;
SELECT plan(9);

CREATE TEMP TABLE made AS
SELECT i, enterprise_lab.uuid_v7() AS id, clock_timestamp() AS at
  FROM generate_series(1, 5000) i;

SELECT is((SELECT count(*) FROM made WHERE substr(id::text, 15, 1) <> '7'), 0::bigint,
          'every key is version 7');
SELECT is((SELECT count(*) FROM made WHERE substr(id::text, 20, 1) NOT IN ('8', '9', 'a', 'b')), 0::bigint,
          'every key has the RFC 9562 variant (binary 10)');
SELECT is((SELECT count(DISTINCT id) FROM made), 5000::bigint, 'no key repeats');
SELECT is((SELECT count(*) FROM (SELECT id, lag(id) OVER (ORDER BY i) AS before FROM made) x
            WHERE id <= before), 0::bigint,
          'the keys one session makes ascend in the order it made them');
-- The first 48 bits are the Unix time in milliseconds.
SELECT is((SELECT count(*) FROM made
            WHERE abs(('x' || substr(replace(id::text, '-', ''), 1, 12))::bit(48)::bigint
                      - floor(extract(epoch FROM at) * 1000)::bigint) > 1000), 0::bigint,
          'each key starts with the time it was made, to the millisecond');
SELECT is((SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid) FROM pg_catalog.pg_attrdef d
             JOIN pg_catalog.pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
            WHERE d.adrelid = 'reference.customers'::regclass AND a.attname = 'id'),
          'gen_random_uuid()', 'reference data keeps random keys');
SELECT is((SELECT count(*)
             FROM (VALUES ('intake.submissions', 'submission_id'), ('source_system.service_requests', 'id'),
                          ('integration.events', 'id'), ('operational.operation_cases', 'id'),
                          ('canonical.business_objects', 'id'), ('integration.deliveries', 'id'),
                          ('operational.sla_breaches', 'id')) t(tab, col)
             JOIN pg_catalog.pg_attrdef d ON d.adrelid = t.tab::regclass
             JOIN pg_catalog.pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum AND a.attname = t.col
            WHERE pg_catalog.pg_get_expr(d.adbin, d.adrelid) = 'enterprise_lab.uuid_v7()'), 7::bigint,
          'the ids written at the event rate default to enterprise_lab.uuid_v7()');

-- One submission through the core: every id it made is version 7.
SELECT submission_id AS sub
  FROM intake.submit_request('Vera Seven', 'vera@example.test', 'Time-ordered keys.', 'incident', 'high',
                             'operations', '10000000-0000-4000-8000-000000000002') \gset
SELECT integration.process_events(10) AS processed \gset
SELECT is((SELECT count(*) FROM (
             SELECT submission_id AS id FROM intake.submissions WHERE submission_id = :'sub'
             UNION ALL SELECT id FROM source_system.service_requests WHERE submission_id = :'sub'
             UNION ALL SELECT id FROM integration.events WHERE submission_id = :'sub'
             UNION ALL SELECT id FROM operational.operation_cases WHERE submission_id = :'sub'
             UNION ALL SELECT id FROM canonical.business_objects WHERE submission_id = :'sub') x
            WHERE substr(id::text, 15, 1) = '7'), 5::bigint,
          'a processed submission''s submission, request, event, case and canonical object ids are version 7');
SELECT is((SELECT count(*) FROM canonical.lineage_records l
             JOIN operational.operation_cases c ON c.id IN (l.from_id, l.to_id)
            WHERE l.submission_id = :'sub'), 2::bigint,
          'its lineage edges name the case the handler made with the key it drew');

SELECT * FROM finish();
ROLLBACK;
