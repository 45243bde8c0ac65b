#!/usr/bin/env bash
# What `?explain=true` costs: GET /v1/users/{id}/recommendations?n=10 with and without it,
# rotating over every user of the ML-100K train split (imported and trained with this tree's
# release build), 64 connections, interleaved rounds on one server, after a warm-up that folds
# every user in once. Prints per round req/s, p50 and p99 of both, then the medians and the
# ratio of p99 (target: explained p99 <= 2x the plain one).
#
#   scripts/bench-explain.sh
#   ROUNDS=3 SECS=10 scripts/bench-explain.sh
set -euo pipefail
source "$(dirname "$0")/lib.sh"
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-10}
TRAIN_CSV=${TRAIN_CSV:-../shared/data/ml100k-split/train.csv}
need_wrk
new_tmpdir WORK
run cargo build --release --bin recloop
BIN=target/release/recloop
export DATABASE_URL=sqlite://$WORK/recloop.db RECLOOP_RETRAIN_INTERVAL_SECS=0 RECLOOP_RETRAIN_AFTER_EVENTS=0
run "$BIN" import "$TRAIN_CSV" 2>/dev/null
run "$BIN" train 2>/dev/null | sed -n 1p
tail -n +2 "$TRAIN_CSV" | cut -d, -f1 | sort -u | shuf --random-source=<(yes) \
    | sed 's|.*|/v1/users/&/recommendations?n=10|' >"$WORK/plain.txt"
sed 's|$|\&explain=true|' "$WORK/plain.txt" >"$WORK/explain.txt"
PORT=$(free_port)
RECLOOP_BIND=127.0.0.1:$PORT "$BIN" serve >"$WORK/server.log" 2>&1 &
SERVER=$!
track "$SERVER"
URL=http://127.0.0.1:$PORT
wait_ready "$URL/readyz" "$SERVER" "$WORK/server.log"
wrk -t2 -c64 -d3s -s scripts/rotate-paths.lua "$URL" -- "$WORK/plain.txt" >/dev/null
for r in $(seq "$ROUNDS"); do
    for kind in plain explain; do
        wrk -t2 -c64 -d"${SECS}s" --latency -s scripts/rotate-paths.lua "$URL" -- "$WORK/$kind.txt" \
            | grep WRK_JSON | sed "s/^WRK_JSON //" >"$WORK/$kind-$r.json"
        echo "round $r $kind: $(cat "$WORK/$kind-$r.json")"
    done
done
python3 - "$WORK" "$ROUNDS" <<'PY'
import json, statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
med = {}
for kind in ["plain", "explain"]:
    runs = [json.load(open(f"{work}/{kind}-{r}.json")) for r in range(1, rounds + 1)]
    med[kind] = {k: statistics.median(run[k] for run in runs) for k in ["requests_per_s", "p50_ms", "p99_ms"]}
    print(f"{kind:8} median req/s {med[kind]['requests_per_s']:9.0f}  p50 {med[kind]['p50_ms']:6.2f} ms  p99 {med[kind]['p99_ms']:6.2f} ms")
print(f"explained/plain: p99 x{med['explain']['p99_ms'] / med['plain']['p99_ms']:.2f}, "
      f"req/s x{med['explain']['requests_per_s'] / med['plain']['requests_per_s']:.2f}")
PY
