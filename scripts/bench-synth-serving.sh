#!/usr/bin/env bash
# Recommendation latency on a shop-sized model: a synthetic log (`recloop synth`, 20,000 items
# by default), imported and trained, then GET /v1/users/{id}/recommendations?n=10 at 64
# connections over many distinct users (wrk + scripts/rotate-paths.lua). Prints req/s, p50, p99
# against the 25 ms target, and the ml100k-sized control: /healthz under the same load (what
# scheduling alone costs when wrk and the server share 2 cores).
#
# AB_REF=<commit> measures that commit's `recloop` (A, built in a worktree under target/ab, see
# scripts/lib.sh) against this tree's (B) in the same run: one synthetic log (made by B), imported
# and trained by each side into its own database, then ROUNDS rounds (default 2) of A's two loads
# and B's, each on a freshly started server (so every round starts from cold caches, as a single
# run does); the usual line after every side's run, then the median req/s, p99 and server CPU
# per request of A and B and B/A. READY_TIMEOUT (s, default 60): how long a server may take to
# answer (it loads the model first).
#
#   scripts/bench-synth-serving.sh
#   USERS=100000 ITEMS=20000 EVENTS=1000000 LOAD_SECS=20 scripts/bench-synth-serving.sh
#   AB_REF=6e02aa8 ROUNDS=3 scripts/bench-synth-serving.sh
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
RUN_BLANK_LINE=1

USERS=${USERS:-100000}
ITEMS=${ITEMS:-20000}
EVENTS=${EVENTS:-1000000}
LOAD_SECS=${LOAD_SECS:-20}

build --quiet --bin recloop
BIN=$TARGET/release/recloop
# What B is, as built (HEAD may move while the rounds run).
B_LABEL=$(ab_label)
need_wrk
if ab_enabled; then
    build_ref "$AB_REF" --quiet --bin recloop
    A_BIN=$REF_BIN_DIR/recloop
fi

export RECLOOP_RETRAIN_INTERVAL_SECS=0 RECLOOP_RETRAIN_AFTER_EVENTS=0

echo "== synthetic log: $USERS users, $ITEMS items, $EVENTS events"
run "$BIN" synth --users "$USERS" --items "$ITEMS" --events "$EVENTS" --seed 42 --out "$WORK/log.csv"

# prepare DIR BIN: the log imported and trained by BIN into DIR/recloop.db.
prepare() {
    mkdir -p "$1"
    export DATABASE_URL=sqlite://$1/recloop.db
    run /usr/bin/time -f "import: %e s, peak %M KB" "$2" import "$WORK/log.csv"
    run /usr/bin/time -f "train: %e s, peak %M KB" "$2" train
}
if ab_enabled; then
    echo
    echo "== A/B: A = $AB_REF ($A_BIN), B = $B_LABEL ($BIN), $ROUNDS rounds"
    echo "== A's database"
    prepare "$WORK/A" "$A_BIN"
    echo "== B's database"
    prepare "$WORK/B" "$BIN"
else
    prepare "$WORK" "$BIN"
fi
# Every user of the log, shuffled: each request is a different user (a cold cache entry).
cut -d, -f1 "$WORK/log.csv" | tail -n +2 | sort -u | shuf --random-source=<(yes) >"$WORK/users.txt"
rm "$WORK/log.csv"
sed 's|.*|/v1/users/&/recommendations?n=10|' "$WORK/users.txt" >"$WORK/paths.txt"

# load NAME PID WRK-ARGS...: a wrk run teed to $OUT/NAME.out, the server's CPU ticks over it
# to $OUT/NAME.ticks.
load() {
    local name=$1 pid=$2 before
    shift 2
    before=$(cpu_ticks "$pid")
    run wrk "$@" | tee "$OUT/$name.out"
    echo $(($(cpu_ticks "$pid") - before)) >"$OUT/$name.ticks"
}

# measure OUT BIN DB TAG: a fresh `BIN serve` on DB, both loads, the results in OUT.
measure() {
    OUT=$1
    local bin=$2 tag=$4 port url
    mkdir -p "$OUT"
    export DATABASE_URL=sqlite://$3
    port=$(free_port)
    url=http://127.0.0.1:$port
    start "server$tag" "$url/healthz" "$bin" serve --bind "127.0.0.1:$port"
    curl -sf "$url/v1/users/$(head -1 "$WORK/users.txt")/recommendations?n=10" >/dev/null

    echo
    echo "== recommendations, 64 connections, $(wc -l <"$WORK/users.txt") distinct users"
    load recommendations "$STARTED" -t2 -c64 -d"${LOAD_SECS}s" --latency -s scripts/rotate-paths.lua \
        "$url" -- "$WORK/paths.txt"
    echo
    echo "== control: /healthz under the same load (scheduling, not recommending)"
    load health "$STARTED" -t2 -c64 -d10s --latency "$url/healthz"
    stop "$STARTED"

    python3 - "$OUT/recommendations.out" <<'PY'
import json, sys
line = next(l for l in open(sys.argv[1]) if l.startswith("WRK_JSON "))
w = json.loads(line[len("WRK_JSON "):])
ok = "ok" if w["p99_ms"] <= 25 else "OVER TARGET"
print(f"\nrecommendations: {w['requests_per_s']:.0f} req/s, p50 {w['p50_ms']:.2f} ms, "
      f"p99 {w['p99_ms']:.2f} ms (target <= 25 ms: {ok}), non-2xx {w['non_2xx']}, "
      f"socket errors {w['socket_errors']}")
PY
}

if ! ab_enabled; then
    measure "$WORK" "$BIN" "$WORK/recloop.db" ""
    exit 0
fi

ab_step() {
    local bin=$BIN
    [[ $2 == A ]] && bin=$A_BIN
    measure "$WORK/ab/r$1/$2" "$bin" "$WORK/$2/recloop.db" "-r$1-$2"
}
ab_rounds ab_step "$A_BIN" "$BIN"
echo
echo "== A/B summary: A = $AB_REF, B = $B_LABEL; medians of $ROUNDS rounds ($USERS users, $ITEMS items, $EVENTS events, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg))"
ab_summary "$WORK/ab" recommendations health
