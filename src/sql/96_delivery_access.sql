-- Access (delivery): webhook signing secrets and a subscription's extra
-- headers (which may carry credentials) are for superusers and lab_admin
-- only.  Runs after 95_access.sql, whose read grant covers every table of
-- the integration schema.

REVOKE SELECT ON integration.subscription_secrets FROM lab_operator, lab_auditor;
REVOKE SELECT ON integration.subscriptions FROM lab_operator, lab_auditor;
GRANT SELECT (id, name, url, event_types, enabled, paused_at, paused_reason, timeout_ms, consecutive_failures,
              delivered_count, failed_count, last_success_at, last_failure_at, created_at, updated_at)
  ON integration.subscriptions TO lab_operator, lab_auditor;
