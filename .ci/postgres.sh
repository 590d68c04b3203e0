# Sourced by .ci/run: a throwaway PostgreSQL server on the loopback interface for the test suite,
# started now and stopped when the sourcing script exits. start_postgres installs Debian's server package when it is missing, runs a fresh cluster in a
# temporary directory as the 'postgres' user, listening on 127.0.0.1 only, creates a role and a
# database, and exports LLMEFF_TEST_POSTGRES_URL. stop_postgres stops it and removes the cluster.

PG_PORT="${PG_PORT:-54329}"
PG_DIR=""

start_postgres() {
    if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    fi
    local bin
    bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
    PG_DIR="$(mktemp -d /tmp/llmeff-pg.XXXXXX)"
    chown postgres:postgres "$PG_DIR"
    # the password only ever lives in this environment variable and the URL built from it
    local password
    password="$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')"
    printf '%s\n' "$password" > "$PG_DIR/pw" && chown postgres "$PG_DIR/pw" && chmod 600 "$PG_DIR/pw"
    su postgres -s /bin/sh -c "'$bin/initdb' -D '$PG_DIR/data' --auth-local=peer --auth-host=scram-sha-256 -U postgres --pwfile='$PG_DIR/pw'" >/dev/null
    rm -f "$PG_DIR/pw"
    su postgres -s /bin/sh -c "'$bin/pg_ctl' -D '$PG_DIR/data' -l '$PG_DIR/server.log' -w \
        -o \"-c listen_addresses=127.0.0.1 -c port=$PG_PORT -c unix_socket_directories='$PG_DIR' -c fsync=off\" start" >/dev/null
    su postgres -s /bin/sh -c "psql -h '$PG_DIR' -p $PG_PORT -U postgres -q -v ON_ERROR_STOP=1" <<SQL
CREATE ROLE llmeff LOGIN CREATEDB PASSWORD '$password';
CREATE DATABASE llmeff_test OWNER llmeff;
SQL
    export LLMEFF_TEST_POSTGRES_URL="postgresql+psycopg://llmeff:${password}@127.0.0.1:${PG_PORT}/llmeff_test"
    echo "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') running on 127.0.0.1:$PG_PORT"
}

stop_postgres() {
    [ -n "$PG_DIR" ] || return 0
    local bin
    bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
    su postgres -s /bin/sh -c "'$bin/pg_ctl' -D '$PG_DIR/data' -m fast -w stop" >/dev/null 2>&1 || true
    rm -rf "$PG_DIR"
    PG_DIR=""
}

trap stop_postgres EXIT
start_postgres
