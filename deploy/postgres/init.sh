#!/usr/bin/env bash
# First-start initialisation of the PostgreSQL container (docker-entrypoint-initdb.d): one
# database per service, each owned by its own login role, closed to every other role, plus one
# for Keycloak. Runs only when the data directory is empty; to re-run, remove the volume.
#
# Passwords come from the container's environment (see docker-compose.yml):
#   PG_REQUEST_PASSWORD PG_POLICY_PASSWORD PG_LIFECYCLE_PASSWORD PG_NOTIFY_PASSWORD
#   PG_AUDIT_PASSWORD PG_KEYCLOAK_PASSWORD
# They are passed to psql as variables and quoted by psql (:'password'), never pasted into SQL.
set -eo pipefail

create_owned_database() {
    local role="$1" database="$2" password="$3"
    if [ -z "${password}" ]; then
        echo "init.sh: no password given for role ${role}" >&2
        return 1
    fi
    psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER}" --dbname postgres \
         -v role="${role}" -v database="${database}" -v password="${password}" <<'SQL'
CREATE ROLE :"role" LOGIN PASSWORD :'password';
CREATE DATABASE :"database" OWNER :"role" ENCODING 'UTF8' TEMPLATE template0;
REVOKE ALL ON DATABASE :"database" FROM PUBLIC;
GRANT ALL ON DATABASE :"database" TO :"role";
SQL
    echo "init.sh: database ${database} owned by role ${role}"
}

create_owned_database team_request   team_request   "${PG_REQUEST_PASSWORD}"
create_owned_database team_policy    team_policy    "${PG_POLICY_PASSWORD}"
create_owned_database team_lifecycle team_lifecycle "${PG_LIFECYCLE_PASSWORD}"
create_owned_database team_notify    team_notify    "${PG_NOTIFY_PASSWORD}"
create_owned_database team_audit     team_audit     "${PG_AUDIT_PASSWORD}"
create_owned_database keycloak       keycloak       "${PG_KEYCLOAK_PASSWORD}"
