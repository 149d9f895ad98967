-- enterprise_lab (demo): generic demo data for the dashboard and the tour.

CREATE FUNCTION enterprise_lab.load_demo_data() RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  r record;
  n integer := 0;
  case_id uuid;
BEGIN
  FOR r IN SELECT * FROM (VALUES
    ('Dana Example', 'dana@northwind.example.test', 'Grant VPN access to the new contractor starting Monday.', 'access_request', 'high', 'security', '10000000-0000-4000-8000-000000000001'::uuid, '20000000-0000-4000-8000-000000000001'::uuid, 'portal', 'in_progress'),
    ('Lee Sample', 'lee@blueharbor.example.test', 'Shipment tracking page returns an error for every order.', 'incident', 'critical', 'operations', '10000000-0000-4000-8000-000000000002', '20000000-0000-4000-8000-000000000003', 'email', 'completed'),
    ('Robin Test', 'robin@acmelabs.example.test', 'Increase the nightly export window to two hours.', 'service_change', 'medium', 'operations', '10000000-0000-4000-8000-000000000003', '20000000-0000-4000-8000-000000000004', 'portal', 'rejected'),
    ('Sam Placeholder', 'sam@northwind.example.test', 'Monthly invoice summary for the managed services agreement.', 'information_request', 'low', 'finance_ops', '10000000-0000-4000-8000-000000000001', '20000000-0000-4000-8000-000000000001', 'api', 'open'),
    ('Alex Demo', 'alex@blueharbor.example.test', 'Review the attached data processing addendum.', 'document_review', 'medium', 'service_desk', '10000000-0000-4000-8000-000000000002', NULL, 'portal', 'open')
  ) AS v(name, email, description, rtype, prio, team, customer, agreement, method, target)
  LOOP
    PERFORM intake.submit_request(r.name, r.email, r.description, r.rtype, r.prio, r.team,
                                  r.customer, r.agreement, r.method);
    n := n + 1;
  END LOOP;

  -- Open the cases now, so the demo can show the workflow moving them.
  PERFORM integration.process_events(100);
  FOR r IN SELECT c.id, v.target
             FROM operational.operation_cases c
             JOIN source_system.service_requests s ON s.id = c.service_request_id
             JOIN intake.submissions i ON i.submission_id = s.submission_id
             JOIN (VALUES ('dana@northwind.example.test', 'in_progress'), ('lee@blueharbor.example.test', 'completed'),
                          ('robin@acmelabs.example.test', 'rejected')) AS v(email, target)
               ON v.email = i.requester_email
            WHERE c.processing_status = 'open'
  LOOP
    IF r.target IN ('in_progress', 'completed') THEN
      PERFORM operational.set_case_status(r.id, 'in_progress', 'demo.operator', 'picked up');
    END IF;
    IF r.target = 'completed' THEN
      PERFORM operational.set_case_status(r.id, 'completed', 'demo.operator', 'fixed and verified');
    ELSIF r.target = 'rejected' THEN
      PERFORM operational.set_case_status(r.id, 'rejected', 'demo.operator', 'outside the agreement');
    END IF;
  END LOOP;
  RETURN n;
END $$;
COMMENT ON FUNCTION enterprise_lab.load_demo_data() IS
  'Add a handful of generic demo requests in different lifecycle states; returns how many.';

CREATE FUNCTION enterprise_lab.reset_demo() RETURNS integer
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
           document_repo.documents, integration.deliveries CASCADE;
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
