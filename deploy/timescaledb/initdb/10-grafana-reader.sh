#!/bin/sh
# Run by the timescale/timescaledb image on first start (docker-entrypoint-initdb.d): a
# read-only login for Grafana, so dashboard SQL can never change the data. Tables created
# later by `kcity db migrate` (as the owner, POSTGRES_USER) are readable through the
# default privileges.
set -eu
: "${GRAFANA_DB_PASSWORD:?set GRAFANA_DB_PASSWORD}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v reader_password="$GRAFANA_DB_PASSWORD" -v owner="$POSTGRES_USER" <<'SQL'
SELECT 'CREATE ROLE grafana_reader LOGIN'
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'grafana_reader') \gexec
ALTER ROLE grafana_reader WITH LOGIN PASSWORD :'reader_password';
GRANT USAGE ON SCHEMA public TO grafana_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO grafana_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public GRANT SELECT ON TABLES TO grafana_reader;
SQL
