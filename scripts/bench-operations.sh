#!/usr/bin/env bash
# The operations' figures on a `recloop synth` shop (20,000 items; SQLite): the batch export
# of every user's recommendations, a backup and a restore of the database, and erasures through
# the running service, at each of SIZES (1m: 1M events by 100k users; 10m: 10M by 1M users).
#
#   SIZES="1m 10m" scripts/bench-operations.sh
#
# Each size's log and database are kept in $OPS_DIR (default target/ops) and reused by the next
# run: the log is written once, imported once and trained once.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

build -p recloop-tools
BIN=$TARGET/release/recloop
DIR=${OPS_DIR:-$TARGET/ops}
mkdir -p "$DIR"
export RECLOOP_RETRAIN_INTERVAL_SECS=0 RECLOOP_RETRAIN_AFTER_EVENTS=0 RUST_LOG=warn
timed() { /usr/bin/time -f "$1: %e s wall, %M KB peak RSS" "${@:2}"; }

for size in ${SIZES:-1m 10m}; do
    case $size in
    1m) events=1000000 users=100000 ;;
    10m) events=10000000 users=1000000 ;;
    *) die "SIZES holds 1m and 10m, not $size" ;;
    esac
    db=$DIR/$size.db
    export DATABASE_URL=sqlite://$db
    echo "## $size: $events events, $users users, 20,000 items"
    [[ -s $DIR/$size.csv ]] || run "$BIN" synth --events "$events" --users "$users" \
        --items 20000 --seed 42 --end 1796000000 --out "$DIR/$size.csv"
    [[ -s $db ]] || timed import "$BIN" import "$DIR/$size.csv"
    if [[ $(sqlite3 "$db" 'SELECT COUNT(*) FROM model_versions') == 0 ]]; then
        timed train "$BIN" train
    fi
    timed export "$BIN" export-recommendations --out "$WORK/$size.jsonl" --n 10
    echo "lines: $(wc -l <"$WORK/$size.jsonl")"
    timed backup "$BIN" backup --out "$WORK/$size.backup"
    DATABASE_URL=sqlite://$WORK/$size-restored.db timed restore "$BIN" restore "$WORK/$size.backup"
    rm -f "$WORK/$size.backup" "$WORK/$size-restored.db"

    # Erasures one at a time through the running service, of users with histories.
    port=$(free_port)
    RECLOOP_BIND=127.0.0.1:$port start serve "http://127.0.0.1:$port/readyz" "$BIN" serve
    sqlite3 "$db" "SELECT user_id FROM user_keys ORDER BY user_key LIMIT ${ERASURES:-20} OFFSET 5000" |
        while read -r user; do
            curl -s -o /dev/null -w '%{http_code} %{time_total}\n' -X DELETE \
                "http://127.0.0.1:$port/v1/users/$user"
        done | sort -k2 -n | awk '{ t[NR] = $2; codes[$1]++ }
            END { printf "erase: %d users, %d answered 204, median %.1f ms, max %.1f ms\n",
                  NR, codes["204"], 1000 * t[int((NR + 1) / 2)], 1000 * t[NR] }'
    stop "$STARTED"
done
