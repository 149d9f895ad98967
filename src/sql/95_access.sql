-- Access: what each role may read, and row-level security on the cases.
-- Runs after every boundary file so the read grants cover all of them.
-- No request role may write a boundary table: writes go through the api
-- functions.  The workers and integration.process_events() run as the
-- extension's owner (a superuser), which row-level security never limits.

DO $$
DECLARE
  s text;
BEGIN
  FOREACH s IN ARRAY ARRAY['enterprise_lab', 'reference', 'intake', 'source_system', 'document_repo',
                           'integration', 'operational', 'canonical', 'dashboard'] LOOP
    CONTINUE WHEN to_regnamespace(s) IS NULL;
    -- Operators and admins read everything, auditors too (that is all they do).
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO lab_operator, lab_auditor, lab_admin', s);
    EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO lab_operator, lab_auditor, lab_admin', s);
  END LOOP;
END $$;

-- The request helpers are evaluated by the policies below as the querying role.
GRANT USAGE ON SCHEMA enterprise_lab TO lab_case_writer;
GRANT EXECUTE ON FUNCTION enterprise_lab.request_role(), enterprise_lab.request_access(),
  enterprise_lab.request_trusts_claims(), enterprise_lab.request_claims(), enterprise_lab.request_teams(),
  enterprise_lab.request_subject(), enterprise_lab.request_may_change_team(text)
  TO lab_operator, lab_auditor, lab_admin, lab_case_writer;

-- api.set_case_status runs as lab_case_writer: just enough to update a
-- case's status and let the triggers record history and the event.
GRANT USAGE ON SCHEMA operational, integration TO lab_case_writer;
GRANT SELECT ON operational.operation_cases, operational.case_statuses, operational.status_transitions,
  operational.role_teams TO lab_case_writer;
GRANT UPDATE (processing_status) ON operational.operation_cases TO lab_case_writer;
GRANT INSERT ON operational.case_status_history, integration.events TO lab_case_writer;
GRANT USAGE ON SEQUENCE operational.case_status_history_seq, integration.event_seq TO lab_case_writer;

ALTER TABLE operational.operation_cases ENABLE ROW LEVEL SECURITY;

CREATE POLICY cases_read_all ON operational.operation_cases
  FOR SELECT TO lab_auditor, lab_admin, lab_case_writer USING (true);
COMMENT ON POLICY cases_read_all ON operational.operation_cases IS
  'Auditors and admins see every case; so does api.set_case_status, to tell "not yours" (42501) from "not there" (404).';

CREATE POLICY cases_read_own_teams ON operational.operation_cases
  FOR SELECT TO lab_operator USING (enterprise_lab.request_may_change_team(team_code));
COMMENT ON POLICY cases_read_own_teams ON operational.operation_cases IS
  'An operator reading the table sees the cases of its teams (enterprise_lab.request_teams()).';

CREATE POLICY cases_change_own_teams ON operational.operation_cases
  FOR UPDATE TO lab_case_writer
  USING (enterprise_lab.request_may_change_team(team_code))
  WITH CHECK (enterprise_lab.request_may_change_team(team_code));
COMMENT ON POLICY cases_change_own_teams ON operational.operation_cases IS
  'api.set_case_status changes a case only for an admin or an operator of the case''s team (enterprise_lab.request_teams()).';

ALTER TABLE operational.case_status_history ENABLE ROW LEVEL SECURITY;

CREATE POLICY history_read_all ON operational.case_status_history
  FOR SELECT TO lab_auditor, lab_admin USING (true);
COMMENT ON POLICY history_read_all ON operational.case_status_history IS 'Auditors and admins see all history.';

-- The row's team is its case's: the same rows as cases_read_own_teams, with
-- no subquery (which Citus refuses in a policy of a distributed table).
CREATE POLICY history_read_own_teams ON operational.case_status_history
  FOR SELECT TO lab_operator USING (enterprise_lab.request_may_change_team(team_code));
COMMENT ON POLICY history_read_own_teams ON operational.case_status_history IS
  'An operator reading the table sees the history of the cases it sees.';

CREATE POLICY history_written_with_change ON operational.case_status_history
  FOR INSERT TO lab_case_writer
  WITH CHECK (changed_by IS NOT NULL AND changed_by = enterprise_lab.request_subject());
COMMENT ON POLICY history_written_with_change ON operational.case_status_history IS
  'api.set_case_status records history rows in the name of the request''s subject only (enterprise_lab.request_subject()).';
