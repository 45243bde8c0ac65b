#!/usr/bin/env bash
# A mixed soak against a release `recloop serve` on SQLite: does memory stay flat?
#   - reads: recommendations (known and new users), similar and popular items, rotating over a
#     shuffled list, 8 connections, as fast as they are answered;
#   - writes: single events and batches of 20, each with a unique event_id, 4 connections each
#     pausing EVENT_DELAY_MS between requests (a bounded, steady ingest);
#   - the server's own periodic retraining (every RETRAIN_SECS when there are new events).
# The server's RSS is sampled every SAMPLE_SECS; at the end: RSS at start/end/max, request rates,
# the model versions trained. The model is ML-100K-sized (the train split imported first).
#
# READY_TIMEOUT (s, default 60): how long the server may take to answer.
#
#   scripts/soak.sh                              # 600 s
#   SOAK_SECS=60 TRAIN_CSV=/path/train.csv scripts/soak.sh
#   RETRAIN_SECS=0 EVENT_CONNECTIONS=0 scripts/soak.sh  # reads only, no training
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

TRAIN_CSV=${TRAIN_CSV:-../shared/data/ml100k-split/train.csv}
SOAK_SECS=${SOAK_SECS:-600}
SAMPLE_SECS=${SAMPLE_SECS:-30}
RETRAIN_SECS=${RETRAIN_SECS:-60}
EVENT_DELAY_MS=${EVENT_DELAY_MS:-20}
# 0 turns that half of the load off (to tell which one memory grows with).
READ_CONNECTIONS=${READ_CONNECTIONS:-8}
EVENT_CONNECTIONS=${EVENT_CONNECTIONS:-4}
[[ -r $TRAIN_CSV ]] || die "no training data at $TRAIN_CSV (set TRAIN_CSV)"

echo "== build"
build --bin recloop
BIN=$TARGET/release/recloop
need_wrk

export DATABASE_URL=sqlite://$WORK/recloop.db
echo "== an ML-100K-sized model from $TRAIN_CSV"
"$BIN" import "$TRAIN_CSV" 2>/dev/null
"$BIN" train 2>/dev/null | sed -n 1p

PORT=$(free_port)
URL=http://127.0.0.1:$PORT
start server "$URL/readyz" env RECLOOP_RETRAIN_INTERVAL_SECS="$RETRAIN_SECS" RECLOOP_RETRAIN_AFTER_EVENTS=0 \
    "$BIN" serve --bind "127.0.0.1:$PORT"
SERVER=$STARTED

# Users: the split's, plus 2,000 new ones who only appear through the soak's events. Items: the split's.
{ tail -n +2 "$TRAIN_CSV" | cut -d, -f1 | sort -u; seq -f 'soak-u%g' 2000; } >"$WORK/users.txt"
tail -n +2 "$TRAIN_CSV" | cut -d, -f2 | sort -u >"$WORK/items.txt"
{
    sed 's|.*|/v1/users/&/recommendations?n=10|' "$WORK/users.txt"
    sed 's|.*|/v1/items/&/similar?n=10|' "$WORK/items.txt"
    for _ in $(seq 500); do echo "/v1/popular?n=10"; done
} | shuf --random-source=<(yes) >"$WORK/reads.txt"
echo "reads rotate over $(wc -l <"$WORK/reads.txt") paths; events over $(wc -l <"$WORK/users.txt") users"

rss_mib() { awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$SERVER/status"; }
version() { curl -s "$URL/v1/model" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("version"))'; }

echo
echo "== soak: ${SOAK_SECS} s, RSS every ${SAMPLE_SECS} s"
LOADS=()
if ((READ_CONNECTIONS > 0)); then
    wrk -t1 -c"$READ_CONNECTIONS" -d"${SOAK_SECS}s" --timeout 10s --latency -s scripts/rotate-paths.lua \
        "$URL" -- "$WORK/reads.txt" >"$WORK/reads.out" 2>&1 &
    LOADS+=($!)
    track $!
fi
if ((EVENT_CONNECTIONS > 0)); then
    wrk -t1 -c"$EVENT_CONNECTIONS" -d"${SOAK_SECS}s" --timeout 30s -s scripts/soak-events.lua "$URL" \
        -- "$WORK/users.txt" "$WORK/items.txt" "$EVENT_DELAY_MS" >"$WORK/events.out" 2>&1 &
    LOADS+=($!)
    track $!
fi
loading() {
    for pid in "${LOADS[@]}"; do kill -0 "$pid" 2>/dev/null && return 0; done
    return 1
}
T0=$SECONDS
sample() {
    printf '%6d %10s %8s %10s\n' $((SECONDS - T0)) "$(rss_mib)" "$(version)" \
        "$(du -cm "$WORK"/recloop.db* | tail -1 | cut -f1)" | tee -a "$WORK/rss.txt"
}
printf '%6s %10s %8s %10s\n' "t (s)" "RSS (MiB)" "model" "db (MiB)" | tee "$WORK/rss.txt"
while loading; do
    sample
    for _ in $(seq "$SAMPLE_SECS"); do
        loading || break
        sleep 1
    done
done
sample
kill -0 "$SERVER" || { echo "the server died"; tail -40 "$WORK/server.log"; exit 1; }

echo
echo "== summary"
curl -s "$URL/v1/model/versions" >"$WORK/versions.json"
python3 - "$WORK" <<'EOF'
import json, sys
work = sys.argv[1]
def wrk(name):
    try:
        line = next(l for l in open(f"{work}/{name}.out") if l.startswith("WRK_JSON "))
    except FileNotFoundError:  # that half of the load was off
        return {"requests_per_s": 0, "events_per_s": 0, "p50_ms": 0, "p99_ms": 0, "non_2xx": 0, "socket_errors": 0}
    return json.loads(line[len("WRK_JSON "):])
rss = [float(l.split()[1]) for l in open(f"{work}/rss.txt").readlines()[1:]]
reads, events = wrk("reads"), wrk("events")
versions = json.load(open(f"{work}/versions.json"))["versions"]
print(f"RSS MiB: start {rss[0]:.1f}, end {rss[-1]:.1f}, max {max(rss):.1f} "
      f"(after the first sample: min {min(rss[1:] or rss):.1f})")
print(f"reads: {reads['requests_per_s']:.0f} req/s, p50 {reads['p50_ms']:.2f} ms, "
      f"p99 {reads['p99_ms']:.2f} ms, {reads['non_2xx']} non-2xx, {reads['socket_errors']} socket errors")
print(f"events: {events['requests_per_s']:.0f} req/s, ~{events['events_per_s']:.0f} events/s, "
      f"p99 {events['p99_ms']:.2f} ms, {events['non_2xx']} non-2xx, {events['socket_errors']} socket errors")
print(f"model versions: {len(versions)} ({sum(v['status'] == 'accepted' for v in versions)} accepted), "
      f"newest trained on {versions[0]['events']} events in {versions[0]['training_seconds']:.1f} s")
print("SOAK_JSON " + json.dumps({"rss_start_mib": rss[0], "rss_end_mib": rss[-1],
      "rss_max_mib": max(rss), "reads_per_s": reads["requests_per_s"],
      "event_requests_per_s": events["requests_per_s"], "events_per_s": events["events_per_s"],
      "versions": len(versions)}))
EOF
