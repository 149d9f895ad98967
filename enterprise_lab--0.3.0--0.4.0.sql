-- enterprise_lab 0.3.0 -> 0.4.0.
--
-- Every change to src/sql/ after 0.3.0 must be repeated here: the upgrade
-- suite (test/suites/upgrade) compares an upgraded database with a fresh
-- install of the newest version, object by object.

\echo Use "ALTER EXTENSION enterprise_lab UPDATE TO '0.4.0'" to load this file. \quit

-- distribution keys
-- Every primary, unique and foreign key of a lifecycle table includes the
-- root key submission_id (second, so look-ups by the first column keep
-- their index), which Citus requires of a distributed table.  The columns
-- before it are unique on their own (uuids, sequence numbers, keys that
-- contain the submission), so no key means anything else.
ALTER TABLE document_repo.documents DROP CONSTRAINT documents_service_request_id_fkey;
ALTER TABLE operational.sla_breaches DROP CONSTRAINT sla_breaches_case_id_fkey;

ALTER TABLE source_system.service_requests
  DROP CONSTRAINT service_requests_pkey,
  DROP CONSTRAINT service_requests_request_number_key,
  ADD CONSTRAINT service_requests_pkey PRIMARY KEY (id, submission_id),
  ADD CONSTRAINT service_requests_request_number_key UNIQUE (request_number, submission_id);
ALTER TABLE integration.events
  DROP CONSTRAINT events_pkey,
  DROP CONSTRAINT events_seq_key,
  ADD CONSTRAINT events_pkey PRIMARY KEY (id, submission_id),
  ADD CONSTRAINT events_seq_key UNIQUE (seq, submission_id);
ALTER TABLE integration.sync_logs
  DROP CONSTRAINT sync_logs_pkey,
  ADD CONSTRAINT sync_logs_pkey PRIMARY KEY (id, submission_id);
ALTER TABLE integration.deliveries
  DROP CONSTRAINT deliveries_pkey,
  DROP CONSTRAINT deliveries_once_per_event,
  ADD CONSTRAINT deliveries_pkey PRIMARY KEY (id, submission_id),
  ADD CONSTRAINT deliveries_once_per_event UNIQUE (subscription_id, event_id, submission_id);
ALTER TABLE operational.operation_cases
  DROP CONSTRAINT operation_cases_pkey,
  DROP CONSTRAINT operation_cases_service_request_id_key,
  DROP CONSTRAINT operation_cases_external_reference_key,
  ADD CONSTRAINT operation_cases_pkey PRIMARY KEY (id, submission_id),
  ADD CONSTRAINT operation_cases_service_request_id_key UNIQUE (service_request_id, submission_id),
  ADD CONSTRAINT operation_cases_external_reference_key UNIQUE (external_reference, submission_id);
ALTER TABLE operational.case_status_history
  DROP CONSTRAINT case_status_history_pkey,
  ADD CONSTRAINT case_status_history_pkey PRIMARY KEY (id, submission_id);
ALTER TABLE canonical.business_objects
  DROP CONSTRAINT business_objects_pkey,
  DROP CONSTRAINT business_objects_source_unique,
  ADD CONSTRAINT business_objects_pkey PRIMARY KEY (id, submission_id),
  ADD CONSTRAINT business_objects_source_unique UNIQUE (source_system, source_reference, submission_id);
ALTER TABLE canonical.lineage_records
  DROP CONSTRAINT lineage_records_pkey,
  ADD CONSTRAINT lineage_records_pkey PRIMARY KEY (from_id, to_id, relationship, submission_id);
ALTER TABLE document_repo.documents
  DROP CONSTRAINT documents_pkey,
  DROP CONSTRAINT documents_object_unique,
  ADD CONSTRAINT documents_pkey PRIMARY KEY (id, submission_id),
  ADD CONSTRAINT documents_service_request_id_fkey FOREIGN KEY (service_request_id, submission_id)
    REFERENCES source_system.service_requests (id, submission_id),
  ADD CONSTRAINT documents_object_unique UNIQUE (bucket, object_key, submission_id);
ALTER TABLE operational.sla_breaches
  DROP CONSTRAINT sla_breaches_pkey,
  DROP CONSTRAINT sla_breaches_once_per_case,
  ADD CONSTRAINT sla_breaches_pkey PRIMARY KEY (id, submission_id),
  ADD CONSTRAINT sla_breaches_case_id_fkey FOREIGN KEY (case_id, submission_id)
    REFERENCES operational.operation_cases (id, submission_id),
  ADD CONSTRAINT sla_breaches_once_per_case UNIQUE (case_id, submission_id);
