#!/usr/bin/env bash
# Recommendation latency on a shop-sized model: a synthetic log (`recloop synth`, 20,000 items
# by default), imported and trained, then GET /v1/users/{id}/recommendations?n=10 at 64
# connections over many distinct users (wrk + scripts/rotate-paths.lua). Prints req/s, p50, p99
# against the 25 ms target, and the ml100k-sized control: /healthz under the same load (what
# scheduling alone costs when wrk and the server share 2 cores).
#
#   scripts/bench-synth-serving.sh
#   USERS=100000 ITEMS=20000 EVENTS=1000000 LOAD_SECS=20 scripts/bench-synth-serving.sh
set -euo pipefail
cd "$(dirname "$0")/.."
USERS=${USERS:-100000}
ITEMS=${ITEMS:-20000}
EVENTS=${EVENTS:-1000000}
LOAD_SECS=${LOAD_SECS:-20}
TARGET=${CARGO_TARGET_DIR:-target}

run() {
    echo
    echo "\$ $*"
    "$@"
}

run cargo build --release --quiet --bin recloop
BIN=$TARGET/release/recloop
command -v wrk >/dev/null || run apt-get install -y wrk

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

DB_URL=sqlite://$WORK/recloop.db
export DATABASE_URL=$DB_URL RECLOOP_RETRAIN_INTERVAL_SECS=0 RECLOOP_RETRAIN_AFTER_EVENTS=0

echo "== synthetic log: $USERS users, $ITEMS items, $EVENTS events"
run "$BIN" synth --users "$USERS" --items "$ITEMS" --events "$EVENTS" --seed 42 --out "$WORK/log.csv"
run /usr/bin/time -f "import: %e s, peak %M KB" "$BIN" import "$WORK/log.csv"
run /usr/bin/time -f "train: %e s, peak %M KB" "$BIN" train
# Every user of the log, shuffled: each request is a different user (a cold cache entry).
cut -d, -f1 "$WORK/log.csv" | tail -n +2 | sort -u | shuf --random-source=<(yes) >"$WORK/users.txt"
rm "$WORK/log.csv"

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT
"$BIN" serve --bind "127.0.0.1:$PORT" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
    curl -sf "$URL/healthz" >/dev/null && break
    sleep 0.2
done
curl -sf "$URL/healthz" >/dev/null || { cat "$WORK/server.log"; exit 1; }
curl -sf "$URL/v1/users/$(head -1 "$WORK/users.txt")/recommendations?n=10" >/dev/null

echo
echo "== recommendations, 64 connections, $(wc -l <"$WORK/users.txt") distinct users"
sed 's|.*|/v1/users/&/recommendations?n=10|' "$WORK/users.txt" >"$WORK/paths.txt"
run wrk -t2 -c64 -d"${LOAD_SECS}s" --latency -s scripts/rotate-paths.lua "$URL" \
    -- "$WORK/paths.txt" | tee "$WORK/wrk.out"
echo
echo "== control: /healthz under the same load (scheduling, not recommending)"
run wrk -t2 -c64 -d10s --latency "$URL/healthz" | tee "$WORK/health.out"

python3 - "$WORK/wrk.out" <<'PY'
import json, sys
line = next(l for l in open(sys.argv[1]) if l.startswith("WRK_JSON "))
w = json.loads(line[len("WRK_JSON "):])
ok = "ok" if w["p99_ms"] <= 25 else "OVER TARGET"
print(f"\nrecommendations: {w['requests_per_s']:.0f} req/s, p50 {w['p50_ms']:.2f} ms, "
      f"p99 {w['p99_ms']:.2f} ms (target <= 25 ms: {ok}), non-2xx {w['non_2xx']}, "
      f"socket errors {w['socket_errors']}")
PY
