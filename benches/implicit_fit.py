"""Times implicit's CPU AlternatingLeastSquares fit on a matrix written by
`examples/fit_csv.rs --export-matrix`, and prints one JSON line (the same fields as fit_csv).

The matrix holds summed event weights w; both sides fit confidence c = 1 + alpha * w with
preference 1 on observed cells (implicit reads its input as the confidence itself).
"""

import argparse
import json
import os
import resource
import time

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits


def status_mb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) / 1024.0
    return None


def read_matrix(path):
    raw = np.fromfile(path, dtype=np.uint8)
    n_users, n_items, nnz = (int(v) for v in raw[:24].view("<u8"))
    body = raw[24:]
    users = body[: 4 * nnz].view("<u4")
    items = body[4 * nnz : 8 * nnz].view("<u4")
    weights = body[8 * nnz : 12 * nnz].view("<f4")
    return n_users, n_items, users, items, weights


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--matrix", required=True)
    ap.add_argument("--factors", type=int, default=64)
    ap.add_argument("--iterations", type=int, default=15)
    ap.add_argument("--regularization", type=float, default=0.2)
    ap.add_argument("--alpha", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cg-steps", type=int, default=3)
    args = ap.parse_args()

    t = time.perf_counter()
    n_users, n_items, users, items, weights = read_matrix(args.matrix)
    confidence = (1.0 + args.alpha * weights).astype(np.float32)
    user_items = sp.csr_matrix((confidence, (users, items)), shape=(n_users, n_items))
    del users, items, weights, confidence
    load_seconds = time.perf_counter() - t
    load_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0

    from implicit.cpu.als import AlternatingLeastSquares

    model = AlternatingLeastSquares(
        factors=args.factors,
        regularization=args.regularization,
        alpha=1.0,  # the matrix already holds 1 + alpha * w
        iterations=args.iterations,
        use_cg=True,  # the default; 3 CG steps per row solve, as recloop
        calculate_training_loss=False,
        num_threads=args.threads,
        random_state=42,
        dtype=np.float32,
    )
    model.cg_steps = args.cg_steps  # not a constructor argument in 0.7
    rss_before = status_mb("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM, so the peak below is the fit's own
    # implicit parallelises over rows itself and asks for single-threaded BLAS.
    with threadpool_limits(limits=1, user_api="blas"):
        t, cpu = time.perf_counter(), time.process_time()
        model.fit(user_items, show_progress=False)
        fit_seconds = time.perf_counter() - t
        fit_cpu_seconds = time.process_time() - cpu
    print(
        json.dumps(
            {
                "users": n_users,
                "items": n_items,
                "nnz": int(user_items.nnz),
                "load_seconds": load_seconds,
                "load_peak_rss_mb": load_peak,
                "factors": args.factors,
                "iterations": args.iterations,
                "cg_steps": model.cg_steps,
                "threads": args.threads,
                "fit_seconds": fit_seconds,
                "fit_cpu_seconds": fit_cpu_seconds,
                "rss_before_fit_mb": rss_before,
                "peak_rss_during_fit_mb": status_mb("VmHWM"),
                "implicit_version": __import__("implicit").__version__,
                "blas_threads_env": os.environ.get("OPENBLAS_NUM_THREADS"),
            }
        )
    )


if __name__ == "__main__":
    main()
