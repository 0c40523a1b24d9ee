#!/bin/bash
# The README's first command: shows dbtls end to end on this machine. Installs what is missing
# (scripts/install-deps.sh), builds (scripts/build.sh, optimized build/), runs the control-plane
# walkthrough (scripts/demo-ca.sh), then puts dbtlsd in front of a real PostgreSQL 15 and a real
# MariaDB 10.11 started in a throwaway directory, and drives them with psql, openssl and the
# mariadb client, printing each command and what it answers. Every step checks its outcome: a
# step that does not give what a user should see stops the demo with "demo: FAILED: ..." and
# exit 1 (nothing is skipped silently). Everything started here is stopped on exit.
#
# Usage: scripts/demo.sh [--keep]     (--keep leaves the throwaway directory for a look around;
#        DBTLS_BUILD=<build dir> uses that build instead of building build/)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
KEEP=0
[ "${1:-}" = "--keep" ] && KEEP=1

# --- presentation --------------------------------------------------------------------------
if [ -t 1 ]; then B=$'\e[1m'; D=$'\e[2m'; R=$'\e[31m'; G=$'\e[32m'; N=$'\e[0m'; else
    B=""; D=""; R=""; G=""; N=""; fi
STEP=""
step() { STEP="$*"; printf '\n%s==> %s%s\n' "$B" "$*" "$N"; }
say() { printf '%s%s%s\n' "$D" "$*" "$N"; }
fail() {
    if [ -n "${WORK:-}" ] && [ -s "$WORK/dbtlsd.log" ]; then
        printf '\n%s--- last lines of the dbtlsd log:%s\n' "$D" "$N" >&2
        tail -n 15 "$WORK/dbtlsd.log" | sed 's/^/    /' >&2
    fi
    printf '\n%sdemo: FAILED: %s%s\n' "$R" "$*" "$N" >&2
    exit 1
}
ok() { printf '%s    ok: %s%s\n' "$G" "$*" "$N"; }
PLAIN_WORD='^[-A-Za-z0-9_./:=,@%+$]+$'
# show CMD...: prints the command as a user would type it, runs it, prints its output (only
# the first $BRIEF lines when BRIEF is set); the output is also kept in $OUT and the exit code
# in $RC (never aborts by itself).
show() {
    local cmd="" a q="'"
    for a in "$@"; do
        [ -n "$WORK" ] && a=${a//"$WORK"/\$DEMO}
        if [[ $a =~ $PLAIN_WORD ]]; then
            cmd+="$a "
        else
            cmd+="$q${a//$q/$q\\$q$q}$q "
        fi
    done
    printf '%s$ %s%s\n' "$B" "$cmd" "$N"
    set +e
    OUT=$("$@" 2>&1)
    RC=$?
    set -e
    # here-strings, not `printf | head`: with pipefail, a writer cut off by head's exit
    # (SIGPIPE, when the output passes stdio's 4 KB buffer) would fail the demo
    local lines
    lines=$(wc -l <<<"$OUT")
    if [ -n "${BRIEF:-}" ] && [ "$lines" -gt "$BRIEF" ]; then
        head -n "$BRIEF" <<<"$OUT" | sed 's/^/    /'
        printf '    %s(... %d more lines)%s\n' "$D" $((lines - BRIEF)) "$N"
    elif [ -n "$OUT" ]; then
        printf '%s\n' "$OUT" | sed 's/^/    /'
    fi
    return 0
}
expect_ok() { [ "$RC" -eq 0 ] || fail "$STEP: exit code $RC (expected success)"; }
expect_fail() { [ "$RC" -ne 0 ] || fail "$STEP: the command succeeded but must be refused"; }
expect_out() {
    grep -qF -- "$1" <<<"$OUT" || fail "$STEP: expected output containing: $1"
    ok "$1"
}
trap 'fail "${STEP:-setup}: command failed at line $LINENO"' ERR

# --- cleanup -------------------------------------------------------------------------------
WORK=""
PIDS=() # "pid:signal" of every process started here, stopped in reverse order
started() { PIDS=("$1:${2:-TERM}" "${PIDS[@]}"); }
cleanup() {
    local rc=$? p pid
    set +e
    trap - ERR
    { exec 3>&-; } 2>/dev/null
    for p in "${PIDS[@]}"; do
        pid=${p%%:*}
        kill -"${p##*:}" "$pid" 2>/dev/null
        for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    if [ -n "$WORK" ]; then
        if [ $KEEP -eq 1 ]; then echo "demo: kept $WORK"; else rm -rf "$WORK"; fi
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# PostgreSQL and MariaDB refuse to run as root: "${AS_PG[@]}" CMD runs CMD as postgres (and
# AS_MY as mysql). setpriv execs in place (no wrapper process), so after `"${AS_PG[@]}" postgres
# ... &` $! is the server itself and gets our signals.
AS_PG=()
AS_MY=()
if [ "$(id -u)" -eq 0 ]; then
    AS_PG=(setpriv --reuid=postgres --regid=postgres --clear-groups --)
    AS_MY=(setpriv --reuid=mysql --regid=mysql --clear-groups --)
fi
free_port() {
    /usr/bin/python3 -c 'import sys; sys.path.insert(0, "tests/integration"); import servers
print(servers.free_port())'
}
wait_for() { # wait_for SECONDS WHAT CMD...
    local t=$1 what=$2
    shift 2
    for _ in $(seq $((t * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
    fail "$what did not happen within $t s"
}

# --- 1. dependencies and build -------------------------------------------------------------
step "Installing missing Debian packages (scripts/install-deps.sh)"
./scripts/install-deps.sh
if [ -n "${DBTLS_BUILD:-}" ]; then
    step "Using the build in $DBTLS_BUILD (DBTLS_BUILD)"
    BUILD=$(cd "$DBTLS_BUILD" && pwd)
else
    step "Building (scripts/build.sh)"
    BUILD=$ROOT/$(./scripts/build.sh)
fi
DBTLS_BIN="$BUILD/src/bin/dbtls"
DBTLSD_BIN="$BUILD/src/bin/dbtlsd"
[ -x "$DBTLS_BIN" ] || fail "the build has no dbtls ($DBTLS_BIN)"
say "binaries from $BUILD/src/bin"
PATH="$BUILD/src/bin:/usr/lib/postgresql/15/bin:$PATH"
export PATH

# --- 2. control plane ----------------------------------------------------------------------
step "Control plane walkthrough (scripts/demo-ca.sh)"
[ -f scripts/demo-ca.sh ] || fail "scripts/demo-ca.sh is missing"
DBTLS_BUILD="$BUILD" bash scripts/demo-ca.sh || fail "scripts/demo-ca.sh failed"

[ -x "$DBTLSD_BIN" ] || fail "the build has no dbtlsd ($DBTLSD_BIN): the TLS front is not built"

WORK=$(mktemp -d /tmp/dbtls-demo-XXXXXX)
chmod 755 "$WORK"
export DBTLS_STATE_DIR="$WORK/state"
say "throwaway directory \$DEMO = $WORK; dbtls state in \$DEMO/state (DBTLS_STATE_DIR)"

# --- 3. a real PostgreSQL 15 without TLS ---------------------------------------------------
step "Starting PostgreSQL 15 (no TLS of its own) as the postgres user"
PGPORT=$(free_port)
FRONT_PG=$(free_port)
HEALTH=$(free_port)
mkdir -p "$WORK/pg/sock"
chown -R postgres:postgres "$WORK/pg" 2>/dev/null || true
"${AS_PG[@]}" initdb -D "$WORK/pg/data" -U postgres -A trust --no-sync -E UTF8 --locale=C \
    >"$WORK/pg/initdb.log" 2>&1 || { cat "$WORK/pg/initdb.log"; fail "initdb failed"; }
cat >>"$WORK/pg/data/postgresql.auto.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PGPORT
unix_socket_directories = '$WORK/pg/sock'
ssl = off
fsync = off
EOF
# The backend's own rules: dbtlsd reaches it over the unix socket. certuser logs in with a
# client certificate checked by dbtlsd, so PostgreSQL trusts that role on its socket; every
# other role still proves its password to PostgreSQL itself (SCRAM relayed through the front).
cat >"$WORK/pg/data/pg_hba.conf" <<EOF
local all postgres trust
local all certuser trust
local all all scram-sha-256
EOF
"${AS_PG[@]}" postgres -D "$WORK/pg/data" >"$WORK/pg/postgres.log" 2>&1 &
started $! INT # SIGINT = PostgreSQL's fast shutdown
wait_for 30 "PostgreSQL start" pg_isready -q -h "$WORK/pg/sock" -p "$PGPORT"
PSQL_ADMIN=(psql -X -q -h "$WORK/pg/sock" -p "$PGPORT" -U postgres -v ON_ERROR_STOP=1)
"${PSQL_ADMIN[@]}" -c "CREATE ROLE alice LOGIN PASSWORD 'alice-demo-pw'" \
    -c "CREATE ROLE certuser LOGIN" -c "CREATE DATABASE app OWNER alice" >/dev/null
say "PostgreSQL $(postgres --version | awk '{print $3}') on 127.0.0.1:$PGPORT and $WORK/pg/sock"

# --- 4. a dbtls instance with ENCRYPTED_ONLY ------------------------------------------------
step "dbtls init, and a PostgreSQL instance that requires TLS (ENCRYPTED_ONLY)"
cat >"$WORK/pg_hba.conf" <<'EOF'
# dbtls access rules for instance demo-pg (pg_hba.conf syntax), first match wins
hostssl all certuser    all cert
hostssl all all         all backend
EOF
show dbtls init
expect_ok
BRIEF=12 show dbtls instances create demo-pg --engine postgres --engine-version 15 \
    --listen "127.0.0.1:$FRONT_PG" --backend "$WORK/pg/sock/.s.PGSQL.$PGPORT" \
    --endpoint pg.demo.dbtls.test,127.0.0.1 --ssl-mode ENCRYPTED_ONLY --hba-file "$WORK/pg_hba.conf" \
    --client-info on
expect_ok
show dbtls ssl server-ca-certs download --instance demo-pg --out "$WORK/server-ca.pem"
expect_ok
[ -s "$WORK/server-ca.pem" ] || fail "server-ca.pem was not written"

step "Starting dbtlsd"
dbtlsd --state-dir "$DBTLS_STATE_DIR" --health-listen "127.0.0.1:$HEALTH" 2>"$WORK/dbtlsd.log" &
DBTLSD_PID=$!
started $DBTLSD_PID
for _ in $(seq 200); do
    grep -q "dbtlsd: ready" "$WORK/dbtlsd.log" && break
    kill -0 $DBTLSD_PID 2>/dev/null || { cat "$WORK/dbtlsd.log"; fail "dbtlsd exited"; }
    sleep 0.1
done
grep -q "dbtlsd: ready" "$WORK/dbtlsd.log" || { cat "$WORK/dbtlsd.log"; fail "dbtlsd not ready"; }
sed 's/^/    /' "$WORK/dbtlsd.log"

step "dbtls instances check: the instance tried from here as a client would"
show dbtls instances check demo-pg
expect_ok
expect_out "the active certificate"
say "(the endpoint has no DNS entry on this machine: the psql commands below pass hostaddr=)"

step "Health checks for a load balancer (--health-listen): the node, and the instance's backend"
show curl -sS "http://127.0.0.1:$HEALTH/healthz"
expect_ok
expect_out "ok: configuration generation"
show curl -sS "http://127.0.0.1:$HEALTH/healthz/demo-pg"
expect_ok
expect_out "PostgreSQL answered"

# libpq checks the certificate against host=; hostaddr= spares us a DNS entry for the endpoint.
PGCONN="host=pg.demo.dbtls.test hostaddr=127.0.0.1 port=$FRONT_PG dbname=app"
export PGCONNECT_TIMEOUT=10

step "psql with sslmode=verify-full through dbtlsd"
PGPASSWORD=alice-demo-pw show psql -X -c '\conninfo' -c 'SELECT current_user, version()' \
    "$PGCONN user=alice sslmode=verify-full sslrootcert=$WORK/server-ca.pem"
expect_ok
expect_out "SSL connection (protocol: TLSv1.3"
expect_out "PostgreSQL 15"
say "(--client-info on: PostgreSQL sees the front on its unix socket, and the client in dbtls.*)"
PGPASSWORD=alice-demo-pw show psql -X -c "SELECT coalesce(host(client_addr), 'unix socket') AS \
backend_sees, current_setting('dbtls.client_addr') AS client_addr, \
current_setting('dbtls.ssl_version') AS client_tls FROM pg_stat_activity WHERE pid = pg_backend_pid()" \
    "$PGCONN user=alice sslmode=verify-full sslrootcert=$WORK/server-ca.pem"
expect_ok
expect_out "unix socket"
expect_out "| 127.0.0.1"

step "verify-full against a name that is not in the certificate is refused by psql"
PGPASSWORD=alice-demo-pw show psql -X -c 'SELECT 1' \
    "host=wrong.example hostaddr=127.0.0.1 port=$FRONT_PG dbname=app user=alice \
sslmode=verify-full sslrootcert=$WORK/server-ca.pem"
expect_fail
expect_out 'does not match host name "wrong.example"'

step "A plaintext connection is refused, as PostgreSQL refuses it"
PGPASSWORD=alice-demo-pw show psql -X -c 'SELECT 1' "$PGCONN user=alice sslmode=disable"
expect_fail
expect_out 'no pg_hba.conf entry for host "127.0.0.1", user "alice", database "app", no encryption'

step "A client certificate, and a login with it (rule: hostssl all certuser all cert)"
show dbtls ssl client-certs create certuser --instance demo-pg --out-dir "$WORK/certuser"
expect_ok
show ls -l "$WORK/certuser"
show psql -X -c '\conninfo' -c 'SELECT current_user' \
    "$PGCONN user=certuser sslmode=verify-full sslrootcert=$WORK/certuser/server-ca.pem \
sslcert=$WORK/certuser/client-cert.pem sslkey=$WORK/certuser/client-key.pem"
expect_ok
expect_out "SSL connection (protocol: TLSv1.3"
expect_out "certuser"
step "An ephemeral certificate for a key that never leaves the client (Cloud SQL's generateEphemeralCert)"
show openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$WORK/my.key"
expect_ok
show openssl pkey -in "$WORK/my.key" -pubout -out "$WORK/my.pub"
expect_ok
show dbtls ssl client-certs create-ephemeral certuser --instance demo-pg --public-key "$WORK/my.pub" \
    --out-dir "$WORK/ephemeral"
expect_ok
expect_out "Issued an ephemeral client certificate for [certuser]"
show psql -X -c 'SELECT current_user' \
    "$PGCONN user=certuser sslmode=verify-full sslrootcert=$WORK/ephemeral/server-ca.pem \
sslcert=$WORK/ephemeral/client-cert.pem sslkey=$WORK/my.key"
expect_ok
expect_out "certuser"

step "The same role without a certificate is refused"
show psql -X -c 'SELECT 1' "$PGCONN user=certuser sslmode=verify-full sslrootcert=$WORK/server-ca.pem"
expect_fail
expect_out 'connection requires a valid client certificate'

# --- 5. rotation with a session open -------------------------------------------------------
server_cert_serial() {
    openssl s_client -starttls postgres -connect "127.0.0.1:$FRONT_PG" \
        -servername pg.demo.dbtls.test -CAfile "$WORK/server-ca.pem" </dev/null 2>/dev/null |
        openssl x509 -noout -serial
}

step "Rotation of the server certificate while a session stays open"
mkfifo "$WORK/session.in"
PGPASSWORD=alice-demo-pw psql -X -A -t \
    "$PGCONN user=alice sslmode=verify-full sslrootcert=$WORK/server-ca.pem" \
    <"$WORK/session.in" >"$WORK/session.out" 2>&1 &
started $!
exec 3>"$WORK/session.in"
echo "SELECT 'open session, backend pid ' || pg_backend_pid();" >&3
wait_for 15 "the open session's first answer" grep -q "open session" "$WORK/session.out"
sed 's/^/    session: /' "$WORK/session.out"
show server_cert_serial
expect_ok
BEFORE=$OUT
show dbtls ssl server-certs create --instance demo-pg
expect_ok
show dbtls ssl server-certs list --instance demo-pg
expect_ok
show dbtls ssl server-certs rotate --instance demo-pg
expect_ok
T0=$(date +%s%N)
for _ in $(seq 100); do # dbtlsd polls the store's change counter; give a loaded machine 10 s
    [ "$(server_cert_serial)" != "$BEFORE" ] && break
    sleep 0.1
done
MS=$((($(date +%s%N) - T0) / 1000000))
say "(dbtlsd served the new certificate $MS ms after the rotate command, without a restart)"
show dbtls connections
expect_ok
expect_out "demo-pg"
PREV_SHA=$(dbtls ssl server-certs list --instance demo-pg | awk '$1 == "previous" { print substr($4, 1, 10) }')
[ -n "$PREV_SHA" ] || fail "$STEP: no previous server certificate after the rotation"
expect_out "$PREV_SHA"
say "(SERVER_CERT: the session opened before the rotation still runs on the previous certificate, $PREV_SHA...)"
show server_cert_serial
expect_ok
[ "$OUT" != "$BEFORE" ] || fail "$STEP: a new connection still gets the old certificate ($OUT)"
ok "new connections get the new certificate"
echo "SELECT 'same session after rotation, backend pid ' || pg_backend_pid();" >&3
wait_for 15 "the open session's answer after the rotation" grep -q "after rotation" \
    "$WORK/session.out"
sed 's/^/    session: /' "$WORK/session.out"
ok "the session opened before the rotation still works"
PGPASSWORD=alice-demo-pw show psql -X -c '\conninfo' \
    "$PGCONN user=alice sslmode=verify-full sslrootcert=$WORK/server-ca.pem"
expect_ok
expect_out "SSL connection (protocol: TLSv1.3"

step "A second instance on the same port, chosen by the TLS server name (SNI)"
BRIEF=6 show dbtls instances create demo-pg-secure --engine postgres --engine-version 15 \
    --listen "127.0.0.1:$FRONT_PG" --backend "$WORK/pg/sock/.s.PGSQL.$PGPORT" \
    --endpoint secure.demo.dbtls.test --ssl-mode TRUSTED_CLIENT_CERTIFICATE_REQUIRED
expect_ok
show dbtls ssl server-ca-certs download --instance demo-pg-secure --out "$WORK/secure-ca.pem"
expect_ok
show dbtls ssl client-certs create alice --instance demo-pg-secure --out-dir "$WORK/alice-secure"
expect_ok
wait_for 10 "dbtlsd to load demo-pg-secure" grep -q "active (2 instances" "$WORK/dbtlsd.log"
SECCONN="host=secure.demo.dbtls.test hostaddr=127.0.0.1 port=$FRONT_PG dbname=app user=alice \
sslmode=verify-full sslrootcert=$WORK/secure-ca.pem"
PGPASSWORD=alice-demo-pw show psql -X -c '\conninfo' \
    "$SECCONN sslcert=$WORK/alice-secure/client-cert.pem sslkey=$WORK/alice-secure/client-key.pem"
expect_ok
expect_out "SSL connection (protocol: TLSv1.3"
say "(the same port, a different instance: its own certificate, client CA and ssl mode; the"
say " password is still checked by PostgreSQL, the certificate by demo-pg-secure's rules)"
PGPASSWORD=alice-demo-pw show psql -X -c 'SELECT 1' "$SECCONN"
expect_fail
expect_out "connection requires a valid client certificate"
PGPASSWORD=alice-demo-pw show psql -X -At -c "SELECT 'demo-pg lets alice in without one'" \
    "$PGCONN user=alice sslmode=verify-full sslrootcert=$WORK/server-ca.pem"
expect_ok
expect_out "without one"

step "Channel binding end to end: PostgreSQL serves the very certificate dbtlsd serves"
FRONT_PGB=$(free_port)
BRIEF=6 show dbtls instances create demo-pg-bound --engine postgres --engine-version 15 \
    --listen "127.0.0.1:$FRONT_PGB" --backend "localhost:$PGPORT" \
    --endpoint bound.demo.dbtls.test,localhost --ssl-mode ENCRYPTED_ONLY
expect_ok
mkdir -p "$WORK/pg/tls"
BRIEF=4 show dbtls instances export demo-pg-bound --dir "$WORK/pg/tls"
expect_ok
chown -R postgres:postgres "$WORK/pg/tls" 2>/dev/null || true
"${PSQL_ADMIN[@]}" -c "ALTER SYSTEM SET ssl = on" \
    -c "ALTER SYSTEM SET ssl_cert_file = '$WORK/pg/tls/server.crt'" \
    -c "ALTER SYSTEM SET ssl_key_file = '$WORK/pg/tls/server.key'" >/dev/null
echo "hostssl app alice 127.0.0.1/32 scram-sha-256" >>"$WORK/pg/data/pg_hba.conf"
"${PSQL_ADMIN[@]}" -c "SELECT pg_reload_conf()" >/dev/null
say "(PostgreSQL now has TLS of its own on 127.0.0.1:$PGPORT, with demo-pg-bound's certificate)"
show dbtls ssl server-ca-certs download --instance demo-pg-bound --out "$WORK/bound-ca.pem"
expect_ok
BRIEF=9 show dbtls instances patch demo-pg-bound --backend-tls-ca "$WORK/bound-ca.pem" --format json
expect_ok
expect_out '"backendTlsCa"'
BOUNDCONN="host=bound.demo.dbtls.test hostaddr=127.0.0.1 port=$FRONT_PGB dbname=app user=alice \
sslmode=verify-full sslrootcert=$WORK/bound-ca.pem channel_binding=require"
wait_for 10 "dbtlsd to load demo-pg-bound with TLS to the backend" \
    sh -c "PGPASSWORD=alice-demo-pw psql -X -At -c 'SELECT 1' '$BOUNDCONN' >/dev/null 2>&1"
PGPASSWORD=alice-demo-pw show psql -X -At -c \
    "SELECT 'PostgreSQL sees ssl=' || ssl || ' ' || version || ' from the front' FROM pg_stat_ssl WHERE pid = pg_backend_pid()" \
    "$BOUNDCONN"
expect_ok
expect_out "ssl=true TLSv1.3"
say "(channel_binding=require: psql bound its SCRAM login to the certificate dbtlsd showed it,"
say " and PostgreSQL checked that binding against its own certificate, the same one, so a man in"
say " the middle of the client's leg would fail it. With any other backend certificate a TLS-"
say " terminating front can only hide SCRAM-SHA-256-PLUS, and dbtlsd then does: docs/dbtlsd.md)"

# --- 6. MariaDB ----------------------------------------------------------------------------
step "Starting MariaDB 10.11 (no TLS of its own) as the mysql user"
MYPORT=$(free_port)
FRONT_MY=$(free_port)
mkdir -p "$WORK/my"
chown -R mysql:mysql "$WORK/my" 2>/dev/null || true
"${AS_MY[@]}" mariadb-install-db --no-defaults --datadir="$WORK/my/data" \
    --auth-root-authentication-method=normal --skip-test-db >"$WORK/my/install.log" 2>&1 ||
    { cat "$WORK/my/install.log"; fail "mariadb-install-db failed"; }
"${AS_MY[@]}" mariadbd --no-defaults --datadir="$WORK/my/data" --socket="$WORK/my/mysqld.sock" \
    --port="$MYPORT" --bind-address=127.0.0.1 --skip-ssl --skip-log-bin --skip-name-resolve \
    --pid-file="$WORK/my/mariadbd.pid" --log-error="$WORK/my/mariadbd.log" >"$WORK/my/mariadbd.out" 2>&1 &
started $!
wait_for 30 "MariaDB start" mariadb --no-defaults -uroot --socket="$WORK/my/mysqld.sock" -e 'SELECT 1'
mariadb --no-defaults -uroot --socket="$WORK/my/mysqld.sock" -e \
    "CREATE DATABASE app; CREATE USER 'alice'@'%' IDENTIFIED BY 'alice-demo-pw';
     GRANT ALL ON app.* TO 'alice'@'%';"
say "MariaDB $(mariadbd --version | awk '{print $3}') on 127.0.0.1:$MYPORT"

step "A MariaDB instance that requires TLS (ENCRYPTED_ONLY = require_secure_transport=ON)"
BRIEF=12 show dbtls instances create demo-my --engine mariadb --engine-version 10.11 \
    --listen "127.0.0.1:$FRONT_MY" --backend "127.0.0.1:$MYPORT" \
    --endpoint my.demo.dbtls.test,127.0.0.1 --ssl-mode ENCRYPTED_ONLY
expect_ok
show dbtls ssl server-ca-certs download --instance demo-my --out "$WORK/my-server-ca.pem"
expect_ok
wait_for 10 "dbtlsd listening for demo-my on 127.0.0.1:$FRONT_MY (picked up without a restart)" \
    bash -c "exec 3<>/dev/tcp/127.0.0.1/$FRONT_MY"
MYCLIENT=(mariadb --no-defaults --host=127.0.0.1 --port="$FRONT_MY" --protocol=TCP --user=alice
    --password=alice-demo-pw --connect-timeout=10 app)

step "The mariadb client with --ssl-verify-server-cert through dbtlsd"
show "${MYCLIENT[@]}" --ssl --ssl-ca="$WORK/my-server-ca.pem" --ssl-verify-server-cert \
    -e "status; SELECT current_user(), version()"
expect_ok
expect_out "Cipher in use is TLS_"
expect_out "alice@%"

step "A plaintext MariaDB connection is refused with MySQL's error 3159"
show "${MYCLIENT[@]}" --skip-ssl -e "SELECT 1"
expect_fail
expect_out "ERROR 3159 (HY000)"
expect_out "Connections using insecure transport are prohibited while --require_secure_transport=ON."

step "dbtls connections: the psql session (open since before the rotation) and a MariaDB one"
"${MYCLIENT[@]}" --ssl --ssl-ca="$WORK/my-server-ca.pem" --ssl-verify-server-cert \
    -e "SELECT SLEEP(10)" >/dev/null 2>&1 &
started $!
wait_for 10 "the MariaDB session to show in dbtls connections" \
    sh -c 'dbtls connections | grep -q "^demo-my .*alice.*TLSv1"'
show dbtls connections
expect_ok
expect_out "demo-pg"
expect_out "demo-my"
exec 3>&-

step "Done"
say "Everything this demo started is being stopped (dbtlsd, PostgreSQL, MariaDB)."
say "dbtlsd log:"
sed 's/^/    /' "$WORK/dbtlsd.log" | tail -n 20
