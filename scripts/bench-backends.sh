#!/usr/bin/env bash
# The same HTTP benchmark on SQLite and on PostgreSQL, one after the other in one run, so the
# figures are comparable (same machine, same load, same build):
#
#   scripts/with-postgres scripts/bench-backends.sh
set -euo pipefail
cd "$(dirname "$0")/.."
for backend in sqlite postgres; do
    echo
    echo "################ $backend"
    BACKEND=$backend scripts/bench-loop.sh 2>&1 | tee "/tmp/recloop-bench-$backend.out"
done
echo
for backend in sqlite postgres; do
    echo "################ summary: $backend"
    sed -n '/== summary/,$p' "/tmp/recloop-bench-$backend.out"
done
