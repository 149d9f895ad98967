-- Access (delivery): webhook signing secrets are for superusers and
-- lab_admin only.  Runs after 95_access.sql, whose read grant covers every
-- table of the integration schema.

REVOKE SELECT ON integration.subscription_secrets FROM lab_operator, lab_auditor;
