#!/usr/bin/env bash
# End-to-end benchmark of recloop over HTTP, on a fresh server with a throw-away SQLite database:
#   1. loop_bench: ingest the ML-100K train split, retrain, score every evaluated user (evaluation.md)
#   2. recommendations under load: 64 connections over every user, ~20 s (wrk + Lua)
#   3. batched ingest: 4 clients x 1,000-event batches, synthetic events with unique ids
#   4. single-event ingest: 64 clients, one event per request
# Every figure is printed under the command that produced it. About 90 s after the build.
#
# CARGO_TARGET_DIR is honoured (the binaries are looked for there); READY_TIMEOUT (s, default 60):
# how long the server may take to answer.
#
#   scripts/bench-loop.sh            # DATA_DIR defaults to ../shared/data/ml100k-split
#   LOAD_SECS=20 BATCH_SECS=20 SINGLE_SECS=10 scripts/bench-loop.sh
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
# Print a blank line and the command before running it: the figures below it are its output.
RUN_BLANK_LINE=1

DATA_DIR=${DATA_DIR:-../shared/data/ml100k-split}
LOAD_SECS=${LOAD_SECS:-20}
BATCH_SECS=${BATCH_SECS:-20}
SINGLE_SECS=${SINGLE_SECS:-10}

# Snapshot /metrics; `phase_end ROUTE` prints what the server saw since the last snapshot
# (server-side latency of ROUTE, group-commit batching), to split client figures into server time
# vs. everything else.
snapshot() { curl -s "$URL/metrics" >"$WORK/metrics.before"; }
phase_end() {
    curl -s "$URL/metrics" >"$WORK/metrics.after"
    echo "\$ scripts/metrics_delta.py <(/metrics before) <(/metrics after) '$1'"
    python3 scripts/metrics_delta.py "$WORK/metrics.before" "$WORK/metrics.after" "$1"
}

echo "== build"
build --bin recloop --example loop_bench
BIN=$TARGET/release/recloop
BENCH=$TARGET/release/examples/loop_bench

# Load generator: wrk with a Lua script rotating user ids.
need_wrk

PORT=$(free_port)
URL=http://127.0.0.1:$PORT

# BACKEND=postgres measures on PostgreSQL instead: run through scripts/with-postgres, which
# provides the server; a database of its own is made here (and goes with the cluster).
BACKEND=${BACKEND:-sqlite}
if [[ $BACKEND == postgres ]]; then
    : "${RECLOOP_TEST_POSTGRES_URL:?BACKEND=postgres needs scripts/with-postgres (or RECLOOP_TEST_POSTGRES_URL)}"
    DB=bench_$$
    psql -q "$RECLOOP_TEST_POSTGRES_URL" -c "CREATE DATABASE $DB"
    DB_URL=${RECLOOP_TEST_POSTGRES_URL%/*}/$DB
else
    DB_URL=sqlite://$WORK/recloop.db
fi

echo
echo "== server on $URL, database $DB_URL (log: $WORK/server.log)"
# No background retraining: it would compete for the 2 cores mid-measurement.
start server "$URL/healthz" env RECLOOP_RETRAIN_INTERVAL_SECS=0 RECLOOP_RETRAIN_AFTER_EVENTS=0 \
    "$BIN" serve --bind "127.0.0.1:$PORT" --database-url "$DB_URL"

echo
echo "== 1. the loop: ingest, retrain, quality over HTTP, sequential latency"
snapshot
run "$BENCH" --url "$URL" --train "$DATA_DIR/train.csv" --test "$DATA_DIR/test.csv" \
    --batch 1000 --concurrency 4 | tee "$WORK/loop.out"
phase_end /v1/events

echo
echo "== 2. recommendations under load: 64 connections, ${LOAD_SECS} s, rotating over every user"
# Every user of the split, shuffled (fixed seed); each request asks for the next one. After step 1
# every user's fold-in is cached, so this measures the warm path, as a steady shop would see it.
tail -n +2 "$DATA_DIR/train.csv" | cut -d, -f1 | sort -u \
    | shuf --random-source=<(yes) >"$WORK/users.txt"
echo "$(wc -l <"$WORK/users.txt") distinct users"
sed 's|.*|/v1/users/&/recommendations?n=10|' "$WORK/users.txt" >"$WORK/paths.txt"
snapshot
# 2 threads: the machine has 2 cores, and wrk shares them with the server.
run wrk -t2 -c64 -d"${LOAD_SECS}s" --latency -s scripts/rotate-paths.lua "$URL" \
    -- "$WORK/paths.txt" | tee "$WORK/wrk.out"
phase_end "/v1/users/{user_id}/recommendations"
# The floor of this machine: the same 64 connections on a route that does nothing. Whatever
# p99 this shows is scheduling (wrk and the server share the cores), not recloop's work.
run wrk -t2 -c64 -d10s --latency "$URL/healthz"

echo
echo "== 3. batched ingest: 4 clients x 1,000-event batches, ${BATCH_SECS} s, unique event ids"
# Synthetic events spread over 5,000 users, as a shop's traffic is: each batch touches ~1,000
# users, so each commit dirties many pages of the per-user index (the ML-100K train file, sorted
# by user, touches ~10 users per batch and is much cheaper to store).
snapshot
run "$BENCH" --url "$URL" --synthetic-seconds "$BATCH_SECS" --concurrency 4 --batch 1000 | tee "$WORK/batched.out"
phase_end /v1/events
if [[ $BACKEND == sqlite ]]; then run du -h "$WORK/recloop.db" "$WORK/recloop.db-wal"; fi

echo
echo "== 4. single-event ingest: 64 clients x 1 event per request, ${SINGLE_SECS} s"
snapshot
run "$BENCH" --url "$URL" --synthetic-seconds "$SINGLE_SECS" --concurrency 64 --batch 1 | tee "$WORK/single.out"
phase_end /v1/events

echo
echo "== summary (from the JSON lines above) vs. the targets"
python3 - "$WORK" <<'EOF'
import json, sys
def last_json(name, prefix=""):
    lines = [l[len(prefix):] for l in open(f"{sys.argv[1]}/{name}") if l.startswith(prefix + "{")]
    return json.loads(lines[-1])
loop, wrk = last_json("loop.out"), last_json("wrk.out", "WRK_JSON ")
batched, single = last_json("batched.out"), last_json("single.out")
rows = [
    ("NDCG@10 over HTTP (default settings)", loop["ndcg_at_10"], ">= 0.17", loop["ndcg_at_10"] >= 0.17),
    ("Recall@20 over HTTP", loop["recall_at_20"], "", None),
    ("HR@10 over HTTP", loop["hr_at_10"], "", None),
    ("train-split ingest, events/s (4 x 1,000)", loop["ingest_events_per_s"], "", None),
    ("training seconds (server's training_seconds)", loop["training_seconds"], "", None),
    ("sequential query p50 / p99 ms (cold)", f'{loop["query_p50_ms"]:.2f} / {loop["query_p99_ms"]:.2f}', "", None),
    ("recommendations req/s at 64 connections", wrk["requests_per_s"], "", None),
    ("recommendations p50 ms at 64 connections", wrk["p50_ms"], "", None),
    ("recommendations p99 ms at 64 connections", wrk["p99_ms"], "<= 10", wrk["p99_ms"] <= 10),
    ("batched ingest events/s (4 x 1,000, synthetic)", batched["events_per_s"], ">= 20000", batched["events_per_s"] >= 20000),
    ("  ... in its last 2 s window", batched["last_window_events_per_s"], ">= 20000", batched["last_window_events_per_s"] >= 20000),
    ("single-event ingest events/s (64 clients)", single["events_per_s"], "", None),
]
for name, value, target, ok in rows:
    if isinstance(value, float):
        value = f"{value:.4f}" if value < 1 else f"{value:.2f}" if value < 1000 else f"{value:.0f}"
    verdict = "" if ok is None else ("PASS" if ok else "MISS")
    print(f"{name:<48} {value:>14}  {target:<9} {verdict}")
EOF
