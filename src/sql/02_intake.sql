-- intake: raw requests as they were received (portal, API, e-mail, ...).
-- A submission's id is the root key of its whole lifecycle: every later
-- table carries it as submission_id (see docs/architecture.md, Scale-out).

CREATE SCHEMA intake;
COMMENT ON SCHEMA intake IS 'Raw intake requests, validated against the reference data.';

CREATE TABLE intake.submissions (
  submission_id     uuid PRIMARY KEY DEFAULT enterprise_lab.uuid_v7(),
  intake_method     text NOT NULL DEFAULT 'portal' REFERENCES reference.intake_methods (code),
  requester_name    text NOT NULL
                    CONSTRAINT submissions_requester_name_valid CHECK (enterprise_lab.has_visible_text(requester_name) AND length(requester_name) <= 200),
  requester_email   text NOT NULL
                    CONSTRAINT submissions_requester_email_valid CHECK (length(requester_email) <= 254 AND requester_email ~ '^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:]]+$'),
  request_description text NOT NULL
                    CONSTRAINT submissions_request_description_valid CHECK (enterprise_lab.has_visible_text(request_description) AND length(request_description) <= 4000),
  request_type      text NOT NULL REFERENCES reference.request_types (code),
  priority          text NOT NULL REFERENCES reference.priorities (code),
  assigned_team     text NOT NULL REFERENCES reference.teams (code),
  customer_id       uuid NOT NULL REFERENCES reference.customers (id),
  agreement_id      uuid,
  submission_status text NOT NULL DEFAULT 'received'
                    CONSTRAINT submissions_submission_status_valid CHECK (submission_status IN ('received', 'withdrawn')),
  submitted_by      text NOT NULL DEFAULT current_user,
  created_at        timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT submissions_agreement_of_customer
    FOREIGN KEY (agreement_id, customer_id) REFERENCES reference.agreements (id, customer_id)
);
-- The submission list's order exactly, so its first page reads one page
-- of entries even when a bulk load gave many rows the same created_at.
CREATE INDEX submissions_created_at_idx ON intake.submissions (created_at DESC, submission_id);
CREATE INDEX submissions_customer_idx ON intake.submissions (customer_id);
COMMENT ON TABLE intake.submissions IS
  'Raw intake requests. Inserting one creates its source_system.service_requests row in the same transaction.';
COMMENT ON COLUMN intake.submissions.submission_id IS 'Root key of the request''s whole lifecycle.';

-- Friendly validation: the same rules as the constraints above, but each
-- failure names the field, says what was given and what would be accepted.
CREATE FUNCTION intake.validate_submission() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  agr reference.agreements;
  cust reference.customers;
BEGIN
  IF NEW.requester_name IS NULL OR NEW.requester_name !~ '\S' THEN
    RAISE EXCEPTION 'requester_name must not be blank'
      USING ERRCODE = 'not_null_violation', COLUMN = 'requester_name',
            HINT = 'Give the name of the person making the request.';
  ELSIF NOT enterprise_lab.has_visible_text(NEW.requester_name) THEN
    RAISE EXCEPTION 'requester_name must not be blank'
      USING ERRCODE = 'not_null_violation', COLUMN = 'requester_name',
            DETAIL = 'It has no visible character: no-break, zero-width and other invisible characters do not count.',
            HINT = 'Give the name of the person making the request.';
  ELSIF length(NEW.requester_name) > 200 THEN
    RAISE EXCEPTION 'requester_name is too long'
      USING ERRCODE = 'string_data_right_truncation', COLUMN = 'requester_name',
            DETAIL = format('It has %s characters; the limit is 200.', length(NEW.requester_name));
  END IF;

  IF NEW.requester_email IS NULL
     OR length(NEW.requester_email) > 254
     OR NEW.requester_email !~ '^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:]]+$' THEN
    RAISE EXCEPTION 'requester_email is not a valid e-mail address'
      USING ERRCODE = 'invalid_parameter_value', COLUMN = 'requester_email',
            DETAIL = format('The value given was %s.', coalesce(quote_literal(left(NEW.requester_email, 100)), 'NULL')),
            HINT = 'Use the form name@example.test.';
  END IF;

  IF NEW.request_description IS NULL OR NEW.request_description !~ '\S' THEN
    RAISE EXCEPTION 'request_description must not be blank'
      USING ERRCODE = 'not_null_violation', COLUMN = 'request_description',
            HINT = 'Describe what is requested.';
  ELSIF NOT enterprise_lab.has_visible_text(NEW.request_description) THEN
    RAISE EXCEPTION 'request_description must not be blank'
      USING ERRCODE = 'not_null_violation', COLUMN = 'request_description',
            DETAIL = 'It has no visible character: no-break, zero-width and other invisible characters do not count.',
            HINT = 'Describe what is requested.';
  ELSIF length(NEW.request_description) > 4000 THEN
    RAISE EXCEPTION 'request_description is too long'
      USING ERRCODE = 'string_data_right_truncation', COLUMN = 'request_description',
            DETAIL = format('It has %s characters; the limit is 4000.', length(NEW.request_description));
  END IF;

  IF NOT EXISTS (SELECT 1 FROM reference.request_types WHERE code = NEW.request_type AND active) THEN
    RAISE EXCEPTION 'request_type "%" does not exist', NEW.request_type
      USING ERRCODE = 'invalid_parameter_value', COLUMN = 'request_type',
            DETAIL = format('Known request types: %s.', (SELECT string_agg(code, ', ' ORDER BY code COLLATE "C") FROM reference.request_types WHERE active)),
            HINT = 'Choose one of reference.request_types.';
  END IF;

  IF NOT EXISTS (SELECT 1 FROM reference.priorities WHERE code = NEW.priority) THEN
    RAISE EXCEPTION 'priority "%" does not exist', NEW.priority
      USING ERRCODE = 'invalid_parameter_value', COLUMN = 'priority',
            DETAIL = format('Known priorities: %s.', (SELECT string_agg(code, ', ' ORDER BY rank) FROM reference.priorities)),
            HINT = 'Choose one of reference.priorities.';
  END IF;

  IF NOT EXISTS (SELECT 1 FROM reference.teams WHERE code = NEW.assigned_team AND active) THEN
    RAISE EXCEPTION 'assigned_team "%" does not exist', NEW.assigned_team
      USING ERRCODE = 'invalid_parameter_value', COLUMN = 'assigned_team',
            DETAIL = format('Known teams: %s.', (SELECT string_agg(code, ', ' ORDER BY code COLLATE "C") FROM reference.teams WHERE active)),
            HINT = 'Choose one of reference.teams.';
  END IF;

  IF NOT EXISTS (SELECT 1 FROM reference.intake_methods WHERE code = NEW.intake_method AND active) THEN
    RAISE EXCEPTION 'intake_method "%" does not exist', NEW.intake_method
      USING ERRCODE = 'invalid_parameter_value', COLUMN = 'intake_method',
            DETAIL = format('Known intake methods: %s.', (SELECT string_agg(code, ', ' ORDER BY code COLLATE "C") FROM reference.intake_methods WHERE active)),
            HINT = 'Choose one of reference.intake_methods.';
  END IF;

  SELECT * INTO cust FROM reference.customers WHERE id = NEW.customer_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'customer % does not exist', coalesce(NEW.customer_id::text, 'NULL')
      USING ERRCODE = 'invalid_parameter_value', COLUMN = 'customer_id',
            HINT = 'Choose a customer id from reference.customers.';
  ELSIF cust.status <> 'active' THEN
    RAISE EXCEPTION 'customer % (%) is not active', cust.code, NEW.customer_id
      USING ERRCODE = 'invalid_parameter_value', COLUMN = 'customer_id',
            DETAIL = format('Its status is %s.', cust.status);
  END IF;

  IF NEW.agreement_id IS NOT NULL THEN
    SELECT * INTO agr FROM reference.agreements WHERE id = NEW.agreement_id;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'agreement % does not exist', NEW.agreement_id
        USING ERRCODE = 'invalid_parameter_value', COLUMN = 'agreement_id',
              HINT = 'Choose an agreement id from reference.agreements, or leave it empty.';
    ELSIF agr.customer_id <> NEW.customer_id THEN
      RAISE EXCEPTION 'agreement % belongs to another customer', agr.agreement_number
        USING ERRCODE = 'invalid_parameter_value', COLUMN = 'agreement_id',
              DETAIL = format('Agreement %s is not an agreement of customer %s.', agr.agreement_number, cust.code),
              HINT = 'Choose one of the customer''s own agreements.';
    ELSIF agr.status <> 'active' THEN
      RAISE EXCEPTION 'agreement % is not active', agr.agreement_number
        USING ERRCODE = 'invalid_parameter_value', COLUMN = 'agreement_id',
              DETAIL = format('Its status is %s.', agr.status);
    ELSIF current_date < agr.valid_from OR (agr.valid_to IS NOT NULL AND current_date > agr.valid_to) THEN
      RAISE EXCEPTION 'agreement % is not valid today', agr.agreement_number
        USING ERRCODE = 'invalid_parameter_value', COLUMN = 'agreement_id',
              DETAIL = format('It is valid from %s to %s.', agr.valid_from, coalesce(agr.valid_to::text, 'open end'));
    END IF;
  END IF;

  RETURN NEW;
END $$;

CREATE TRIGGER submissions_10_validate BEFORE INSERT ON intake.submissions
  FOR EACH ROW EXECUTE FUNCTION intake.validate_submission();
CREATE TRIGGER submissions_20_touch BEFORE UPDATE ON intake.submissions
  FOR EACH ROW EXECUTE FUNCTION enterprise_lab.touch_updated_at();

SELECT pg_catalog.pg_extension_config_dump('intake.submissions', '');

CREATE FUNCTION intake.submit_request(
  requester_name  text,
  requester_email text,
  description     text,
  request_type    text,
  priority        text,
  team            text,
  customer_id     uuid,
  agreement_id    uuid DEFAULT NULL,
  intake_method   text DEFAULT 'portal',
  file_name       text DEFAULT NULL,
  content_type    text DEFAULT NULL,
  content         bytea DEFAULT NULL,
  OUT submission_id uuid,
  OUT service_request_id uuid,
  OUT request_number text,
  OUT event_id uuid,
  OUT document_id uuid)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  INSERT INTO intake.submissions AS s
         (intake_method, requester_name, requester_email, request_description,
          request_type, priority, assigned_team, customer_id, agreement_id)
  VALUES (submit_request.intake_method, submit_request.requester_name, submit_request.requester_email,
          submit_request.description, submit_request.request_type, submit_request.priority,
          submit_request.team, submit_request.customer_id, submit_request.agreement_id)
  RETURNING s.submission_id INTO submission_id;

  SELECT r.id, r.request_number INTO service_request_id, request_number
    FROM source_system.service_requests r WHERE r.submission_id = submit_request.submission_id;
  SELECT e.id INTO event_id
    FROM integration.events e
   WHERE e.submission_id = submit_request.submission_id AND e.event_type = 'RequestCreated';

  -- One optional supporting document, in the same transaction.
  IF submit_request.file_name IS NOT NULL OR submit_request.content_type IS NOT NULL
     OR submit_request.content IS NOT NULL THEN
    document_id := document_repo.upload_document(submit_request.submission_id, submit_request.file_name,
                                                 submit_request.content_type, submit_request.content);
  END IF;
END $$;
COMMENT ON FUNCTION intake.submit_request(text, text, text, text, text, text, uuid, uuid, text, text, text, bytea) IS
  'Submit an intake request: creates the submission, its service request and the RequestCreated event in one transaction, and uploads the optional supporting document (file_name, content_type, content) with it.';
