-- Access: what each role may read, and row-level security on the cases
-- (what an operator reads of them directly; api.set_case_status decides
-- itself who may change a case).
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
GRANT EXECUTE ON FUNCTION enterprise_lab.request_role(), enterprise_lab.request_access(),
  enterprise_lab.request_trusts_claims(), enterprise_lab.request_claims(), enterprise_lab.request_teams(),
  enterprise_lab.request_subject(), enterprise_lab.request_may_change_team(text)
  TO lab_operator, lab_auditor, lab_admin;

-- No request role uses a sequence: the api functions draw their numbers.
REVOKE ALL ON SEQUENCE operational.case_status_history_seq, integration.event_seq FROM PUBLIC;

ALTER TABLE operational.operation_cases ENABLE ROW LEVEL SECURITY;

CREATE POLICY cases_read_all ON operational.operation_cases
  FOR SELECT TO lab_auditor, lab_admin USING (true);
COMMENT ON POLICY cases_read_all ON operational.operation_cases IS 'Auditors and admins see every case.';

CREATE POLICY cases_read_own_teams ON operational.operation_cases
  FOR SELECT TO lab_operator USING (enterprise_lab.request_may_change_team(team_code));
COMMENT ON POLICY cases_read_own_teams ON operational.operation_cases IS
  'An operator reading the table sees the cases of its teams (enterprise_lab.request_teams()).';

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
