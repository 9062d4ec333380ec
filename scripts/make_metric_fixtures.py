#!/usr/bin/env python3
"""Writes the metric parity fixtures in tests/fixtures/metrics/ (one JSON file per case, plus
components/components.json for the SMIYC component metrics).

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
from scipy.ndimage import label as cc_label
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


def server_binned(frames, num_bins=768):
    """The SMIYC server's PixBinaryClass procedure (percentile bins per frame, aggregated)."""
    thresholds, tp_rel, fp_rel, n_pos, n_neg = [], [], [], 0, 0
    for f in frames:
        roi = f["ignore"] < 1
        prob, gt = f["score"][roi], f["gt"][roi].astype(bool)
        pos, neg = prob[gt], prob[~gt]
        bins = [np.array([0.0, 1.0])]
        if pos.size:
            bins.append(np.quantile(pos, np.linspace(0, 1, min(num_bins // 2, pos.size))))
        if neg.size:
            bins.append(np.quantile(neg, np.linspace(0, 1, min(num_bins // 2, neg.size))))
        edges = np.unique(np.concatenate(bins))
        tp_k, _ = np.histogram(pos, bins=edges)
        fp_k, _ = np.histogram(neg, bins=edges)
        thresholds.append(edges[:-1][::-1])
        tp_rel.append(tp_k[::-1])
        fp_rel.append(fp_k[::-1])
        n_pos += pos.size
        n_neg += neg.size
    thr = np.concatenate(thresholds)
    order = np.argsort(thr, kind="stable")[::-1]
    thr = thr[order]
    tp = np.cumsum(np.concatenate(tp_rel)[order].astype(np.float64))
    fp = np.cumsum(np.concatenate(fp_rel)[order].astype(np.float64))
    keep = np.concatenate([[0], np.nonzero(thr[:-1] != thr[1:])[0], [len(thr) - 1]])
    tp, fp = tp[keep], fp[keep]
    if tp[0] != 0 or fp[0] != 0:
        tp, fp = np.concatenate([[0], tp]), np.concatenate([[0], fp])
    if tp[-1] != n_pos or fp[-1] != n_neg:
        tp, fp = np.concatenate([tp, [n_pos]]), np.concatenate([fp, [n_neg]])
    tpr, fpr = tp / n_pos, fp / n_neg
    prec = np.ones(len(tp))
    prec[tp + fp > 0] = tp[tp + fp > 0] / (tp + fp)[tp + fp > 0]
    i95 = np.searchsorted(tpr, 0.95)
    f1 = 2 * tp / (2 * tp + fp + (n_pos - tp))
    ix = np.nanargmax(f1)
    return {
        "ap": float(np.sum(np.diff(tpr) * prec[1:])),
        "auroc": float(np.trapz(tpr, fpr)),
        "fpr95": float(fpr[i95]) if i95 < len(tpr) else 1.0,
        "best_f1": float(f1[ix]),
        # The server indexes the uncollapsed thresholds with the curve's index.
        "best_f1_threshold": float(thr[ix]),
    }


def server_components(frames, thr, min_pred, min_gt):
    """The SMIYC server's SegEval procedure on 2-D frames (8-connected components)."""
    eight = np.ones((3, 3), dtype=np.uint8)
    siou_gt, siou_pred, ppv = [], [], []
    tps, fns, fps = np.zeros(11), np.zeros(11), np.zeros(11)
    ts = np.linspace(0.25, 0.75, 11)
    for f in frames:
        lbl = np.where(f["ignore"] > 0, 255, f["gt"]).reshape(f["shape"]).astype(np.uint8)
        score = f["score"].reshape(f["shape"])
        pred = (score > thr) & (lbl != 255)
        gt_inst, n_gt = cc_label(lbl == 1, eight)
        pred_inst, n_pred = cc_label(pred, eight)
        sizes = np.bincount(pred_inst.ravel(), minlength=n_pred + 1)
        pred_inst[sizes[pred_inst] < min_pred] = 0
        gsizes = np.bincount(gt_inst.ravel(), minlength=n_gt + 1)
        lbl = lbl.copy()
        lbl[gsizes[gt_inst] < min_gt] = 255
        roi = lbl < 255
        g, p = gt_inst[roi], pred_inst[roi]
        frame_gt, frame_ppv = [], []
        for i in np.unique(g[g > 0]):
            touch = np.unique(p[(g == i) & (p > 0)])
            inter = np.count_nonzero((g == i) & np.isin(p, touch))
            adj = np.count_nonzero(~np.isin(g, [0, i]) & np.isin(p, touch))
            frame_gt.append(inter / (np.isin(p, touch).sum() + (g == i).sum() - inter - adj))
        for j in np.unique(p[p > 0]):
            touch = np.unique(g[(p == j) & (g > 0)])
            inter = np.count_nonzero((p == j) & np.isin(g, touch))
            adj = np.count_nonzero(~np.isin(p, [0, j]) & np.isin(g, touch))
            siou_pred.append(inter / (np.isin(g, touch).sum() + (p == j).sum() - inter - adj))
            frame_ppv.append(inter / (p == j).sum())
        siou_gt += frame_gt
        ppv += frame_ppv
        for k, t in enumerate(ts):
            tps[k] += np.count_nonzero(np.array(frame_gt) >= t)
            fns[k] += np.count_nonzero(np.array(frame_gt) < t)
            fps[k] += np.count_nonzero(np.array(frame_ppv) < t)
    f1 = 2 * tps / (2 * tps + fns + fps)
    return {"siou_gt": float(np.mean(siou_gt)), "siou_pred": float(np.mean(siou_pred)),
            "ppv": float(np.mean(ppv)), "mean_f1": float(np.mean(f1)),
            "gt_components": len(siou_gt), "pred_components": len(siou_pred)}


def write_components_case(out_dir, rng):
    h, w = 40, 60
    frames = []
    for _ in range(3):
        gt = np.zeros((h, w), np.uint8)
        for _ in range(5):  # rectangles of anomaly, some touching, some tiny
            y, x = rng.integers(0, h - 4), rng.integers(0, w - 4)
            gt[y:y + rng.integers(1, 12), x:x + rng.integers(1, 14)] = 1
        ignore = np.zeros((h, w), np.uint8)
        ignore[:, :3] = 1
        score = np.clip(0.6 * gt + rng.normal(0.2, 0.2, (h, w)), 0, 1).astype(np.float32)
        score[rng.random((h, w)) < 0.02] = 0.95  # speckle: small predicted components
        frames.append({"score": score.ravel(), "gt": gt.ravel(), "ignore": ignore.ravel(), "shape": (h, w)})
    thr, limits = 0.5, (6, 4)
    case = {
        "name": "components",
        "note": "SMIYC component metrics (scipy.ndimage.label, 8-connected)",
        "threshold": thr,
        "min_pred": limits[0],
        "min_gt": limits[1],
        "frames": [{"width": w, "height": h, "score": [float(v) for v in f["score"]],
                    "gt": [int(v) for v in f["gt"]], "ignore": [int(v) for v in f["ignore"]]} for f in frames],
        "expected_components": server_components(frames, thr, *limits),
    }
    os.makedirs(os.path.join(out_dir, "components"), exist_ok=True)
    with open(os.path.join(out_dir, "components", "components.json"), "w") as fh:
        json.dump(case, fh, separators=(",", ":"))


def num(x):
    return None if isinstance(x, float) and np.isnan(x) else x


def write_case(out_dir, name, frames, mode, note, smiyc_dtype=None):
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
    if smiyc_dtype is not None:
        typed = [dict(f, score=f["score"].astype(smiyc_dtype)) for f in frames]
        case["smiyc_dtype"] = np.dtype(smiyc_dtype).name
        case["expected_smiyc"] = server_binned(typed)
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
               "total", "float16-quantised scores", smiyc_dtype=np.float16)
    write_case(out_dir, "distinct_total", [random_frame(900, 0.3)], "total", "mostly distinct float32 scores",
               smiyc_dtype=np.float32)
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
    write_components_case(out_dir, rng)
    write_case(out_dir, "negative_zero", [frame([-0.0, 0.0, 0.5, -0.25], [1, 0, 1, 0])], "total",
               "-0.0 and 0.0 are one threshold")


if __name__ == "__main__":
    main()
