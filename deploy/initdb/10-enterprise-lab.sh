#!/usr/bin/env bash
# First start of the database container: install the extensions, let
# PostgREST's authenticator log in, and give the extension its S3
# settings (ALTER SYSTEM keeps the secrets out of the process list).
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
     -v authenticator_password="$LAB_AUTHENTICATOR_PASSWORD" \
     -v s3_access_key="$S3_ACCESS_KEY" -v s3_secret_key="$S3_SECRET_KEY" <<'SQL'
CREATE EXTENSION IF NOT EXISTS pg_cron;
CREATE EXTENSION IF NOT EXISTS enterprise_lab;
ALTER ROLE lab_authenticator LOGIN PASSWORD :'authenticator_password';
ALTER SYSTEM SET enterprise_lab.s3_endpoint = 'http://minio:9000';
ALTER SYSTEM SET enterprise_lab.s3_bucket = 'enterprise-documents';
ALTER SYSTEM SET enterprise_lab.s3_access_key = :'s3_access_key';
ALTER SYSTEM SET enterprise_lab.s3_secret_key = :'s3_secret_key';
SELECT pg_reload_conf();
SQL
