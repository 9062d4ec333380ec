#!/usr/bin/env python3
"""Writes the metric parity fixtures in tests/fixtures/metrics/ (one JSON file per case). The
SegmentMeIfYouCan benchmark's metrics have their own fixtures (scripts/make_smiyc_fixtures.py).

Command (from the repository root; scikit-learn 1.2.1 and numpy 1.24.2, as pinned by the reference):

    pip install --target /tmp/pyeval scikit-learn==1.2.1 numpy==1.24.2 'scipy<1.12'
    PYTHONPATH=/tmp/pyeval python3 scripts/make_metric_fixtures.py tests/fixtures/metrics

Each case holds frames (float32 scores, 0/1 anomaly labels, 0/1 ignore flags), a mode and the expected
metrics as the reference evaluation computes them with scikit-learn:

* total mode: ignored pixels dropped, all frames pooled;
* image mode: per frame, ignore not applied, each metric cast to float32 and averaged with np.nanmean.

`aupr_seed` sorts the precision-recall curve by recall with a *stable* sort (the Rust code documents why).
`fpr95` is the FPR at the first point of the full ROC curve (drop_intermediate=False) with TPR >= 0.95,
NaN when a class is missing. NaN is written as null; -0.0 is kept.
"""

import json
import os
import sys
import warnings

import numpy as np
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_curve

warnings.filterwarnings("ignore")


def seed_fpr_tpr90(gt, score):
    fpr, tpr, _ = roc_curve(gt, score)
    above = np.nonzero(tpr > 0.9)[0]
    return float(fpr[above[0]]) if len(above) else 0.0


def fpr95(gt, score):
    if gt.sum() == 0 or gt.sum() == len(gt):
        return float("nan")
    fpr, tpr, _ = roc_curve(gt, score, drop_intermediate=False)
    return float(fpr[np.searchsorted(tpr, 0.95, side="left")])


def aupr_stable(gt, score):
    p, r, _ = precision_recall_curve(gt, score)
    order = np.argsort(r, kind="stable")
    return float(auc(r[order], p[order]))


def frame_metrics(gt, score):
    fpr, tpr, _ = roc_curve(gt, score)
    return {
        "ap": float(average_precision_score(gt, score)),
        "auroc": float(auc(fpr, tpr)),
        "fpr95": fpr95(gt, score),
        "fpr_at_tpr90_seed": seed_fpr_tpr90(gt, score),
        "aupr_seed": aupr_stable(gt, score),
    }


def expected(frames, mode):
    if mode == "total":
        gt = np.concatenate([f["gt"][f["ignore"] < 1] for f in frames])
        sc = np.concatenate([f["score"][f["ignore"] < 1] for f in frames])
        return frame_metrics(gt, sc)
    per = [frame_metrics(f["gt"], f["score"]) for f in frames]
    return {k: float(np.nanmean(np.asarray([p[k] for p in per], dtype=np.float32))) for k in per[0]}


def num(x):
    return None if isinstance(x, float) and np.isnan(x) else x


def write_case(out_dir, name, frames, mode, note):
    case = {
        "name": name,
        "note": note,
        "mode": mode,
        "frames": [
            {
                "score": [float(v) for v in f["score"].astype(np.float32)],
                "gt": [int(v) for v in f["gt"]],
                "ignore": [int(v) for v in f["ignore"]],
            }
            for f in frames
        ],
        "expected": {k: num(v) for k, v in expected(frames, mode).items()},
    }
    with open(os.path.join(out_dir, name + ".json"), "w") as fh:
        json.dump(case, fh, separators=(",", ":"))


def frame(score, gt, ignore=None):
    score = np.asarray(score, dtype=np.float32)
    gt = np.asarray(gt, dtype=np.uint8)
    ignore = np.zeros_like(gt) if ignore is None else np.asarray(ignore, dtype=np.uint8)
    return {"score": score, "gt": gt, "ignore": ignore}


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/metrics"
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(20231)

    y = [0, 0, 1, 1, 0, 1, 0, 0, 1, 0]
    s = [0.1, 0.4, 0.35, 0.8, 0.4, 0.8, 0.2, 0.05, 0.6, 0.9]
    write_case(out_dir, "golden", [frame(s, y)], "total", "spec 14.4 golden vector")

    def random_frame(n, p_pos, quant=None, f16=False, p_ignore=0.0):
        gt = (rng.random(n) < p_pos).astype(np.uint8)
        sc = np.clip(rng.normal(0.35 + 0.3 * gt, 0.2), 0, 1)
        if quant:
            sc = np.round(sc * quant) / quant
        if f16:
            sc = sc.astype(np.float16)
        ig = (rng.random(n) < p_ignore).astype(np.uint8)
        return frame(sc.astype(np.float32), gt, ig)

    write_case(out_dir, "ties_total", [random_frame(700, 0.2, quant=20, p_ignore=0.1) for _ in range(3)],
               "total", "heavy ties (21 distinct scores), ignore dropped")
    write_case(out_dir, "float16_total", [random_frame(1500, 0.1, f16=True, p_ignore=0.05) for _ in range(2)],
               "total", "float16-quantised scores")
    write_case(out_dir, "distinct_total", [random_frame(900, 0.3)], "total", "mostly distinct float32 scores")
    frames = [random_frame(300, 0.15, quant=50) for _ in range(6)]
    frames.append(random_frame(300, 0.0, quant=50))  # no positives: AP -0.0 counted, AUROC NaN skipped
    frames.append(frame(rng.random(50), np.ones(50)))  # no negatives: FPR and AUROC NaN
    frames += [random_frame(200, 0.25, f16=True, p_ignore=0.3) for _ in range(4)]  # ignore NOT applied
    write_case(out_dir, "image_mode", frames, "image", "per-frame nan-mean over 12 frames incl. edge frames")
    write_case(out_dir, "all_negative", [frame([0.2, 0.5, 0.5, 0.9], [0, 0, 0, 0])], "total",
               "no positives: AP -0.0, AUROC NaN")
    write_case(out_dir, "all_negative_one_score", [frame([0.5, 0.5], [0, 0])], "total",
               "no positives and a single threshold")
    write_case(out_dir, "all_positive", [frame([0.2, 0.5, 0.7], [1, 1, 1])], "total",
               "no negatives: FPR NaN")
    write_case(out_dir, "single_score", [frame([0.3] * 6, [0, 1, 0, 1, 1, 0])], "total",
               "one distinct score")
    # Equal steps: a straight ROC run whose interior points drop_intermediate removes; the first point
    # above TPR 0.9 is one of them, so the seed's FPR comes from the next kept point.
    sc = np.repeat(np.linspace(1.0, 0.0, 21), 2)
    gt = np.tile([1, 0], 21)
    gt[:6] = 1
    write_case(out_dir, "collinear_drop", [frame(sc, gt)], "total", "collinear ROC segments")
    write_case(out_dir, "negative_zero", [frame([-0.0, 0.0, 0.5, -0.25], [1, 0, 1, 0])], "total",
               "-0.0 and 0.0 are one threshold")


if __name__ == "__main__":
    main()
