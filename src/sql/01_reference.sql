-- reference: master data the intake form chooses from (customers, their
-- agreements, request types, priorities, teams).  Small, rarely written
-- tables: with Citus they become reference tables, copied to every node.

CREATE SCHEMA reference;
COMMENT ON SCHEMA reference IS 'Master and reference data used to validate and enrich intake requests.';

CREATE TABLE reference.customers (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  code        text NOT NULL UNIQUE CONSTRAINT customers_code_format CHECK (code ~ '^[A-Z0-9][A-Z0-9-]{1,31}$'),
  name        text NOT NULL CONSTRAINT customers_name_not_blank CHECK (name ~ '\S' AND length(name) <= 200),
  contact_email text CONSTRAINT customers_contact_email_format CHECK (contact_email ~ '^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:]]+$'),
  status      text NOT NULL DEFAULT 'active' CONSTRAINT customers_status_valid CHECK (status IN ('active', 'inactive')),
  seeded      boolean NOT NULL DEFAULT false,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE reference.customers IS 'Customers that may submit requests.';

CREATE TABLE reference.agreements (
  id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  customer_id      uuid NOT NULL REFERENCES reference.customers (id),
  agreement_number text NOT NULL UNIQUE,
  name             text NOT NULL CONSTRAINT agreements_name_not_blank CHECK (name ~ '\S'),
  valid_from       date NOT NULL,
  valid_to         date,
  status           text NOT NULL DEFAULT 'active' CONSTRAINT agreements_status_valid CHECK (status IN ('active', 'suspended', 'terminated')),
  seeded           boolean NOT NULL DEFAULT false,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT agreements_validity CHECK (valid_to IS NULL OR valid_to >= valid_from),
  UNIQUE (id, customer_id)
);
CREATE INDEX agreements_customer_idx ON reference.agreements (customer_id);
COMMENT ON TABLE reference.agreements IS 'Service agreements; each belongs to one customer and is valid for a period.';

CREATE TABLE reference.request_types (
  code               text PRIMARY KEY CONSTRAINT request_types_code_format CHECK (code ~ '^[A-Za-z][A-Za-z0-9_-]{1,39}$'),
  name               text NOT NULL,
  canonical_category text NOT NULL,
  description        text,
  active             boolean NOT NULL DEFAULT true,
  seeded             boolean NOT NULL DEFAULT false,
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE reference.request_types IS 'Kinds of request, each mapped to an enterprise (canonical) category.';

CREATE TABLE reference.priorities (
  code       text PRIMARY KEY CONSTRAINT priorities_code_format CHECK (code ~ '^[A-Za-z][A-Za-z0-9_-]{1,39}$'),
  name       text NOT NULL,
  rank       integer NOT NULL UNIQUE,
  seeded     boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE reference.priorities IS 'Request priorities, most urgent first by rank.';

CREATE TABLE reference.teams (
  code       text PRIMARY KEY CONSTRAINT teams_code_format CHECK (code ~ '^[A-Za-z][A-Za-z0-9_-]{1,39}$'),
  name       text NOT NULL,
  email      text,
  active     boolean NOT NULL DEFAULT true,
  seeded     boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE reference.teams IS 'Teams that work operational cases.';

CREATE TABLE reference.intake_methods (
  code       text PRIMARY KEY CONSTRAINT intake_methods_code_format CHECK (code ~ '^[A-Za-z][A-Za-z0-9_-]{1,39}$'),
  name       text NOT NULL,
  active     boolean NOT NULL DEFAULT true,
  seeded     boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE reference.intake_methods IS 'How a request reached the intake (portal, manual form, API, ...).';

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['customers', 'agreements', 'request_types', 'priorities', 'teams', 'intake_methods'] LOOP
    EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE ON reference.%I
                    FOR EACH ROW EXECUTE FUNCTION enterprise_lab.mark_user_modified()', t || '_10_user_modified', t);
    EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE ON reference.%I
                    FOR EACH ROW EXECUTE FUNCTION enterprise_lab.touch_updated_at()', t || '_20_touch', t);
  END LOOP;
END $$;

-- Codes are data: the original lab's upper-case codes (GENERAL_INQUIRY,
-- OPERATIONS_TEAM) sit beside these, and lookups are exact (no case folding).
-- Generic example data (example.test addresses only).
INSERT INTO reference.customers (id, code, name, contact_email, status, seeded) VALUES
  ('10000000-0000-4000-8000-000000000001', 'NORTHWIND', 'Northwind Components', 'service@northwind.example.test', 'active', true),
  ('10000000-0000-4000-8000-000000000002', 'BLUEHARBOR', 'Blue Harbor Logistics', 'desk@blueharbor.example.test', 'active', true),
  ('10000000-0000-4000-8000-000000000003', 'ACME-LABS', 'Acme Labs', 'it@acmelabs.example.test', 'active', true),
  ('10000000-0000-4000-8000-000000000004', 'OLDCO', 'Oldco Holdings', 'contact@oldco.example.test', 'inactive', true),
  -- api.submit_request's customer when the body names none (as the original lab's does).
  ('10000000-0000-4000-8000-000000000000', 'UNASSIGNED', 'Unassigned', NULL, 'active', true);

INSERT INTO reference.agreements (id, customer_id, agreement_number, name, valid_from, valid_to, status, seeded) VALUES
  ('20000000-0000-4000-8000-000000000001', '10000000-0000-4000-8000-000000000001', 'AGR-NW-001', 'Northwind managed services', '2024-01-01', NULL, 'active', true),
  ('20000000-0000-4000-8000-000000000002', '10000000-0000-4000-8000-000000000001', 'AGR-NW-002', 'Northwind project support', '2024-01-01', '2024-12-31', 'active', true),
  ('20000000-0000-4000-8000-000000000003', '10000000-0000-4000-8000-000000000002', 'AGR-BH-001', 'Blue Harbor operations', '2024-06-01', NULL, 'active', true),
  ('20000000-0000-4000-8000-000000000004', '10000000-0000-4000-8000-000000000003', 'AGR-AL-001', 'Acme Labs service desk', '2025-01-01', NULL, 'active', true),
  ('20000000-0000-4000-8000-000000000005', '10000000-0000-4000-8000-000000000003', 'AGR-AL-002', 'Acme Labs suspended pilot', '2025-01-01', NULL, 'suspended', true);

INSERT INTO reference.request_types (code, name, canonical_category, description, seeded) VALUES
  ('access_request', 'Access request', 'access', 'Grant or revoke access to a system.', true),
  ('incident', 'Incident', 'incident', 'Something is broken or degraded.', true),
  ('service_change', 'Service change', 'change', 'Change a configuration or a service.', true),
  ('information_request', 'Information request', 'information', 'A question or a report request.', true),
  ('document_review', 'Document review', 'review', 'Review a supplied document.', true),
  ('GENERAL_INQUIRY', 'General inquiry', 'information', 'A generic service request.', true);

INSERT INTO reference.priorities (code, name, rank, seeded) VALUES
  ('critical', 'Critical', 1, true),
  ('high', 'High', 2, true),
  ('medium', 'Medium', 3, true),
  ('low', 'Low', 4, true);

INSERT INTO reference.teams (code, name, email, seeded) VALUES
  ('service_desk', 'Service Desk', 'service-desk@example.test', true),
  ('operations', 'Operations', 'operations@example.test', true),
  ('finance_ops', 'Finance Operations', 'finance-ops@example.test', true),
  ('security', 'Security', 'security@example.test', true),
  ('OPERATIONS_TEAM', 'Operations Team', 'operations-team@example.test', true);

INSERT INTO reference.intake_methods (code, name, seeded) VALUES
  ('portal', 'Portal', true),
  ('manual_form', 'Manual form', true),
  ('api', 'API', true),
  ('email', 'E-mail', true),
  ('phone', 'Phone', true),
  ('batch', 'Batch', true);

SELECT pg_catalog.pg_extension_config_dump('reference.customers', '');
SELECT pg_catalog.pg_extension_config_dump('reference.agreements', '');
SELECT pg_catalog.pg_extension_config_dump('reference.request_types', '');
SELECT pg_catalog.pg_extension_config_dump('reference.priorities', '');
SELECT pg_catalog.pg_extension_config_dump('reference.teams', '');
SELECT pg_catalog.pg_extension_config_dump('reference.intake_methods', '');
