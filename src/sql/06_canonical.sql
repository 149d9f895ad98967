-- canonical: the enterprise-normalized view of each business object, the
-- operational-to-canonical status map, and lineage across the boundaries.

CREATE SCHEMA canonical;
COMMENT ON SCHEMA canonical IS 'Canonical business objects, status mapping and lineage.';

CREATE TABLE canonical.status_map (
  operational_status text PRIMARY KEY REFERENCES operational.case_statuses (status),
  canonical_status   text NOT NULL,
  seeded             boolean NOT NULL DEFAULT false
);
INSERT INTO canonical.status_map VALUES
  ('open', 'active', true),
  ('in_progress', 'in_progress', true),
  ('completed', 'completed', true),
  ('rejected', 'rejected', true);
COMMENT ON TABLE canonical.status_map IS 'How an operational case status maps to the canonical lifecycle status.';
CREATE TRIGGER status_map_10_user_modified BEFORE UPDATE ON canonical.status_map
  FOR EACH ROW EXECUTE FUNCTION enterprise_lab.mark_user_modified();

CREATE TABLE canonical.business_objects (
  id                 uuid NOT NULL DEFAULT enterprise_lab.uuid_v7(),
  submission_id      uuid NOT NULL,
  object_type        text NOT NULL,
  source_system      text NOT NULL,
  source_reference   text NOT NULL,
  canonical_category text NOT NULL,
  lifecycle_status   text NOT NULL,
  attributes         jsonb NOT NULL DEFAULT '{}',
  last_event_seq     bigint NOT NULL,
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT business_objects_pkey PRIMARY KEY (id, submission_id),
  CONSTRAINT business_objects_source_unique UNIQUE (source_system, source_reference, submission_id),
  CONSTRAINT business_objects_submission_unique UNIQUE (submission_id, object_type)
);
COMMENT ON TABLE canonical.business_objects IS
  'One canonical object per source record; lifecycle_status follows the operational case through canonical.status_map.';
COMMENT ON COLUMN canonical.business_objects.last_event_seq IS
  'Sequence number of the last event applied: an older event never overwrites a newer state.';

CREATE TABLE canonical.lineage_records (
  submission_id uuid NOT NULL,
  from_type     text NOT NULL,
  from_id       uuid NOT NULL,
  to_type       text NOT NULL,
  to_id         uuid NOT NULL,
  relationship  text NOT NULL,
  event_id      uuid,
  created_at    timestamptz NOT NULL DEFAULT now(),
  -- Record ids are uuids, unique across types, so the edge is (from, to,
  -- relationship), with the root key that every key carries.
  CONSTRAINT lineage_records_pkey PRIMARY KEY (from_id, to_id, relationship, submission_id)
);
CREATE INDEX lineage_records_submission_idx ON canonical.lineage_records (submission_id);
COMMENT ON TABLE canonical.lineage_records IS
  'Directed edges between records of different boundaries (service_request -> operation_case -> business_object), one row per edge.';

SELECT pg_catalog.pg_extension_config_dump('canonical.status_map', '');
SELECT pg_catalog.pg_extension_config_dump('canonical.business_objects', '');
SELECT pg_catalog.pg_extension_config_dump('canonical.lineage_records', '');
