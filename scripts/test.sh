#!/bin/sh
# Runs every test of dbtls on a fresh Debian 12 machine: installs what is missing, builds with
# ASan/UBSan, runs the C unit tests and fuzz-corpus replays (meson test), then the integration
# tests against real PostgreSQL 15 and MariaDB servers with real clients (pytest), and the front
# tests again with dbtlsd's client TLS on BoringSSL (--tls-library boringssl); then, built
# with ThreadSanitizer, the C unit tests and the integration tests of the threaded parts (front
# workers + loader, concurrent admin writes, the shared store). Ends with one summary line
# "N passed, N failed". Extra arguments go to pytest (e.g. -k rotation).
set -u
cd "$(dirname "$0")/.."
./scripts/install-deps.sh || exit 1
dir=$(./scripts/build.sh --asan) || exit 1

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
meson test -C "$dir" --print-errorlogs --num-processes 2 >"$dir/meson-test.out" 2>&1
meson_rc=$?
tail -n 12 "$dir/meson-test.out"

DBTLS_BUILD="$PWD/$dir" /usr/bin/python3 -m pytest tests/integration -v -p no:cacheprovider \
    --junitxml="$dir/pytest.xml" "$@"
pytest_rc=$?

# The fronts once more with the client-facing TLS on BoringSSL: the same texts, refusals and
# reloads from the other library (dbtlsd reads DBTLS_TLS_LIBRARY as --tls-library's default).
DBTLS_TLS_LIBRARY=boringssl DBTLS_BUILD="$PWD/$dir" /usr/bin/python3 -m pytest \
    tests/integration/test_pg_sslmodes.py tests/integration/test_pg_front.py \
    tests/integration/test_pg_hostile.py tests/integration/test_pg_front_backend_tls.py \
    tests/integration/test_mysql_front.py tests/integration/test_mysql_tls_policy.py \
    tests/integration/test_cli_connections.py tests/integration/test_metrics.py \
    tests/integration/test_rotation_evidence.py tests/integration/test_sni.py \
    tests/integration/test_front_syscalls.py \
    -v -p no:cacheprovider --junitxml="$dir/pytest-boringssl.xml" "$@"
bpytest_rc=$?
[ $bpytest_rc -eq 5 ] && bpytest_rc=0 # extra arguments selected none of these

# ThreadSanitizer: a report makes the program exit 66, which fails its test
tdir=$(./scripts/build.sh --tsan) || exit 1
export TSAN_OPTIONS="halt_on_error=0:second_deadlock_stack=1"
meson test -C "$tdir" --suite unit --print-errorlogs --num-processes 2 >"$tdir/meson-test.out" 2>&1
tmeson_rc=$?
tail -n 12 "$tdir/meson-test.out"
DBTLS_BUILD="$PWD/$tdir" /usr/bin/python3 -m pytest tests/integration/test_pg_store.py \
    tests/integration/test_admin_concurrency.py -v -p no:cacheprovider \
    --junitxml="$tdir/pytest.xml" "$@"
tpytest_rc=$?
[ $tpytest_rc -eq 5 ] && tpytest_rc=0 # extra arguments selected none of these

/usr/bin/python3 scripts/summary.py "$dir/meson-logs/testlog.junit.xml" "$dir/pytest.xml" \
    "$dir/pytest-boringssl.xml" \
    "$tdir/meson-logs/testlog.junit.xml" "$tdir/pytest.xml"
[ $meson_rc -eq 0 ] && [ $pytest_rc -eq 0 ] && [ $bpytest_rc -eq 0 ] && [ $tmeson_rc -eq 0 ] &&
    [ $tpytest_rc -eq 0 ]
