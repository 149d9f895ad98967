-- operational: the downstream system where teams work cases.  The allowed
-- status moves are data; every move is validated, recorded in the history
-- and published as an OperationalCaseStatusChanged event.

CREATE SCHEMA operational;
COMMENT ON SCHEMA operational IS 'Operational cases, their workflow and status history.';

CREATE TABLE operational.case_statuses (
  status      text PRIMARY KEY,
  is_terminal boolean NOT NULL,
  description text NOT NULL,
  seeded      boolean NOT NULL DEFAULT false
);
INSERT INTO operational.case_statuses VALUES
  ('open', false, 'Received by the operational team, not started.', true),
  ('in_progress', false, 'Being worked on.', true),
  ('completed', true, 'Done. Terminal.', true),
  ('rejected', true, 'Will not be done. Terminal.', true);
COMMENT ON TABLE operational.case_statuses IS 'Case statuses; terminal ones allow no further change.';

CREATE TABLE operational.status_transitions (
  from_status text NOT NULL REFERENCES operational.case_statuses (status),
  to_status   text NOT NULL REFERENCES operational.case_statuses (status),
  PRIMARY KEY (from_status, to_status),
  CONSTRAINT status_transitions_not_to_self CHECK (from_status <> to_status),
  seeded      boolean NOT NULL DEFAULT false
);
INSERT INTO operational.status_transitions VALUES
  ('open', 'in_progress', true),
  ('open', 'rejected', true),
  ('in_progress', 'completed', true),
  ('in_progress', 'rejected', true);
COMMENT ON TABLE operational.status_transitions IS 'The allowed case status moves.';
CREATE TRIGGER case_statuses_10_user_modified BEFORE UPDATE ON operational.case_statuses
  FOR EACH ROW EXECUTE FUNCTION enterprise_lab.mark_user_modified();
CREATE TRIGGER status_transitions_10_user_modified BEFORE UPDATE ON operational.status_transitions
  FOR EACH ROW EXECUTE FUNCTION enterprise_lab.mark_user_modified();

CREATE TABLE operational.operation_cases (
  id                 uuid NOT NULL DEFAULT enterprise_lab.uuid_v7(),
  submission_id      uuid NOT NULL,
  -- Written only by the RequestCreated handler, from the joined request
  -- row.  No foreign key: its check is a query per row whose plan a
  -- long-lived worker caches while the table is small (a sequential scan),
  -- and it would then scan the whole table for every new case.
  service_request_id uuid NOT NULL,
  external_reference text NOT NULL,
  request_type_code  text NOT NULL,
  priority_code      text NOT NULL,
  team_code          text NOT NULL,
  -- No foreign key to case_statuses: cases start open and move only along
  -- status_transitions (which references case_statuses), and a key-share
  -- lock on the shared 'open' row by every worker would create MultiXacts.
  processing_status  text NOT NULL DEFAULT 'open',
  status_changed_by  text
                     CONSTRAINT operation_cases_status_changed_by_length CHECK (length(status_changed_by) <= 200),
  status_change_reason text
                     CONSTRAINT operation_cases_status_change_reason_length CHECK (length(status_change_reason) <= 1000),
  opened_at          timestamptz NOT NULL DEFAULT now(),
  status_changed_at  timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT operation_cases_pkey PRIMARY KEY (id, submission_id),
  CONSTRAINT operation_cases_service_request_id_key UNIQUE (service_request_id, submission_id),
  CONSTRAINT operation_cases_external_reference_key UNIQUE (external_reference, submission_id)
);
CREATE INDEX operation_cases_team_status_idx ON operational.operation_cases (team_code, processing_status);
COMMENT ON TABLE operational.operation_cases IS
  'One case per service request, opened by the worker. Change its status with operational.set_case_status().';

CREATE SEQUENCE operational.case_status_history_seq;

CREATE TABLE operational.case_status_history (
  id              bigint NOT NULL DEFAULT nextval('operational.case_status_history_seq'),
  submission_id   uuid NOT NULL,
  case_id         uuid NOT NULL,  -- written with its case (no foreign key: see service_request_id above)
  previous_status text,
  new_status      text NOT NULL,
  changed_by      text NOT NULL
                  CONSTRAINT case_status_history_changed_by_valid
                  CHECK (enterprise_lab.has_visible_text(changed_by) AND length(changed_by) <= 200),
  change_reason   text
                  CONSTRAINT case_status_history_change_reason_length CHECK (length(change_reason) <= 1000),
  changed_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
  -- The case's team (set when the case opens, never changed): who may read
  -- the row, without a look-up of the case that a policy on a distributed
  -- table could not make.
  team_code       text NOT NULL,
  CONSTRAINT case_status_history_pkey PRIMARY KEY (id, submission_id)
);
CREATE INDEX case_status_history_case_idx ON operational.case_status_history (case_id, id);
COMMENT ON TABLE operational.case_status_history IS 'Every status a case has had: previous, new, by whom, why, when.';

-- Who changes a case and why, as every path records them (set_case_status,
-- the api, a direct UPDATE): a visible name of at most 200 characters and
-- a reason of at most 1000.  The table constraints say the same; this says
-- it with the field's name and the limit.
CREATE FUNCTION operational.check_change_note(changed_by text, change_reason text) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF changed_by IS NULL OR NOT enterprise_lab.has_visible_text(changed_by) THEN
    RAISE EXCEPTION 'changed_by must not be blank'
      USING ERRCODE = 'not_null_violation', HINT = 'Say who changes the case.';
  ELSIF length(changed_by) > 200 THEN
    RAISE EXCEPTION 'changed_by is too long'
      USING ERRCODE = 'string_data_right_truncation',
            DETAIL = format('It has %s characters; the limit is 200.', length(changed_by));
  END IF;
  IF length(change_reason) > 1000 THEN
    RAISE EXCEPTION 'change_reason is too long'
      USING ERRCODE = 'string_data_right_truncation',
            DETAIL = format('It has %s characters; the limit is 1000.', length(change_reason)),
            HINT = 'Keep the reason short; details belong in the case''s own system.';
  END IF;
END $$;
COMMENT ON FUNCTION operational.check_change_note(text, text) IS
  'Raise unless changed_by is a visible name of at most 200 characters and change_reason at most 1000 characters.';

CREATE FUNCTION operational.check_status_change() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  allowed text;
BEGIN
  IF NEW.processing_status IS NOT DISTINCT FROM OLD.processing_status THEN
    -- set_case_status() to the status the case has: who changed it last,
    -- why and when stay.
    IF NEW.status_changed_at IS DISTINCT FROM OLD.status_changed_at THEN
      NEW.status_changed_by := OLD.status_changed_by;
      NEW.status_change_reason := OLD.status_change_reason;
      NEW.status_changed_at := OLD.status_changed_at;
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
  END IF;

  IF (SELECT is_terminal FROM operational.case_statuses WHERE status = OLD.processing_status) THEN
    RAISE EXCEPTION 'case % is % and can no longer change', OLD.external_reference, OLD.processing_status
      USING ERRCODE = 'object_not_in_prerequisite_state',
            DETAIL = format('%s is a terminal status.', OLD.processing_status),
            HINT = 'Open a new request instead.';
  END IF;

  IF NOT EXISTS (SELECT 1 FROM operational.status_transitions
                  WHERE from_status = OLD.processing_status AND to_status = NEW.processing_status) THEN
    SELECT string_agg(to_status, ', ' ORDER BY to_status) INTO allowed
      FROM operational.status_transitions WHERE from_status = OLD.processing_status;
    RAISE EXCEPTION 'case status cannot change from % to %', OLD.processing_status, NEW.processing_status
      USING ERRCODE = 'check_violation',
            DETAIL = format('From %s a case may move to: %s.', OLD.processing_status, coalesce(allowed, 'nothing')),
            HINT = 'The allowed moves are listed in operational.status_transitions.';
  END IF;

  -- set_case_status() writes who and why into the row, with a new
  -- status_changed_at: the row is all this trigger sees on the node that
  -- holds it.  A direct UPDATE is recorded as made by the user that
  -- operational.changed_by names (else the current user), for the reason
  -- operational.change_reason gives.
  IF NEW.status_changed_at IS NOT DISTINCT FROM OLD.status_changed_at THEN
    NEW.status_changed_by := coalesce(nullif(current_setting('operational.changed_by', true), ''), current_user);
    NEW.status_change_reason := nullif(current_setting('operational.change_reason', true), '');
  END IF;
  PERFORM operational.check_change_note(NEW.status_changed_by, NEW.status_change_reason);
  NEW.status_changed_at := now();
  NEW.updated_at := now();
  RETURN NEW;
END $$;

CREATE FUNCTION operational.record_status_change() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  INSERT INTO operational.case_status_history
         (submission_id, case_id, previous_status, new_status, changed_by, change_reason, team_code)
  VALUES (NEW.submission_id, NEW.id, OLD.processing_status, NEW.processing_status,
          NEW.status_changed_by, NEW.status_change_reason, NEW.team_code);

  INSERT INTO integration.events
         (submission_id, event_type, source_system, aggregate_type, aggregate_id, payload)
  VALUES (NEW.submission_id, 'OperationalCaseStatusChanged', 'operational', 'operation_case', NEW.id,
          jsonb_build_object('case_id', NEW.id,
                             'external_reference', NEW.external_reference,
                             'previous_status', OLD.processing_status,
                             'new_status', NEW.processing_status,
                             'changed_by', NEW.status_changed_by,
                             'change_reason', NEW.status_change_reason));
  RETURN NULL;
END $$;

CREATE TRIGGER operation_cases_10_check_status BEFORE UPDATE ON operational.operation_cases
  FOR EACH ROW EXECUTE FUNCTION operational.check_status_change();
CREATE TRIGGER operation_cases_20_record_status AFTER UPDATE OF processing_status ON operational.operation_cases
  FOR EACH ROW WHEN (OLD.processing_status IS DISTINCT FROM NEW.processing_status)
  EXECUTE FUNCTION operational.record_status_change();

CREATE FUNCTION operational.set_case_status(case_id uuid, new_status text, changed_by text, change_reason text DEFAULT NULL)
RETURNS operational.operation_cases
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  c operational.operation_cases;
  sub uuid;
  changed_at timestamptz;
  updated integer;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM operational.case_statuses WHERE status = new_status) THEN
    RAISE EXCEPTION 'case status "%" does not exist', new_status
      USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('Known statuses: %s.', (SELECT string_agg(status, ', ' ORDER BY status) FROM operational.case_statuses)),
            HINT = 'See operational.case_statuses.';
  END IF;
  PERFORM operational.check_change_note(changed_by, change_reason);

  -- Who and why go into the row, with a time of change the row does not
  -- have yet (check_status_change() then records them): on Citus the
  -- trigger runs on the node that holds the case, which sees no setting of
  -- this session.  The update names the submission as well, which routes
  -- it to the case's shard.
  SELECT oc.submission_id INTO sub FROM operational.operation_cases oc WHERE oc.id = set_case_status.case_id;
  changed_at := clock_timestamp();
  UPDATE operational.operation_cases oc
     SET processing_status = set_case_status.new_status,
         status_changed_by = set_case_status.changed_by,
         status_change_reason = nullif(set_case_status.change_reason, ''),
         status_changed_at = changed_at
   WHERE oc.id = set_case_status.case_id AND oc.submission_id = sub
  RETURNING oc.* INTO c;
  GET DIAGNOSTICS updated = ROW_COUNT;

  IF updated = 0 THEN
    RAISE EXCEPTION 'case % does not exist', case_id
      USING ERRCODE = 'no_data_found',
            HINT = 'Cases are opened by the worker once the request is integrated; see operational.operation_cases.';
  END IF;
  RETURN c;
END $$;
COMMENT ON FUNCTION operational.set_case_status(uuid, text, text, text) IS
  'Move a case to a new status (validated against operational.status_transitions); records history and enqueues OperationalCaseStatusChanged.';

SELECT pg_catalog.pg_extension_config_dump('operational.case_statuses', '');
SELECT pg_catalog.pg_extension_config_dump('operational.status_transitions', '');
SELECT pg_catalog.pg_extension_config_dump('operational.operation_cases', '');
SELECT pg_catalog.pg_extension_config_dump('operational.case_status_history', '');
SELECT pg_catalog.pg_extension_config_dump('operational.case_status_history_seq', '');
