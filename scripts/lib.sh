# shellcheck shell=bash
# The shared part of the bench and soak scripts: sourced, never run. One copy of what each
# script used to repeat (build, free port, start and wait until ready, cleanup), plus the A/B
# facility (AB_REF) that measures another commit's binary in the same run.
#
#   source "$(dirname "$0")/lib.sh"      # after `set -euo pipefail`
#
# Sourcing it: cds to the repository root (every path below is relative to it, as the scripts'
# were), sets ROOT, TARGET (CARGO_TARGET_DIR or target), WORK (a fresh temporary directory) and
# installs the one cleanup trap (kills every process started or tracked here, removes every
# temporary directory and A/B worktree).
#
# Functions:
#   run CMD...                  print "$ CMD", then run it (RUN_BLANK_LINE=1: a blank line first)
#   die MESSAGE...              the message on stderr, exit 1
#   build [--profile P] ARGS... cargo build --release (or --profile P) ARGS, into $TARGET
#   need_wrk                    apt-get install wrk when it is missing
#   free_port                   a free TCP port on 127.0.0.1
#   new_tmpdir VAR              a further temporary directory in $VAR, removed on exit
#   track PID                   have the cleanup kill PID (a process started with `&`)
#   untrack PID                 not any more (after the script's own `wait PID`)
#   start NAME URL CMD...       CMD in the background, output in $WORK/NAME.log, pid in STARTED,
#                               returns once URL answers (or exits showing the log's tail)
#   wait_ready URL PID LOG NAME poll URL until it answers; READY_TIMEOUT s (default 60)
#   stop PID                    TERM it and wait for it (KILL after STOP_TIMEOUT s, default 10)
#   cpu_ticks PID               CPU ticks (user + system, all threads) PID has used so far
#   build_ref REF ARGS...       build REF's cargo targets ARGS in a worktree (A/B, below)
#   ab_enabled                  true when AB_REF is set
#   ab_label                    what B is: this tree's HEAD, "+ changes" when it is dirty
#   ab_summary DIR PHASE...     the A/B table of DIR/r<round>/<A|B>/<phase>.out
#
# A/B: with AB_REF=<commit>, bench-serving.sh, bench-synth-serving.sh and bench-ingest.sh build
# the same targets of that commit too (side A; this tree is side B) and measure both in the same
# run, interleaved: round 1 A then B, round 2 A then B, ... (ROUNDS, default 2). On a noisy shared
# machine only figures taken side by side compare. The ref builds in a git worktree at
# target/ab/<hash>/src with its own CARGO_TARGET_DIR target/ab/target (so it never waits on, nor
# invalidates, the main build); its binaries are copied to target/ab/<hash>/release and reused by
# later runs; the worktree is removed on exit.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1
# Relative to ROOT, like the scripts always had it: cargo resolves a relative CARGO_TARGET_DIR
# against the directory it runs in, which is ROOT.
# shellcheck disable=SC2034 # used by the scripts that source this
TARGET=${CARGO_TARGET_DIR:-target}
ROUNDS=${ROUNDS:-2}
AB_REF=${AB_REF:-}
RUN_BLANK_LINE=${RUN_BLANK_LINE:-0}

LIB_PIDS=()
LIB_TMPDIRS=()
LIB_WORKTREES=()

run() {
    if [[ $RUN_BLANK_LINE == 1 ]]; then echo; fi
    echo "\$ $*"
    "$@"
}

die() {
    echo "$*" >&2
    exit 1
}

# --profile P instead of --release (schemathesis.sh builds the test profile `cargo test` made).
build() {
    if [[ ${1:-} == --profile ]]; then
        run cargo build "$@"
    else
        run cargo build --release "$@"
    fi
}

# wrk is a Debian package (seconds to install); `cargo install oha` compiles for many minutes.
need_wrk() {
    command -v wrk >/dev/null && return 0
    run apt-get install -y wrk || { apt-get update && apt-get install -y wrk; }
}

# Bind port 0 and let the kernel choose; the server binds it a moment later (a small race, but
# nothing else on this machine grabs loopback ports that fast).
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# A variable, not $(...): a command substitution's subshell could not register the directory.
new_tmpdir() {
    local dir
    dir=$(mktemp -d)
    LIB_TMPDIRS+=("$dir")
    printf -v "$1" %s "$dir"
}

track() {
    LIB_PIDS+=("$1")
}

# After a `wait PID` of the script's own: the cleanup must not kill another process that reuses
# the pid later.
untrack() {
    local kept=() p
    for p in "${LIB_PIDS[@]}"; do
        [[ $p == "$1" ]] || kept+=("$p")
    done
    LIB_PIDS=("${kept[@]}")
}

# Polls with a 1-s curl timeout so that a wedged server cannot hang the poll itself. Fails with
# the log's tail when the process dies first or the time runs out: the log says why.
wait_ready() {
    local url=$1 pid=$2 log=$3 name=${4:-server} deadline=$((SECONDS + ${READY_TIMEOUT:-60}))
    until curl -sf --max-time 1 "$url" >/dev/null 2>&1; do
        if ! kill -0 "$pid" 2>/dev/null; then
            local status=0
            wait "$pid" 2>/dev/null || status=$?
            echo "$name (pid $pid) exited with status $status before $url answered; the end of $log:" >&2
            tail -n 40 "$log" >&2
            return 1
        fi
        if ((SECONDS >= deadline)); then
            echo "$name (pid $pid): nothing answers $url after ${READY_TIMEOUT:-60} s; the end of $log:" >&2
            tail -n 40 "$log" >&2
            return 1
        fi
        sleep 0.1
    done
}

# Environment for CMD: `start NAME URL env VAR=value... BINARY ARGS...` (env execs, so the pid is
# the server's own).
start() {
    local name=$1 url=$2
    shift 2
    "$@" >>"$WORK/$name.log" 2>&1 &
    STARTED=$!
    track "$STARTED"
    wait_ready "$url" "$STARTED" "$WORK/$name.log" "$name" || exit 1
}

# Graceful first (the server drains its connections and flushes), then KILL: a cleanup must end.
stop() {
    local pid=$1 i
    kill "$pid" 2>/dev/null || true
    for ((i = 0; i < ${STOP_TIMEOUT:-10} * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    untrack "$pid"
}

cpu_ticks() {
    awk '{print $14 + $15}' "/proc/$1/stat"
}

# Everything here must run whatever failed before: no command may stop it (set -e is still on).
lib_cleanup() {
    local pid dir
    for pid in "${LIB_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${LIB_PIDS[@]}"; do
        stop "$pid"
    done
    for dir in "${LIB_WORKTREES[@]}"; do
        git -C "$ROOT" worktree remove --force "$dir" 2>/dev/null || rm -rf "$dir"
    done
    if ((${#LIB_WORKTREES[@]})); then git -C "$ROOT" worktree prune 2>/dev/null || true; fi
    for dir in "${LIB_TMPDIRS[@]}"; do
        rm -rf "$dir"
    done
}
# INT/TERM exit (which runs the EXIT trap once): a trap that only cleaned up would let the
# script carry on after Ctrl-C.
trap lib_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

new_tmpdir WORK

ab_enabled() {
    [[ -n $AB_REF ]]
}

ab_label() {
    local head
    head=$(git -C "$ROOT" rev-parse --short HEAD)
    if [[ -n $(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null) ]]; then
        echo "this tree ($head + uncommitted changes)"
    else
        echo "this tree ($head)"
    fi
}

# build_ref REF [--bin NAME | --example NAME | other cargo args]...: REF's binaries, in
# REF_BIN_DIR (target/ab/<hash>/release: recloop, examples/baseline, ...); REF_COMMIT is the full
# hash. Always `--bin recloop`, run at the workspace root: it finds the binary whether it lives
# in the root package or in a workspace member.
build_ref() {
    local ref=$1
    shift
    local commit short dir
    commit=$(git -C "$ROOT" rev-parse --verify --quiet "$ref^{commit}") \
        || die "AB_REF=$ref: not a commit of this repository"
    short=$(git -C "$ROOT" rev-parse --short=10 "$commit")
    dir=$ROOT/target/ab/$short
    # shellcheck disable=SC2034 # for the caller
    REF_COMMIT=$commit
    REF_BIN_DIR=target/ab/$short/release

    # The artifacts the arguments name: kept from an earlier run, a commit's build is reused.
    local artifacts=() args=("$@") i missing=0 a
    for ((i = 0; i < ${#args[@]}; i++)); do
        case ${args[i]} in
            --bin) artifacts+=("${args[i + 1]}") ;;
            --example) artifacts+=("examples/${args[i + 1]}") ;;
        esac
    done
    for a in "${artifacts[@]}"; do
        [[ -x $dir/release/$a ]] || missing=1
    done
    if ((missing == 0)); then
        echo "== A: $short's build kept in $REF_BIN_DIR (rm -r target/ab/$short to rebuild)"
        return 0
    fi

    echo "== A: build $short in a worktree (target/ab/$short/src, CARGO_TARGET_DIR=target/ab/target)"
    # A worktree left by a killed run would make `worktree add` refuse.
    git -C "$ROOT" worktree remove --force "$dir/src" 2>/dev/null || rm -rf "$dir/src"
    git -C "$ROOT" worktree prune
    mkdir -p "$dir"
    LIB_WORKTREES+=("$dir/src")
    git -C "$ROOT" worktree add --detach --quiet "$dir/src" "$commit"
    # The worktree sits inside this repository: when this tree's Cargo.toml is a workspace and
    # REF's is a lone package, cargo would take REF for a stray member of ours and refuse. An
    # empty [workspace] table makes REF its own root and changes nothing else.
    if ! grep -q '^\[workspace\]' "$dir/src/Cargo.toml"; then
        printf '\n[workspace]\n' >>"$dir/src/Cargo.toml"
    fi
    (cd "$dir/src" && CARGO_TARGET_DIR=$ROOT/target/ab/target run cargo build --release "$@")
    for a in "${artifacts[@]}"; do
        mkdir -p "$(dirname "$dir/release/$a")"
        cp "$ROOT/target/ab/target/release/$a" "$dir/release/$a"
    done
}

# ab_rounds STEP A_DESC B_DESC: the interleaved rounds, side A then side B in each of ROUNDS, so
# that both sides meet the machine's same moods; `STEP ROUND SIDE` measures one side.
ab_rounds() {
    local step=$1 round side desc
    for round in $(seq "$ROUNDS"); do
        for side in A B; do
            desc=$2
            [[ $side == B ]] && desc=$3
            echo
            echo "######## round $round/$ROUNDS, side $side ($desc)"
            "$step" "$round" "$side"
        done
    done
}

# ab_summary DIR PHASE...: reads DIR/r<N>/<A|B>/<PHASE>.out (the WRK_JSON line of the run, or
# wrk's own text when it ran without such a Lua script) and,
# when present, <PHASE>.ticks (the server's CPU ticks over it); prints per phase the median over
# the rounds of each side, every round's figure, and B/A. Throughput is events/s where the run
# counts events (ingest), requests/s otherwise. A machine-readable AB_JSON line closes it.
ab_summary() {
    local dir=$1
    shift
    python3 - "$dir" "$(getconf CLK_TCK)" "$@" <<'EOF'
import json, os, re, statistics, sys
root, hz, phases = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
def wrk_figures(text):
    lines = [l for l in text.splitlines() if l.startswith("WRK_JSON ")]
    if lines:
        return json.loads(lines[-1][len("WRK_JSON "):])
    # A run without a Lua script that prints WRK_JSON (a plain URL): wrk's own text.
    unit = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s|m)$", text, re.M)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    return {"requests": int(re.search(r"(\d+) requests in", text)[1]),
            "requests_per_s": float(re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)[1]),
            "p99_ms": float(p99[1]) * unit[p99[2]],
            "non_2xx": int(non_2xx[1]) if non_2xx else 0,
            "socket_errors": sum(map(int, socket.groups())) if socket else 0}
rounds = sorted((d for d in os.listdir(root) if d.startswith("r")), key=lambda d: int(d[1:]))
def figures(side, phase):
    out = []
    for r in rounds:
        path = f"{root}/{r}/{side}/{phase}.out"
        if not os.path.exists(path):
            continue
        w = wrk_figures(open(path).read())
        if "accepted" in w:
            unit, tput, count = "ev/s", w["accepted"] / w["seconds"], w["accepted"]
        else:
            unit, tput, count = "req/s", w["requests_per_s"], w["requests"]
        cpu = None
        if os.path.exists(f"{root}/{r}/{side}/{phase}.ticks"):
            ticks = float(open(f"{root}/{r}/{side}/{phase}.ticks").read())
            cpu = ticks / hz * 1e6 / max(count, 1)
        out.append({"unit": unit, "tput": tput, "p99": w["p99_ms"], "cpu": cpu,
                    "errors": w["non_2xx"] + w["socket_errors"]})
    return out
med = lambda xs: statistics.median(xs) if xs else float("nan")
ratio = lambda b, a: b / a if a else float("nan")
print(f"{'phase':<22} {'figure':<16} {'A':>10} {'B':>10} {'B/A':>6}   rounds A | B")
report = {}
for phase in phases:
    a, b = figures("A", phase), figures("B", phase)
    if not a or not b:
        continue
    unit = a[0]["unit"]
    rows = [(unit, "tput", "{:.0f}"), ("p99 ms", "p99", "{:.2f}")]
    if all(x["cpu"] is not None for x in a + b):
        rows.append(("server CPU µs/" + unit.split("/")[0][:3], "cpu", "{:.1f}"))
    report[phase] = {}
    for label, key, fmt in rows:
        ma, mb = med([x[key] for x in a]), med([x[key] for x in b])
        each = lambda xs: " ".join(fmt.format(x[key]) for x in xs)
        print(f"{phase:<22} {label:<16} {fmt.format(ma):>10} {fmt.format(mb):>10} "
              f"{ratio(mb, ma):>6.3f}   {each(a)} | {each(b)}")
        report[phase][key] = {"A": round(ma, 3), "B": round(mb, 3), "B/A": round(ratio(mb, ma), 4)}
    errors = sum(x["errors"] for x in a), sum(x["errors"] for x in b)
    if any(errors):
        print(f"{phase:<22} {'errors':<16} {errors[0]:>10} {errors[1]:>10}")
print("AB_JSON " + json.dumps(report))
EOF
}
