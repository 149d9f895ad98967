-- enterprise_lab.reset_demo(): every lifecycle table emptied (documents and
-- SLA breaches included), the demo data loaded again; twice in a row, on a
-- database full of lifecycle rows.
CREATE EXTENSION enterprise_lab;
\set SHOW_CONTEXT never
SELECT document_repo.ensure_bucket() IS NOT NULL AS bucket;

-- Rows in every lifecycle table: requests at every stage, a document, an
-- SLA breach, dead letters.
SELECT enterprise_lab.load_demo_data();
SELECT count(*) FROM (
  SELECT intake.submit_request('Full ' || i, 'full' || i || '@example.test', 'Fill the tables',
                               'incident', 'critical', 'operations', '10000000-0000-4000-8000-000000000002')
    FROM generate_series(1, 20) AS i) s;
SELECT integration.process_events(100);
SELECT document_repo.upload_document(submission_id, 'note.txt', 'text/plain', convert_to('hello', 'UTF8')) IS NOT NULL AS uploaded
  FROM intake.submissions WHERE requester_email = 'full1@example.test';
UPDATE operational.operation_cases SET opened_at = opened_at - interval '5 hours';
SELECT operational.escalate_sla_breaches() > 0 AS breached;
SELECT integration.process_events(100);

CREATE TEMP VIEW lifecycle_rows AS
SELECT (SELECT count(*) FROM intake.submissions) AS submissions,
       (SELECT count(*) FROM source_system.service_requests) AS requests,
       (SELECT count(*) FROM integration.events) AS events,
       (SELECT count(*) FROM integration.sync_logs) AS sync_logs,
       (SELECT count(*) FROM operational.operation_cases) AS cases,
       (SELECT count(*) FROM operational.case_status_history) AS history,
       (SELECT count(*) FROM operational.sla_breaches) AS breaches,
       (SELECT count(*) FROM canonical.business_objects) AS objects,
       (SELECT count(*) FROM canonical.lineage_records) AS lineage,
       (SELECT count(*) FROM document_repo.documents) AS documents;
SELECT submissions > 20 AND requests > 20 AND events > 20 AND sync_logs > 20 AND cases > 20 AND history > 0
       AND breaches > 0 AND objects > 20 AND lineage > 40 AND documents = 1 AS every_table_has_rows
  FROM lifecycle_rows;

SELECT object_key AS doc_key FROM document_repo.documents \gset

-- Reset: the demo's five requests and nothing else; the stored object is
-- named, not silently left.
SELECT enterprise_lab.reset_demo();
SELECT * FROM lifecycle_rows;
SELECT min(request_number), max(request_number) FROM source_system.service_requests;

-- Again, right away: the same result.
SELECT enterprise_lab.reset_demo();
SELECT * FROM lifecycle_rows;
SELECT integration.process_events(100);
SELECT case_status, count(*) FROM dashboard.submission_lifecycle GROUP BY 1 ORDER BY 1;

-- The orphaned object goes with reconcile_storage, as the notice says.
SELECT action FROM document_repo.reconcile_storage(grace => '0 seconds') WHERE object_key = :'doc_key';

DROP VIEW lifecycle_rows;
DROP EXTENSION enterprise_lab;
