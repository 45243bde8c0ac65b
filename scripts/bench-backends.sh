#!/usr/bin/env bash
# The same HTTP benchmark on SQLite and on PostgreSQL, one after the other in one run, so the
# figures are comparable (same machine, same load, same build): scripts/bench-loop.sh twice
# (its variables apply to both runs), each run's output also in /tmp/recloop-bench-BACKEND.out.
#
#   scripts/with-postgres scripts/bench-backends.sh
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
# Before the SQLite run, not after it: the PostgreSQL half needs scripts/with-postgres.
: "${RECLOOP_TEST_POSTGRES_URL:?run through scripts/with-postgres (or set RECLOOP_TEST_POSTGRES_URL)}"

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
