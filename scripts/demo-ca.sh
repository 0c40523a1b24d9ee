#!/bin/bash
# The control-plane walkthrough: what a user of Cloud SQL's / RDS's SSL pages does, done locally
# with `dbtls`, printing each command and what it answers: init -> cas list -> create an
# instance -> download server-ca.pem -> create an upcoming server certificate -> rotate ->
# rollback -> client certificate -> bundles. Each step is checked with the openssl command-line
# tool; a step that does not give what a user should see stops with "demo-ca: FAILED: ..." (exit
# 1). Runs in a throwaway directory removed at exit (--keep leaves it).
#
# Usage: scripts/demo-ca.sh [--keep]   (DBTLS_BUILD=<build dir> selects the build; default: build
# the optimized one with scripts/build.sh). Called by scripts/demo.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
KEEP=0
[ "${1:-}" = "--keep" ] && KEEP=1

fail() { echo "demo-ca: FAILED: $*" >&2; exit 1; }
if [ -n "${DBTLS_BUILD:-}" ]; then
    BUILD=$DBTLS_BUILD
else
    BUILD=$PWD/$(./scripts/build.sh)
fi
BUILD=$(cd "$BUILD" && pwd) || fail "build directory $BUILD does not exist"
DBTLS_BIN=$BUILD/src/bin/dbtls

B=$'\033[1m'; N=$'\033[0m'
[ -t 1 ] || { B=""; N=""; }
fail() { echo "demo-ca: FAILED: $*" >&2; exit 1; }
say() { echo "${B}# $*${N}"; }
# Shows the command as a user would type it, then runs it; stderr (the sentences for people)
# shows too.
run() {
    echo "${B}\$ dbtls $*${N}"
    "$DBTLS_BIN" "$@" || fail "dbtls $* exited with $?"
}
# A command that must be refused: shows its one-line error.
refused() {
    echo "${B}\$ dbtls $*${N}"
    local rc=0
    "$DBTLS_BIN" "$@" || rc=$?
    [ $rc -eq 1 ] || fail "dbtls $* should exit 1 (refused), got $rc"
}
check() { # description, command...
    local what=$1; shift
    if out=$("$@" 2>&1); then
        echo "  ok: $what"
    else
        echo "$out" >&2
        fail "$what"
    fi
}

[ -x "$DBTLS_BIN" ] || fail "dbtls is not built: $DBTLS_BIN is missing"
command -v openssl >/dev/null || fail "openssl is not installed"

WORK=$(mktemp -d /tmp/dbtls-demo-ca-XXXXXX)
cleanup() { if [ $KEEP -eq 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi; }
trap cleanup EXIT
export DBTLS_STATE_DIR=$WORK/state
unset DBTLS_MASTER_KEY_COMMAND
cd "$WORK"
say "state directory: $DBTLS_STATE_DIR (DBTLS_STATE_DIR); working directory: $WORK"

say "1. Initialize: master key (0600), store, and the shared CAs (RDS-style G1 identifiers)"
run init
check "master.key is mode 600" test "$(stat -c %a "$DBTLS_STATE_DIR/master.key")" = 600

say "2. The shared CAs and the engine versions"
run cas list
run engines list --engine postgres

say "3. Create a PostgreSQL instance; its server certificate names the endpoints"
run instances create db1 --engine postgres --engine-version 15 --listen 127.0.0.1:6432 \
    --backend /var/run/postgresql/.s.PGSQL.5432 --endpoint db1.example.com,127.0.0.1 \
    --ssl-mode ENCRYPTED_ONLY
run instances list

say "4. Clients install the server CA certificates (what sslrootcert= points to)"
run ssl server-ca-certs download --instance db1 --out server-ca.pem
"$DBTLS_BIN" ssl server-certs list --instance db1 --format json |
    /usr/bin/python3 -c 'import json,sys; print([c for c in json.load(sys.stdin) if c["slot"]=="active"][0]["cert"], end="")' >active.pem
echo "${B}\$ openssl verify -CAfile server-ca.pem active-server-cert.pem${N}"
check "the server certificate verifies against server-ca.pem" openssl verify -CAfile server-ca.pem active.pem
openssl x509 -in active.pem -noout -subject -ext subjectAltName | sed 's/^/  /'

say "5. Rotation, Cloud SQL style: create an upcoming server certificate, then rotate"
refused ssl server-certs rotate --instance db1
run ssl server-certs create --instance db1
run ssl server-certs list --instance db1
run ssl server-certs rotate --instance db1
"$DBTLS_BIN" ssl server-certs list --instance db1 --format json |
    /usr/bin/python3 -c 'import json,sys; print([c for c in json.load(sys.stdin) if c["slot"]=="active"][0]["cert"], end="")' >rotated.pem
check "the new server certificate verifies with the server-ca.pem clients already have" \
    openssl verify -CAfile server-ca.pem rotated.pem

say "6. Something went wrong? Roll back to the previous certificate"
run ssl server-certs rollback --instance db1
run ssl server-certs list --instance db1
refused ssl server-certs rollback --instance db1

say "7. A client certificate for mutual TLS (the private key is written once, 0600, never stored)"
run ssl client-certs create app --instance db1 --out-dir app --pkcs12
ls -l app | sed 's/^/  /'
check "client-key.pem is mode 600" test "$(stat -c %a app/client-key.pem)" = 600
run instances export db1 --dir native
check "the client certificate verifies against the instance's client CA with its CRL" \
    openssl verify -CAfile native/root.crt -crl_check -CRLfile native/root.crl app/client-cert.pem
check "client.p12 opens with an empty password" \
    openssl pkcs12 -info -nokeys -passin pass: -in app/client.p12
run ssl client-certs list --instance db1
run ssl client-certs delete app --instance db1
rm -rf native
run instances export db1 --dir native
echo "${B}\$ openssl verify -crl_check ... app/client-cert.pem   (after delete)${N}"
if openssl verify -CAfile native/root.crt -crl_check -CRLfile native/root.crl \
    app/client-cert.pem 2>&1 | sed 's/^/  /'; then
    fail "a deleted client certificate still verifies"
fi
echo "  ok: the deleted certificate is revoked"

say "8. Per-instance CA mode: the instance has its own server CA, rotated the same way"
run instances create db2 --engine mariadb --listen 127.0.0.1:3307 --backend 127.0.0.1:3306 \
    --endpoint db2.example.com --ca-mode per-instance --ca dbtls-ca-rsa2048-g1
run ssl server-ca-certs create --instance db2
run ssl server-ca-certs download --instance db2 --out db2-ca.pem
run ssl server-ca-certs rotate --instance db2
"$DBTLS_BIN" ssl server-certs list --instance db2 --format json |
    /usr/bin/python3 -c 'import json,sys; print([c for c in json.load(sys.stdin) if c["slot"]=="active"][0]["cert"], end="")' >db2.pem
check "db2's new certificate verifies with the CA file downloaded before the rotation" \
    openssl verify -CAfile db2-ca.pem db2.pem

say "9. CA bundles, as RDS serves them"
run bundle --out global-bundle.pem
run bundle --format p7b --out global-bundle.p7b
echo "${B}\$ openssl pkcs7 -print_certs -inform DER -in global-bundle.p7b | grep subject${N}"
openssl pkcs7 -print_certs -inform DER -in global-bundle.p7b | grep '^subject' | sed 's/^/  /'
check "db1's server certificate verifies against the global bundle" \
    openssl verify -CAfile global-bundle.pem active.pem

say "10. The audit trail"
run events list

say "control-plane walkthrough done"
