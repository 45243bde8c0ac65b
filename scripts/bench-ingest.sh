#!/usr/bin/env bash
# Ingest throughput of recloop over HTTP (issue 5, target 2), on a fresh server and a fresh
# database:
#   1. batched: BATCH_CONNS connections posting 1,000 synthetic events per request for
#      BATCH_SECS s; the server's accepted-event counter is read every WINDOW_SECS s, so the
#      rate per window shows whether it is sustained as the table grows, not just on average;
#   2. single-event: 64 connections, one event per request, for SINGLE_SECS s.
# Every response is an acknowledgement after a durable commit (the server's contract). Events
# look like a shop's (see scripts/ingest.lua): 200,000 users, 50,000 items, UUID-shaped unique
# event ids. Then a table of the figures against the targets.
#
#   scripts/bench-ingest.sh                                  # SQLite
#   scripts/with-postgres env BACKEND=postgres scripts/bench-ingest.sh
#   BATCH_SECS=20 SINGLE_SECS=10 BATCH_CONNS=4 scripts/bench-ingest.sh
set -euo pipefail

cd "$(dirname "$0")/.."
BACKEND=${BACKEND:-sqlite}
BATCH_SECS=${BATCH_SECS:-60}
WINDOW_SECS=${WINDOW_SECS:-10}
BATCH_CONNS=${BATCH_CONNS:-8}
SINGLE_SECS=${SINGLE_SECS:-20}
SINGLE_CONNS=${SINGLE_CONNS:-64}
USERS=${USERS:-200000}
ITEMS=${ITEMS:-50000}
# v4: random UUIDs as event ids (every insert lands at a random place in the unique index);
# v7: time-ordered ones (UUIDv7, ULID): new ids go to the end of the index.
EVENT_IDS=${EVENT_IDS:-v4}

run() {
    echo "\$ $*"
    "$@"
}

# BIN=path/to/recloop measures that binary instead (e.g. an older build, for a before/after).
if [[ -z ${BIN:-} ]]; then
    echo "== build"
    run cargo build --release --bin recloop
    BIN=${CARGO_TARGET_DIR:-target}/release/recloop
fi
if ! command -v wrk >/dev/null; then
    run apt-get install -y wrk
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

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT
if [[ $BACKEND == postgres ]]; then
    : "${RECLOOP_TEST_POSTGRES_URL:?BACKEND=postgres needs scripts/with-postgres (or RECLOOP_TEST_POSTGRES_URL)}"
    DB=bench_ingest_$$
    psql -q "$RECLOOP_TEST_POSTGRES_URL" -c "CREATE DATABASE $DB"
    DB_URL=${RECLOOP_TEST_POSTGRES_URL%/*}/$DB
else
    DB_URL=sqlite://$WORK/recloop.db
fi

# A server per phase, each on a fresh database: the single-event figure must not depend on
# how much the batched phase left in the table.
start_server() {
    if [[ $BACKEND == postgres ]]; then
        psql -q "$RECLOOP_TEST_POSTGRES_URL" -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
    else
        rm -f "$WORK"/recloop.db*
    fi
    # No background retraining: it would compete for the 2 cores mid-measurement.
    RECLOOP_RETRAIN_INTERVAL_SECS=0 RECLOOP_RETRAIN_AFTER_EVENTS=0 \
        "$BIN" serve --bind "127.0.0.1:$PORT" --database-url "$DB_URL" \
        >>"$WORK/server.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 100); do
        curl -sf "$URL/healthz" >/dev/null && return
        sleep 0.1
    done
    cat "$WORK/server.log"
    exit 1
}
stop_server() {
    kill "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
}

# The server's own count of committed events, every WINDOW_SECS s while the load runs.
sample_windows() {
    python3 - "$URL/metrics" "$1" "$WINDOW_SECS" <<'EOF'
import re, sys, time, urllib.request
url, secs, window = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
def accepted():
    text = urllib.request.urlopen(url).read().decode()
    m = re.search(r'^recloop_events_accepted_total (\S+)$', text, re.M)
    return float(m[1]) if m else 0.0
start, last = time.monotonic(), accepted()
t, rates = start, []
while t - start < secs - 0.5:
    t = min(t + window, start + secs)
    time.sleep(max(0.0, t - time.monotonic()))
    now = accepted()
    rates.append((now - last) / window)
    last = now
print("WINDOWS " + " ".join(f"{r:.0f}" for r in rates))
EOF
}

# CPU seconds (user + system) the server has used so far: on a shared machine the rate depends
# on what else runs, the CPU cost of an event much less.
# Bytes the server has handed to write(2) so far (WAL frames, checkpoints): what a durable
# commit costs the disk, and it does not depend on the load.
cpu_seconds() {
    awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$SERVER_PID/stat"
    awk '/^wchar/ {print $2}' "/proc/$SERVER_PID/io"
}

NONCE=$((RANDOM * 32768 + RANDOM))

echo
echo "== 1. batched: $BATCH_CONNS connections x 1,000 events/request, ${BATCH_SECS} s ($BACKEND, $EVENT_IDS event ids)"
start_server
sample_windows "$BATCH_SECS" >"$WORK/windows.out" &
SAMPLER=$!
run wrk -t2 -c"$BATCH_CONNS" -d"${BATCH_SECS}s" --timeout 30s -s scripts/ingest.lua "$URL" \
    -- 1000 "$NONCE" "$USERS" "$ITEMS" "$EVENT_IDS" | tee "$WORK/batched.out"
wait "$SAMPLER"
cat "$WORK/windows.out"
cpu_seconds >"$WORK/batched.cpu"
[[ $BACKEND == sqlite ]] && du -ch "$WORK"/recloop.db* | tail -1
stop_server

echo
echo "== 2. single-event: $SINGLE_CONNS connections x 1 event/request, ${SINGLE_SECS} s ($BACKEND)"
start_server
run wrk -t2 -c"$SINGLE_CONNS" -d"${SINGLE_SECS}s" --timeout 30s -s scripts/ingest.lua "$URL" \
    -- 1 "$((NONCE + 1))" "$USERS" "$ITEMS" "$EVENT_IDS" | tee "$WORK/single.out"
cpu_seconds >"$WORK/single.cpu"
stop_server

echo
echo "== summary ($BACKEND, $EVENT_IDS event ids, $USERS users, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg))"
python3 - "$WORK" "$WINDOW_SECS" "$BACKEND" <<'EOF'
import json, sys
work, window = sys.argv[1], sys.argv[2]
def wrk(name):
    line = [l for l in open(f"{work}/{name}") if l.startswith("WRK_JSON ")][-1]
    return json.loads(line[len("WRK_JSON "):])
b, s = wrk("batched.out"), wrk("single.out")
cpu = lambda name: float(open(f"{work}/{name}").read().split()[0])
written = lambda name: float(open(f"{work}/{name}").read().split()[1])
windows = [float(x) for x in open(f"{work}/windows.out").read().split()[1:]]
rows = [
    ("batched events/s, overall", b["accepted"] / b["seconds"], ">= 100000"),
    (f"batched events/s, slowest {window}-s window", min(windows), ">= 100000"),
    (f"batched events/s per {window}-s window", " ".join(f"{w/1000:.0f}k" for w in windows), ""),
    ("batched server CPU µs per event", f'{cpu("batched.cpu") * 1e6 / b["accepted"]:.1f}', ""),
    ("batched bytes the server wrote per event", f'{written("batched.cpu") / b["accepted"]:,.0f}'
     if sys.argv[3] == "sqlite" else "n/a (the database writes)", ""),
    ("batched request p50 / p99 ms", f'{b["p50_ms"]:.0f} / {b["p99_ms"]:.0f}', ""),
    ("single-event events/s", s["accepted"] / s["seconds"], ">= 5000"),
    ("single-event server CPU µs per event", f'{cpu("single.cpu") * 1e6 / s["accepted"]:.1f}', ""),
    ("single-event request p50 / p99 ms", f'{s["p50_ms"]:.1f} / {s["p99_ms"]:.1f}', ""),
    ("errors (non-2xx + socket), duplicates",
     f'{b["non_2xx"] + b["socket_errors"] + s["non_2xx"] + s["socket_errors"]}, '
     f'{b["duplicates"] + s["duplicates"]}', "0, 0"),
]
print(f"| {'figure':<42} | {'measured':>26} | {'target':<9} |")
print(f"|{'-'*44}|{'-'*28}|{'-'*11}|")
for name, value, target in rows:
    if isinstance(value, float):
        value = f"{value:,.0f}"
        ok = float(value.replace(",", "")) >= float(target[3:])
        target = f"{target} {'ok' if ok else 'MISS'}"
    print(f"| {name:<42} | {value:>26} | {target:<9} |")
EOF
