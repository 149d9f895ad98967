#!/usr/bin/env bash
# First start of the database container: install the extensions, let
# PostgREST's authenticator log in, and give the extension its S3
# settings.  The S3 secret key goes to a file only the server's user can
# read, in the data volume so it outlives the container; the setting names
# that file (a setting's value is readable by more roles than superusers).
set -euo pipefail
s3_secret_file="$PGDATA/enterprise_lab_s3_secret_key"
(umask 077 && printf '%s\n' "$S3_SECRET_KEY" > "$s3_secret_file")
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
     -v authenticator_password="$LAB_AUTHENTICATOR_PASSWORD" \
     -v s3_access_key="$S3_ACCESS_KEY" -v s3_secret_key="@$s3_secret_file" <<'SQL'
CREATE EXTENSION IF NOT EXISTS pg_cron;
CREATE EXTENSION IF NOT EXISTS enterprise_lab;
ALTER ROLE lab_authenticator LOGIN PASSWORD :'authenticator_password';
ALTER SYSTEM SET enterprise_lab.s3_endpoint = 'http://minio:9000';
ALTER SYSTEM SET enterprise_lab.s3_bucket = 'enterprise-documents';
ALTER SYSTEM SET enterprise_lab.s3_access_key = :'s3_access_key';
ALTER SYSTEM SET enterprise_lab.s3_secret_key = :'s3_secret_key';
SELECT pg_reload_conf();
SQL
