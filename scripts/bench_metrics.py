#!/usr/bin/env python3
"""Benchmark: exact AP / AUROC / FPR95 in Rust (`examples/bench_metrics.rs`) vs scikit-learn 1.2.1.

Command (from the repository root):

    pip install --target /tmp/pyeval scikit-learn==1.2.1 numpy==1.24.2 'scipy<1.12'
    cargo build --release --example bench_metrics
    PYTHONPATH=/tmp/pyeval python3 scripts/bench_metrics.py --bin target/release/examples/bench_metrics

Writes 63 M pixels (30 frames of 1024x2048, float16-quantised scores, about 2 % anomaly) into a
temporary folder, times scikit-learn on them (one pooled array, as the reference evaluation does),
runs the Rust binary on the same files, checks the values agree to 1e-9, prints the speed ratio and
writes a JSON report (--out, default bench_metrics.json). Needs about 6 GB of memory for scikit-learn.
A dev-profile binary (`cargo build --example bench_metrics`) works too; the report says which.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np
import sklearn
from sklearn.metrics import auc, average_precision_score, roc_curve


def make_data(n, seed=7):
    rng = np.random.default_rng(seed)
    gt = (rng.random(n) < 0.02).astype(np.uint8)
    # Anomalies score higher on average; float16 quantisation leaves at most 2^16 distinct values.
    score = np.clip(rng.normal(0.25 + 0.45 * gt, 0.18).astype(np.float32), 0.0, 1.0).astype(np.float16)
    return score, gt


def sklearn_metrics(gt, score):
    ap = average_precision_score(gt, score)
    fpr, tpr, _ = roc_curve(gt, score)
    auroc = auc(fpr, tpr)
    fpr_f, tpr_f, _ = roc_curve(gt, score, drop_intermediate=False)
    fpr95 = fpr_f[np.searchsorted(tpr_f, 0.95)]
    return float(ap), float(auroc), float(fpr95)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True, help="the built bench_metrics example")
    ap.add_argument("--pixels", type=int, default=30 * 1024 * 2048)
    ap.add_argument("--out", default="bench_metrics.json")
    args = ap.parse_args()

    score16, gt = make_data(args.pixels)
    with tempfile.TemporaryDirectory() as d:
        score16.astype("<f2").tofile(os.path.join(d, "scores.f16"))
        gt.tofile(os.path.join(d, "labels.u8"))
        score = score16.astype(np.float32)  # what the evaluation reads from a float16 file
        del score16
        t0 = time.perf_counter()
        sk = sklearn_metrics(gt, score)
        sk_s = time.perf_counter() - t0
        del score, gt
        subprocess.run([args.bin, d], check=True, stdout=subprocess.DEVNULL)
        with open(os.path.join(d, "rust.json")) as fh:
            rust = json.load(fh)

    diffs = {k: abs(rust[k] - v) for k, v in zip(["ap", "auroc", "fpr95"], sk)}
    report = {
        "pixels": args.pixels,
        "sklearn": {"version": sklearn.__version__, "numpy": np.__version__, "seconds": sk_s,
                    "ap": sk[0], "auroc": sk[1], "fpr95": sk[2]},
        "rust": rust,
        "abs_diff": diffs,
        "speedup": sk_s / rust["seconds"],
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
    }
    with open(args.out, "w") as fh:
        json.dump(report, fh, indent=2)
    print(f"{args.pixels} pixels: scikit-learn {sk_s:.2f} s, Rust ({rust['profile']}) {rust['seconds']:.2f} s, "
          f"ratio {sk_s / rust['seconds']:.1f}x; max |diff| {max(diffs.values()):.2e}")
    if max(diffs.values()) > 1e-9:
        print("MISMATCH", diffs, file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
