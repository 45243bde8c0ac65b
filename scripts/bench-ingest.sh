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
# BIN=path/to/recloop measures that binary instead of this tree's build.
# AB_REF=<commit> measures that commit's `recloop` (A, built in a worktree under target/ab, see
# scripts/lib.sh) against this tree's (B, or BIN) in the same run: ROUNDS rounds (default 2) of
# A's phases 1-2 and B's, each phase on a fresh server and database as always; the usual table
# after every side's run, then per phase the median events/s, p99 and server CPU per event of A
# and B and B/A. READY_TIMEOUT (s, default 60): how long a server may take to answer.
#
#   scripts/bench-ingest.sh                                  # SQLite
#   scripts/with-postgres env BACKEND=postgres scripts/bench-ingest.sh
#   BATCH_SECS=20 SINGLE_SECS=10 BATCH_CONNS=4 scripts/bench-ingest.sh
#   AB_REF=6e02aa8 BATCH_SECS=20 SINGLE_SECS=10 scripts/bench-ingest.sh
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

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

B_LABEL=${BIN:-}
if [[ -z ${BIN:-} ]]; then
    echo "== build"
    build --bin recloop
    BIN=$TARGET/release/recloop
    B_LABEL=$(ab_label)
fi
need_wrk
if ab_enabled; then
    build_ref "$AB_REF" --bin recloop
    A_BIN=$REF_BIN_DIR/recloop
fi

PORT=$(free_port)
URL=http://127.0.0.1:$PORT
if [[ $BACKEND == postgres ]]; then
    : "${RECLOOP_TEST_POSTGRES_URL:?BACKEND=postgres needs scripts/with-postgres (or RECLOOP_TEST_POSTGRES_URL)}"
    DB=bench_ingest_$$
    psql -q "$RECLOOP_TEST_POSTGRES_URL" -c "CREATE DATABASE $DB"
    DB_URL=${RECLOOP_TEST_POSTGRES_URL%/*}/$DB
else
    DB_URL=sqlite://$WORK/recloop.db
fi

# start_server BIN TAG: a server per phase, each on a fresh database: the single-event figure
# must not depend on how much the batched phase left in the table.
start_server() {
    if [[ $BACKEND == postgres ]]; then
        psql -q "$RECLOOP_TEST_POSTGRES_URL" -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
    else
        rm -f "$WORK"/recloop.db*
    fi
    # No background retraining: it would compete for the 2 cores mid-measurement.
    start "server$2" "$URL/healthz" env RECLOOP_RETRAIN_INTERVAL_SECS=0 RECLOOP_RETRAIN_AFTER_EVENTS=0 \
        "$1" serve --bind "127.0.0.1:$PORT" --database-url "$DB_URL"
    SERVER_PID=$STARTED
}

# The server's own count of committed events, every WINDOW_SECS s while the load runs.
sample_windows() {
    python3 - "$URL/metrics" "$1" "$WINDOW_SECS" <<'PY'
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
PY
}

# cost NAME: the server's CPU ticks (user + system) to $OUT/NAME.ticks: on a shared machine the
# rate depends on what else runs, the CPU cost of an event much less. And the bytes it has
# handed to write(2) (WAL frames, checkpoints) to $OUT/NAME.wchar: what a durable commit costs
# the disk, and it does not depend on the load. A fresh server per phase: both count from 0.
cost() {
    cpu_ticks "$SERVER_PID" >"$OUT/$1.ticks"
    awk '/^wchar/ {print $2}' "/proc/$SERVER_PID/io" >"$OUT/$1.wchar"
}

# measure OUT BIN TAG: phases 1 and 2 against BIN, the results in OUT.
measure() {
    OUT=$1
    local bin=$2 tag=$3 nonce sampler
    mkdir -p "$OUT"
    nonce=$((RANDOM * 32768 + RANDOM))

    echo
    echo "== 1. batched: $BATCH_CONNS connections x 1,000 events/request, ${BATCH_SECS} s ($BACKEND, $EVENT_IDS event ids)"
    start_server "$bin" "$tag"
    sample_windows "$BATCH_SECS" >"$OUT/windows.out" &
    sampler=$!
    track "$sampler"
    run wrk -t2 -c"$BATCH_CONNS" -d"${BATCH_SECS}s" --timeout 30s -s scripts/ingest.lua "$URL" \
        -- 1000 "$nonce" "$USERS" "$ITEMS" "$EVENT_IDS" | tee "$OUT/batched.out"
    wait "$sampler"
    untrack "$sampler"
    cat "$OUT/windows.out"
    cost batched
    if [[ $BACKEND == sqlite ]]; then du -ch "$WORK"/recloop.db* | tail -1; fi
    stop "$SERVER_PID"

    echo
    echo "== 2. single-event: $SINGLE_CONNS connections x 1 event/request, ${SINGLE_SECS} s ($BACKEND)"
    start_server "$bin" "$tag"
    run wrk -t2 -c"$SINGLE_CONNS" -d"${SINGLE_SECS}s" --timeout 30s -s scripts/ingest.lua "$URL" \
        -- 1 "$((nonce + 1))" "$USERS" "$ITEMS" "$EVENT_IDS" | tee "$OUT/single.out"
    cost single
    stop "$SERVER_PID"
}

# summary DIR [TITLE]: the table of one run.
summary() {
    echo
    echo "== summary${2:+ $2} ($BACKEND, $EVENT_IDS event ids, $USERS users, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg))"
    python3 - "$1" "$WINDOW_SECS" "$BACKEND" "$(getconf CLK_TCK)" <<'PY'
import json, sys
work, window, hz = sys.argv[1], sys.argv[2], float(sys.argv[4])
def wrk(name):
    line = [l for l in open(f"{work}/{name}") if l.startswith("WRK_JSON ")][-1]
    return json.loads(line[len("WRK_JSON "):])
b, s = wrk("batched.out"), wrk("single.out")
cpu = lambda name: float(open(f"{work}/{name}.ticks").read()) / hz
written = lambda name: float(open(f"{work}/{name}.wchar").read())
windows = [float(x) for x in open(f"{work}/windows.out").read().split()[1:]]
rows = [
    ("batched events/s, overall", b["accepted"] / b["seconds"], ">= 100000"),
    (f"batched events/s, slowest {window}-s window", min(windows), ">= 100000"),
    (f"batched events/s per {window}-s window", " ".join(f"{w/1000:.0f}k" for w in windows), ""),
    ("batched server CPU µs per event", f'{cpu("batched") * 1e6 / b["accepted"]:.1f}', ""),
    ("batched bytes the server wrote per event", f'{written("batched") / b["accepted"]:,.0f}'
     if sys.argv[3] == "sqlite" else "n/a (the database writes)", ""),
    ("batched request p50 / p99 ms", f'{b["p50_ms"]:.0f} / {b["p99_ms"]:.0f}', ""),
    ("single-event events/s", s["accepted"] / s["seconds"], ">= 5000"),
    ("single-event server CPU µs per event", f'{cpu("single") * 1e6 / s["accepted"]:.1f}', ""),
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
PY
}

if ! ab_enabled; then
    measure "$WORK" "$BIN" ""
    summary "$WORK"
    exit 0
fi

echo
echo "== A/B: A = $AB_REF ($A_BIN), B = $B_LABEL ($BIN), $ROUNDS rounds"
ab_step() {
    local bin=$BIN
    [[ $2 == A ]] && bin=$A_BIN
    measure "$WORK/ab/r$1/$2" "$bin" "-r$1-$2"
    summary "$WORK/ab/r$1/$2" "round $1, side $2"
}
ab_rounds ab_step "$A_BIN" "$BIN"
echo
echo "== A/B summary: A = $AB_REF, B = $B_LABEL; medians of $ROUNDS rounds ($BACKEND, $EVENT_IDS event ids, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg))"
ab_summary "$WORK/ab" batched single
