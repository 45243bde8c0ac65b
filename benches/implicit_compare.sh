#!/usr/bin/env bash
# recloop's ALS against implicit's (CPU, conjugate gradient) on the same synthetic logs.
#
#   benches/implicit_compare.sh [EVENTS ...]        default: 1000000 5000000 20000000
#   env: USERS=100000 ITEMS=20000 FACTORS="64 128" ITERATIONS=15 THREADS=2 CG_STEPS=3
#        BENCH_DIR (logs and matrices; reused between runs), IMPLICIT_VENV
#
# For each size: `recloop synth` writes the log, `examples/fit_csv` maps it through the
# training pipeline (service default event weights) and exports the summed-weight matrix;
# then, for each factor count, both libraries fit that very matrix (confidence 1 + alpha·w,
# 3 CG steps per row, ITERATIONS rounds, THREADS threads, pinned to the same cores), one
# after the other. Only the fit is timed. Peak memory is the fit's: each process resets its
# high-water mark (/proc/self/clear_refs) just before fitting, so the figure is the resident
# matrix plus whatever the fit allocates, not the loading (/usr/bin/time's maxrss reads the
# same mark). Wall time on a shared machine also counts other processes' turns, so the CPU
# seconds of the fit (all threads) are printed too. The raw lines also name the kernel
# recloop's row solves ran with ("avx512", "avx2" or "portable"; see src/model/kernels.rs).
#
# Not identical models: recloop scales the ridge per row (λ·(1 + n_row)), implicit's is flat;
# both get λ = 0.2. That changes the numbers solved for, not the work: the same CG steps,
# the same Gram matrices, the same passes over the matrix.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=${CARGO_TARGET_DIR:-target}
BENCH_DIR=${BENCH_DIR:-$TARGET/implicit-compare}
IMPLICIT_VENV=${IMPLICIT_VENV:-$TARGET/implicit-venv}
USERS=${USERS:-100000}
ITEMS=${ITEMS:-20000}
FACTORS=${FACTORS:-"64 128"}
ITERATIONS=${ITERATIONS:-15}
THREADS=${THREADS:-2}
CG_STEPS=${CG_STEPS:-3}
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(1000000 5000000 20000000)
CORES=0-$((THREADS - 1))

cargo build --release --quiet --bin recloop --example fit_csv
if [ ! -x "$IMPLICIT_VENV/bin/python" ]; then
  python3 -m venv "$IMPLICIT_VENV"
  "$IMPLICIT_VENV/bin/pip" install --quiet "implicit==0.7.2" "numpy<2.3" "scipy<1.16" threadpoolctl
fi
mkdir -p "$BENCH_DIR"
RESULTS="$BENCH_DIR/results.jsonl"

# Runs a fit under /usr/bin/time; prints its JSON line with the process's peak RSS added.
timed() {
  local out
  out=$(OPENBLAS_NUM_THREADS=1 /usr/bin/time -f "%M" -o "$BENCH_DIR/time.txt" taskset -c "$CORES" "$@")
  python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d["process_peak_rss_mb"]=int(open(sys.argv[2]).read().split()[-1])/1024; print(json.dumps(d))' \
    "$out" "$BENCH_DIR/time.txt"
}

printf '%-10s %-9s %-4s %10s %10s %7s %9s %9s %7s %10s %10s\n' \
  events nnz k recloop_s implicit_s ratio rl_cpu_s im_cpu_s cpu_rat rl_fit_MB im_fit_MB
for EVENTS in "${SIZES[@]}"; do
  CSV="$BENCH_DIR/synth-$USERS-$ITEMS-$EVENTS.csv"
  MATRIX="${CSV%.csv}.bin"
  if [ ! -s "$MATRIX" ]; then
    "$TARGET/release/recloop" synth --users "$USERS" --items "$ITEMS" --events "$EVENTS" \
      --seed 42 --end 1767225600 --out "$CSV" 2>/dev/null
    "$TARGET/release/examples/fit_csv" --csv "$CSV" --export-matrix "$MATRIX" --no-fit >/dev/null
    rm -f "$CSV"
  fi
  for K in $FACTORS; do
    common=(--matrix "$MATRIX" --factors "$K" --iterations "$ITERATIONS" --threads "$THREADS" --cg-steps "$CG_STEPS")
    rl=$(timed "$TARGET/release/examples/fit_csv" "${common[@]}")
    im=$(timed "$IMPLICIT_VENV/bin/python" benches/implicit_fit.py "${common[@]}")
    echo "{\"events\": $EVENTS, \"recloop\": $rl, \"implicit\": $im}" >> "$RESULTS"
    python3 - "$EVENTS" "$rl" "$im" <<'PY'
import json, sys
e, rl, im = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
print(f"{e:<10} {rl['nnz']:<9} {rl['factors']:<4} {rl['fit_seconds']:>10.2f} {im['fit_seconds']:>10.2f} "
      f"{rl['fit_seconds'] / im['fit_seconds']:>7.2f} {rl['fit_cpu_seconds']:>9.2f} {im['fit_cpu_seconds']:>9.2f} "
      f"{rl['fit_cpu_seconds'] / im['fit_cpu_seconds']:>7.2f} "
      f"{rl['process_peak_rss_mb']:>10.0f} {im['process_peak_rss_mb']:>10.0f}")
PY
  done
done
echo "ratio = recloop / implicit (< 1: recloop faster). Raw lines: $RESULTS"
