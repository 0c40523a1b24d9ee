#!/bin/sh
# Installs everything dbtls needs to build, test, demo and benchmark, from Debian 12 packages.
# Called by `make demo` / `make test` (README) and by .ci/run. Idempotent; quiet when all is there.
set -eu

PKGS="build-essential meson ninja-build pkg-config clang libclang-rt-14-dev
libssl-dev openssl android-libboringssl-dev libsqlite3-dev sqlite3 libpq-dev libjansson-dev libmicrohttpd-dev libpcre2-dev
libcurl4-openssl-dev libgnutls28-dev curl postgresql-15 postgresql-client-15 mariadb-server mariadb-client
pgbouncer python3 python3-pytest python3-psycopg python3-pymysql python3-cryptography python3-prometheus-client python3-asyncpg
procps iproute2 util-linux systemd strace chromium openjdk-17-jdk-headless libpostgresql-jdbc-java libmariadb-java
golang-go golang-github-jackc-pgx-v4-dev golang-github-go-sql-driver-mysql-dev"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
echo "dbtls: installing Debian packages:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q >/dev/null
# policy-rc.d keeps Debian from starting the packaged servers: tests and the demo start their own.
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod 755 /usr/sbin/policy-rc.d
    trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get install -y -q --no-install-recommends $missing >/dev/null
