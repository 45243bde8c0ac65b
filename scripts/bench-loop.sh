#!/usr/bin/env bash
# End-to-end benchmark of recloop over HTTP, on a fresh server with a throw-away SQLite database:
#   1. loop_bench: ingest the ML-100K train split, retrain, score every evaluated user (evaluation.md)
#   2. recommendations under load: 64 connections over every user, ~20 s (oha)
#   3. batched ingest: 4 clients x 1,000-event batches, synthetic events with unique ids
#   4. single-event ingest: 64 clients, one event per request
# Every figure is printed under the command that produced it. Takes about 2 minutes after the build.
#
#   scripts/bench-loop.sh            # DATA_DIR defaults to ../shared/data/ml100k-split
#   LOAD_SECS=20 INGEST_SECS=12 scripts/bench-loop.sh
set -euo pipefail

cd "$(dirname "$0")/.."
DATA_DIR=${DATA_DIR:-../shared/data/ml100k-split}
LOAD_SECS=${LOAD_SECS:-20}
INGEST_SECS=${INGEST_SECS:-12}

# Print a command, then run it: the figures below it are its output.
run() {
    echo
    echo "\$ $*"
    "$@"
}

# Group-commit histogram and /v1/events latency from the server's own /metrics, so a slow ingest
# can be split into "waiting for the single writer" vs "everything else".
server_metrics() {
    echo "\$ curl -s $URL/metrics | grep -E 'group_commit|events\"'"
    curl -s "$URL/metrics" | grep -E '^recloop_group_commit_requests_(sum|count)|^recloop_http_request_duration_seconds_(sum|count).*"/v1/events"' || true
}

echo "== build"
run cargo build --release --bin recloop --example loop_bench
BIN=target/release/recloop
BENCH=target/release/examples/loop_bench

if ! command -v oha >/dev/null; then
    run cargo install oha --locked
fi

WORK=$(mktemp -d)
SERVER_PID=
cleanup() {
    if [[ -n $SERVER_PID ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

# Ask the kernel for a free port (bind to 0), then hand it to the server.
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT

echo
echo "== server on $URL, database $WORK/recloop.db (log: $WORK/server.log)"
# No background retraining: it would compete for the 2 cores mid-measurement.
RECLOOP_RETRAIN_INTERVAL_SECS=0 RECLOOP_RETRAIN_AFTER_EVENTS=0 RUST_LOG=warn \
    "$BIN" serve --bind "127.0.0.1:$PORT" --database-url "sqlite://$WORK/recloop.db" \
    >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do
    curl -sf "$URL/healthz" >/dev/null && break
    sleep 0.1
done
curl -sf "$URL/healthz" >/dev/null || { cat "$WORK/server.log"; exit 1; }

echo
echo "== 1. the loop: ingest, retrain, quality over HTTP, sequential latency"
run "$BENCH" --url "$URL" --train "$DATA_DIR/train.csv" --test "$DATA_DIR/test.csv" \
    --batch 1000 --concurrency 4
server_metrics

echo
echo "== 2. recommendations under load: 64 connections, ${LOAD_SECS} s, rotating over every user"
# One URL per user, shuffled; oha cycles through the file, so consecutive requests hit
# different users (after the loop above every user's fold-in is cached: this is the warm path).
tail -n +2 "$DATA_DIR/train.csv" | cut -d, -f1 | sort -u | shuf --random-source=<(yes) \
    | sed "s|^|$URL/v1/users/|; s|\$|/recommendations?n=10|" >"$WORK/urls.txt"
echo "$(wc -l <"$WORK/urls.txt") distinct user URLs, e.g. $(head -1 "$WORK/urls.txt")"
run oha --no-tui -z "${LOAD_SECS}s" -c 64 --urls-from-file "$WORK/urls.txt" \
    --output-format json -o "$WORK/oha.json"
python3 - "$WORK/oha.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
s, p = r["summary"], r["latencyPercentiles"]
codes = r.get("statusCodeDistribution", {})
print(f"requests/s {s['requestsPerSec']:.0f}   p50 {p['p50']*1e3:.2f} ms   "
      f"p99 {p['p99']*1e3:.2f} ms   p99.9 {p['p99.9']*1e3:.2f} ms   statuses {codes}")
EOF

echo
echo "== 3. batched ingest: 4 clients x 1,000-event batches, ${INGEST_SECS} s, unique event ids"
run "$BENCH" --url "$URL" --synthetic-seconds "$INGEST_SECS" --concurrency 4 --batch 1000
server_metrics

echo
echo "== 4. single-event ingest: 64 clients x 1 event per request, ${INGEST_SECS} s"
run "$BENCH" --url "$URL" --synthetic-seconds "$INGEST_SECS" --concurrency 64 --batch 1
server_metrics
