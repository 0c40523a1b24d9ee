#!/bin/sh
# Builds dbtls into build/ (optimized, for the demo and benchmarks) or, with --asan, into
# build-asan/ (AddressSanitizer + UndefinedBehaviorSanitizer, for the tests). Prints the build dir.
set -eu
cd "$(dirname "$0")/.."
dir=build
opts="--buildtype=debugoptimized"
if [ "${1:-}" = "--asan" ]; then
    dir=build-asan
    opts="--buildtype=debug -Db_sanitize=address,undefined -Db_lundef=false -Dwerror=true"
fi
if [ ! -f "$dir/build.ninja" ]; then
    meson setup "$dir" $opts >/dev/null
fi
ninja -C "$dir" >&2
echo "$dir"
