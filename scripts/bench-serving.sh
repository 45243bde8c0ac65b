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
# AB_REF=<commit> measures that commit's build (A: recloop and the baseline, built in a worktree
# under target/ab, see scripts/lib.sh) against this tree's (B) in the same run: each side imports
# and trains its own database, then ROUNDS rounds (default 2) of A's phases 0-3 and B's, each on
# a freshly started server; the usual summary after every side's run, then per phase the median
# req/s, p99 and server CPU per request of A and B and B/A. Not with VARIANTS (they patch this
# tree only). READY_TIMEOUT (s, default 60): how long a server may take to answer.
#
#   scripts/bench-serving.sh
#   VARIANTS="ceiling no-impressions" scripts/bench-serving.sh
#   TRAIN_CSV=/path/to/train.csv SECS=15 WARMUP_SECS=5 scripts/bench-serving.sh
#   AB_REF=6e02aa8 ROUNDS=3 SECS=10 WARMUP_SECS=3 scripts/bench-serving.sh
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

TRAIN_CSV=${TRAIN_CSV:-../shared/data/ml100k-split/train.csv}
SECS=${SECS:-15}
WARMUP_SECS=${WARMUP_SECS:-5}
CONNECTIONS=${CONNECTIONS:-64}
VARIANTS=${VARIANTS:-}
[[ -r $TRAIN_CSV ]] || die "no training data at $TRAIN_CSV (set TRAIN_CSV)"
if ab_enabled && [[ -n $VARIANTS ]]; then
    die "VARIANTS and AB_REF do not combine: the variants patch this tree only"
fi

echo "== build"
build --bin recloop --example baseline
B_DIR=$TARGET/release
# What B is, as built (HEAD may move while the rounds run).
B_LABEL=$(ab_label)
need_wrk
if ab_enabled; then
    build_ref "$AB_REF" --bin recloop --example baseline
    A_DIR=$REF_BIN_DIR
fi

new_tmpdir VARIANT_BINS
for variant in $VARIANTS; do
    echo "== build the variant $variant (scripts/variants/$variant.patch on a copy of this tree)"
    src=$VARIANT_BINS/$variant-src
    mkdir "$src"
    tar --exclude=./target --exclude=./.git -cf - . | tar -xf - -C "$src"
    # --batch: a patch that no longer applies fails here instead of asking which file to patch.
    (cd "$src" && patch -p1 --quiet --batch <"scripts/variants/$variant.patch") \
        || die "scripts/variants/$variant.patch does not apply to this tree any more: update it"
    run cargo build --release --bin recloop --manifest-path "$src/Cargo.toml" \
        --target-dir "$TARGET/variants"
    cp "$TARGET/variants/release/recloop" "$VARIANT_BINS/$variant"
    rm -rf "$src"
done

# No background training: it would compete for the 2 cores mid-measurement.
export RECLOOP_RETRAIN_INTERVAL_SECS=0 RECLOOP_RETRAIN_AFTER_EVENTS=0

# prepare DIR BIN [SIDE]: DIR/recloop.db, the train split imported and trained by BIN.
prepare() {
    mkdir -p "$1"
    export DATABASE_URL=sqlite://$1/recloop.db
    echo
    echo "== an ML-100K-sized model from $TRAIN_CSV${3:+ (side $3)}"
    run "$2" import "$TRAIN_CSV" 2>/dev/null
    run "$2" train 2>/dev/null | sed -n 1p
}

# Every user and every item of the split, shuffled with a fixed seed.
paths() {
    tail -n +2 "$TRAIN_CSV" | cut -d, -f1 | sort -u | shuf --random-source=<(yes) \
        | sed 's|.*|/v1/users/&/recommendations?n=10|' >"$WORK/recommendations.txt"
    tail -n +2 "$TRAIN_CSV" | cut -d, -f2 | sort -u | shuf --random-source=<(yes) \
        | sed 's|.*|/v1/items/&/similar?n=10|' >"$WORK/similar.txt"
    echo "/v1/popular?n=10" >"$WORK/popular.txt"
    echo "$(wc -l <"$WORK/recommendations.txt") users, $(wc -l <"$WORK/similar.txt") items"
}

# phase NAME URL PATHS PID: a warm-up (which also folds every user in once: the steady state of
# a shop whose users come back), then the measured run; its WRK_JSON line goes to $OUT/NAME.out,
# and the server's CPU ticks over the run to $OUT/NAME.ticks. CPU per request is the steadier
# figure on a shared machine: other processes lower req/s, hardly the work each request takes.
phase() {
    echo
    echo "== $1: $CONNECTIONS connections, ${WARMUP_SECS} s warm-up, ${SECS} s measured"
    wrk -t2 -c"$CONNECTIONS" -d"${WARMUP_SECS}s" -s scripts/rotate-paths.lua "$2" -- "$3" >/dev/null
    local before
    before=$(cpu_ticks "$4")
    run wrk -t2 -c"$CONNECTIONS" -d"${SECS}s" --latency -s scripts/rotate-paths.lua "$2" -- "$3" \
        | tee "$OUT/$1.out"
    echo $(($(cpu_ticks "$4") - before)) >"$OUT/$1.ticks"
}

# measure OUT BIN BASELINE DB TAG: phases 0-3 (and the variants) against a fresh `BIN serve` on
# DB and a fresh BASELINE; the results in OUT, the logs in $WORK/*TAG.log.
measure() {
    OUT=$1
    local bin=$2 baseline=$3 tag=$5 port url base_port server_pid baseline_pid variant
    mkdir -p "$OUT"
    export DATABASE_URL=sqlite://$4
    port=$(free_port)
    url=http://127.0.0.1:$port
    start "server$tag" "$url/readyz" "$bin" serve --bind "127.0.0.1:$port"
    server_pid=$STARTED

    # The baseline answers a real answer of the model just trained, byte for byte.
    curl -sf "$url$(head -1 "$WORK/recommendations.txt")" >"$OUT/body.json"
    base_port=$(free_port)
    start "baseline$tag" "http://127.0.0.1:$base_port/" \
        "$baseline" --bind "127.0.0.1:$base_port" --body-file "$OUT/body.json"
    baseline_pid=$STARTED
    cat "$WORK/baseline$tag.log"

    # The baseline gets the same request paths as the recommendations (it answers any GET).
    phase baseline "http://127.0.0.1:$base_port" "$WORK/recommendations.txt" "$baseline_pid"
    phase recommendations "$url" "$WORK/recommendations.txt" "$server_pid"
    for variant in $VARIANTS; do
        port=$(free_port)
        start "$variant$tag" "http://127.0.0.1:$port/readyz" \
            "$VARIANT_BINS/$variant" serve --bind "127.0.0.1:$port"
        phase "$variant" "http://127.0.0.1:$port" "$WORK/recommendations.txt" "$STARTED"
        stop "$STARTED"
    done
    phase similar "$url" "$WORK/similar.txt" "$server_pid"
    phase popular "$url" "$WORK/popular.txt" "$server_pid"
    stop "$server_pid"
    stop "$baseline_pid"
}

# summary DIR [TITLE]: the table of one run's phases.
summary() {
    echo
    echo "== summary${2:+ $2} ($(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg))"
    python3 - "$1" "$(getconf CLK_TCK)" "$VARIANTS" <<'PY'
import json, sys
work, hz = sys.argv[1], float(sys.argv[2])
def wrk(name):
    line = next(l for l in open(f"{work}/{name}.out") if l.startswith("WRK_JSON "))
    r = json.loads(line[len("WRK_JSON "):])
    ticks = float(open(f"{work}/{name}.ticks").read())
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
PY
}

if ! ab_enabled; then
    prepare "$WORK" "$B_DIR/recloop"
    paths
    measure "$WORK" "$B_DIR/recloop" "$B_DIR/examples/baseline" "$WORK/recloop.db" ""
    summary "$WORK"
    exit 0
fi

echo
echo "== A/B: A = $AB_REF ($A_DIR), B = $B_LABEL ($B_DIR), $ROUNDS rounds"
prepare "$WORK/A" "$A_DIR/recloop" A
prepare "$WORK/B" "$B_DIR/recloop" B
paths
ab_step() {
    local dir=$A_DIR
    [[ $2 == B ]] && dir=$B_DIR
    measure "$WORK/ab/r$1/$2" "$dir/recloop" "$dir/examples/baseline" \
        "$WORK/$2/recloop.db" "-r$1-$2"
    summary "$WORK/ab/r$1/$2" "round $1, side $2"
}
ab_rounds ab_step "$A_DIR" "$B_DIR"
echo
echo "== A/B summary: A = $AB_REF, B = $B_LABEL; medians of $ROUNDS rounds ($(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg))"
ab_summary "$WORK/ab" baseline recommendations similar popular
