#!/bin/sh
# Builds dbtls into build/ (optimized, for the demo and benchmarks), with --asan into build-asan/
# (AddressSanitizer + UndefinedBehaviorSanitizer, for the tests), or with --tsan into build-tsan/
# (ThreadSanitizer, for the tests of the threaded parts). Prints the build dir.
set -eu
cd "$(dirname "$0")/.."
dir=build
opts="--buildtype=debugoptimized"
if [ "${1:-}" = "--asan" ]; then
    dir=build-asan
    opts="--buildtype=debug -Db_sanitize=address,undefined -Db_lundef=false -Dwerror=true"
elif [ "${1:-}" = "--tsan" ]; then
    dir=build-tsan
    opts="--buildtype=debug -Db_sanitize=thread -Dwerror=true"
fi
if [ ! -f "$dir/build.ninja" ]; then
    meson setup "$dir" $opts >/dev/null
fi
ninja -C "$dir" >&2
echo "$dir"
