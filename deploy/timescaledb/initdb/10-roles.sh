#!/bin/sh
# Run by the timescale/timescaledb image on first start (docker-entrypoint-initdb.d): the
# logins of the platform's least-privilege roles, with their passwords. Their privileges
# come from `kcity db migrate` (kcity/grants.py, applied after every migration), exactly as
# on the local stack: kcity_ingest (ingest service), kcity_api (API), grafana_reader
# (Grafana: SELECT on the views of schema `grafana` only, no secret table or column).
set -eu
: "${GRAFANA_DB_PASSWORD:?set GRAFANA_DB_PASSWORD}"
: "${INGEST_DB_PASSWORD:?set INGEST_DB_PASSWORD}"
: "${API_DB_PASSWORD:?set API_DB_PASSWORD}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v reader_password="$GRAFANA_DB_PASSWORD" -v ingest_password="$INGEST_DB_PASSWORD" \
    -v api_password="$API_DB_PASSWORD" <<'SQL'
SET password_encryption = 'scram-sha-256';
SELECT 'CREATE ROLE grafana_reader' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'grafana_reader') \gexec
SELECT 'CREATE ROLE kcity_ingest' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'kcity_ingest') \gexec
SELECT 'CREATE ROLE kcity_api' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'kcity_api') \gexec
ALTER ROLE grafana_reader WITH LOGIN PASSWORD :'reader_password';
ALTER ROLE kcity_ingest WITH LOGIN PASSWORD :'ingest_password';
ALTER ROLE kcity_api WITH LOGIN PASSWORD :'api_password';
SQL
