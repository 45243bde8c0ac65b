#!/usr/bin/env bash
# Serving near the limit, in one run on one machine, so the figures are comparable:
#   0. a bare axum server (examples/baseline.rs) answering a fixed body as large as a real
#      `?n=10` recommendations answer: the floor of HTTP + wrk + this machine;
#   1. GET /v1/users/{id}/recommendations?n=10 rotating over every user of an ML-100K-sized
#      model (the train split imported with `recloop import`, trained with `recloop train`);
#   2. GET /v1/items/{id}/similar?n=10 rotating over every item;
#   3. GET /v1/popular?n=10.
# Each phase: 64 connections, 2 wrk threads, a warm-up, then the measured run. Prints a table
# (req/s, p50, p99, ratio to the baseline, the server's CPU time per request) and the verdict on
# the targets: recommendations at
# >= 60% of the baseline's throughput, p99 <= 10 ms. About 2 minutes after the build.
#
# VARIANTS="ceiling no-impressions" adds a phase per named variant after 1: the same
# recommendations requests against a build of this tree with scripts/variants/NAME.patch applied,
# on the same database. They bound what is left to gain:
#   ceiling         the handler does no recommendation work at all (a fresh id and ten fixed
#                   items through the real router, middleware and JSON): the most any
#                   recommendations endpoint reaches on this stack and machine;
#   no-impressions  everything as usual except that responses are never written to the store.
# The variants build in target/variants (a full build the first time, then ~1 minute each).
#
#   scripts/bench-serving.sh
#   VARIANTS="ceiling no-impressions" scripts/bench-serving.sh
#   TRAIN_CSV=/path/to/train.csv SECS=15 WARMUP_SECS=5 scripts/bench-serving.sh
set -euo pipefail

cd "$(dirname "$0")/.."
TRAIN_CSV=${TRAIN_CSV:-../shared/data/ml100k-split/train.csv}
SECS=${SECS:-15}
WARMUP_SECS=${WARMUP_SECS:-5}
CONNECTIONS=${CONNECTIONS:-64}
[[ -r $TRAIN_CSV ]] || { echo "no training data at $TRAIN_CSV (set TRAIN_CSV)" >&2; exit 1; }

run() {
    echo "\$ $*"
    "$@"
}

echo "== build"
run cargo build --release --bin recloop --example baseline
TARGET=${CARGO_TARGET_DIR:-target}
BIN=$TARGET/release/recloop
BASELINE=$TARGET/release/examples/baseline

# wrk is a Debian package (seconds to install); `cargo install oha` compiles for many minutes.
if ! command -v wrk >/dev/null; then
    apt-get install -y wrk || { apt-get update && apt-get install -y wrk; }
fi

WORK=$(mktemp -d)
VARIANT_BINS=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK" "$VARIANT_BINS"
}
trap cleanup EXIT INT TERM

VARIANTS=${VARIANTS:-}
for variant in $VARIANTS; do
    echo "== build the variant $variant (scripts/variants/$variant.patch on a copy of this tree)"
    src=$VARIANT_BINS/$variant-src
    mkdir "$src"
    tar --exclude=./target --exclude=./.git -cf - . | tar -xf - -C "$src"
    (cd "$src" && patch -p1 --quiet <"scripts/variants/$variant.patch")
    run cargo build --release --bin recloop --manifest-path "$src/Cargo.toml" \
        --target-dir "$TARGET/variants"
    cp "$TARGET/variants/release/recloop" "$VARIANT_BINS/$variant"
    rm -rf "$src"
done

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_up() {
    for _ in $(seq 100); do
        curl -sf "$1" >/dev/null && return 0
        sleep 0.1
    done
    echo "nothing answers $1" >&2
    return 1
}
# start NAME READY_URL COMMAND...: runs COMMAND in the background with its output in
# $WORK/NAME.log, waits until READY_URL answers, and leaves its pid in STARTED.
start() {
    local name=$1 ready=$2
    shift 2
    "$@" >"$WORK/$name.log" 2>&1 &
    STARTED=$!
    PIDS+=("$STARTED")
    wait_up "$ready" || { cat "$WORK/$name.log"; exit 1; }
}

export DATABASE_URL=sqlite://$WORK/recloop.db
# No background training: it would compete for the 2 cores mid-measurement.
export RECLOOP_RETRAIN_INTERVAL_SECS=0 RECLOOP_RETRAIN_AFTER_EVENTS=0

echo
echo "== an ML-100K-sized model from $TRAIN_CSV"
run "$BIN" import "$TRAIN_CSV" 2>/dev/null
run "$BIN" train 2>/dev/null | sed -n 1p

PORT=$(free_port)
URL=http://127.0.0.1:$PORT
start server "$URL/readyz" "$BIN" serve --bind "127.0.0.1:$PORT"
SERVER_PID=$STARTED

# Every user and every item of the split, shuffled with a fixed seed.
tail -n +2 "$TRAIN_CSV" | cut -d, -f1 | sort -u | shuf --random-source=<(yes) \
    | sed 's|.*|/v1/users/&/recommendations?n=10|' >"$WORK/recommendations.txt"
tail -n +2 "$TRAIN_CSV" | cut -d, -f2 | sort -u | shuf --random-source=<(yes) \
    | sed 's|.*|/v1/items/&/similar?n=10|' >"$WORK/similar.txt"
echo "/v1/popular?n=10" >"$WORK/popular.txt"
echo "$(wc -l <"$WORK/recommendations.txt") users, $(wc -l <"$WORK/similar.txt") items"

# The baseline answers a real answer of the model just trained, byte for byte.
curl -sf "$URL$(head -1 "$WORK/recommendations.txt")" >"$WORK/body.json"
BASE_PORT=$(free_port)
start baseline "http://127.0.0.1:$BASE_PORT/" \
    "$BASELINE" --bind "127.0.0.1:$BASE_PORT" --body-file "$WORK/body.json"
BASELINE_PID=$STARTED
cat "$WORK/baseline.log"

# CPU ticks (user + system, all threads) a process has used so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# phase NAME URL PATHS PID: a warm-up (which also folds every user in once: the steady state of
# a shop whose users come back), then the measured run; its WRK_JSON line goes to NAME.out, and
# the server's CPU ticks over the run to NAME.cpu. CPU per request is the steadier figure on a
# shared machine: other processes lower req/s, hardly the work each request takes.
phase() {
    echo
    echo "== $1: $CONNECTIONS connections, ${WARMUP_SECS} s warm-up, ${SECS} s measured"
    wrk -t2 -c"$CONNECTIONS" -d"${WARMUP_SECS}s" -s scripts/rotate-paths.lua "$2" -- "$3" >/dev/null
    local before
    before=$(cpu_ticks "$4")
    run wrk -t2 -c"$CONNECTIONS" -d"${SECS}s" --latency -s scripts/rotate-paths.lua "$2" -- "$3" \
        | tee "$WORK/$1.out"
    echo $(($(cpu_ticks "$4") - before)) >"$WORK/$1.cpu"
}
# The baseline gets the same request paths as the recommendations (it answers any GET).
phase baseline "http://127.0.0.1:$BASE_PORT" "$WORK/recommendations.txt" "$BASELINE_PID"
phase recommendations "$URL" "$WORK/recommendations.txt" "$SERVER_PID"
for variant in $VARIANTS; do
    VARIANT_PORT=$(free_port)
    start "$variant" "http://127.0.0.1:$VARIANT_PORT/readyz" \
        "$VARIANT_BINS/$variant" serve --bind "127.0.0.1:$VARIANT_PORT"
    phase "$variant" "http://127.0.0.1:$VARIANT_PORT" "$WORK/recommendations.txt" "$STARTED"
    kill "$STARTED"
done
phase similar "$URL" "$WORK/similar.txt" "$SERVER_PID"
phase popular "$URL" "$WORK/popular.txt" "$SERVER_PID"

echo
echo "== summary ($(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg))"
python3 - "$WORK" "$(getconf CLK_TCK)" "$VARIANTS" <<'EOF'
import json, sys
work, hz = sys.argv[1], float(sys.argv[2])
def wrk(name):
    line = next(l for l in open(f"{work}/{name}.out") if l.startswith("WRK_JSON "))
    r = json.loads(line[len("WRK_JSON "):])
    ticks = float(open(f"{work}/{name}.cpu").read())
    r["cpu_us_per_request"] = ticks / hz * 1e6 / max(r["requests"], 1)
    return r
base = wrk("baseline")
print(f"{'endpoint':<16} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'vs baseline':>12} "
      f"{'server CPU/req':>15} {'errors':>7}")
rows = {}
variants = sys.argv[3].split()
for name in ["baseline", "recommendations", *variants, "similar", "popular"]:
    r = rows[name] = wrk(name)
    ratio = r["requests_per_s"] / base["requests_per_s"]
    print(f"{name:<16} {r['requests_per_s']:>9.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} "
          f"{ratio:>11.0%} {r['cpu_us_per_request']:>12.1f} µs {r['non_2xx'] + r['socket_errors']:>7}")
rec = rows["recommendations"]
ratio = rec["requests_per_s"] / base["requests_per_s"]
verdict = lambda ok: "PASS" if ok else "MISS"
print(f"recommendations throughput / baseline = {ratio:.2f} (target >= 0.60): {verdict(ratio >= 0.6)}")
print(f"recommendations p99 = {rec['p99_ms']:.2f} ms (target <= 10 ms): {verdict(rec['p99_ms'] <= 10)}")
print("SUMMARY_JSON " + json.dumps({k: {"rps": v["requests_per_s"], "p50_ms": v["p50_ms"],
      "p99_ms": v["p99_ms"], "cpu_us_per_request": round(v["cpu_us_per_request"], 2)}
      for k, v in rows.items()} | {"ratio": ratio}))
EOF
