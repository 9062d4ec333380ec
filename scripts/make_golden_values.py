#!/usr/bin/env python3
"""Prints the golden values of docs/method.md §14 from the libraries the reference uses.

    python3 -m pip install --target /tmp/golden numpy==1.24.2 scikit-learn==1.2.1 \
        opencv-python-headless==4.7.0.68 Pillow==9.3.0
    PYTHONPATH=/tmp/golden:scripts python3 scripts/make_golden_values.py

§14.1 runs the rule as the reference writes it (`reference_scoring.get_soft_mask`, numpy float32);
§14.2 is Pillow's BILINEAR resize, §14.3 OpenCV's INTER_AREA, §14.4 scikit-learn's metrics. The
tests hold the printed values: `src/scores/maskomaly/tests.rs` (§14.1), `src/resize.rs` (§14.2,
§14.3) and `src/eval/metrics.rs` (§14.4).
"""
import cv2
import numpy as np
import PIL
import sklearn
from PIL import Image
from sklearn.metrics import (average_precision_score, precision_recall_curve, roc_auc_score,
                             roc_curve)

from reference_scoring import get_soft_mask

ANOMALY, GROUND, VOID = (49, 31, 83, 32), (19, 24), 19


def rule_inputs():
    """§14.1: 100 queries, 20 classes, 6×8 masks."""
    s = [3, 19, 24, 31, 49, 70, 83]
    logits = np.full((100, 20), -4, dtype=np.float32)
    for q in range(100):
        if q in s:
            logits[q, q % 19] = 4 + q % 3
        else:
            logits[q, 19] = 4
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    cls = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
    q, y, x = np.meshgrid(np.arange(100), np.arange(6), np.arange(8), indexing="ij")
    m = (6 * np.sin(0.37 * q + 0.9 * y + 1.3 * x) - 3).astype(np.float32)
    pred = (1 / (1 + np.exp(-m.astype(np.float64)))).astype(np.float32)
    return cls, pred


def section_14_1():
    cls, pred = rule_inputs()
    out = get_soft_mask(cls, pred, ANOMALY, GROUND, VOID).astype(np.float32)
    rejected = [q for q in range(100) if np.argmax(cls[q]) != VOID and cls[q].max() > 0.7]
    print("§14.1 rejected queries", rejected,
          "confidences", [f"{cls[q].max():.5f}" for q in rejected])
    print("§14.1 map sum", repr(float(out.astype(np.float64).sum())))
    for row in out:
        print("  ", " ".join(f"{v:.6g}" if v < 1e-4 else f"{v:.6f}".rstrip("0") for v in row))
    soft2 = np.zeros(pred.shape[1:], dtype=np.float32)
    for q in ANOMALY:
        soft2 = np.maximum(soft2, pred[q] * np.max(cls[q]))
    print("§14.1 anomaly term, row 0:", " ".join(f"{v:.6f}" for v in soft2[0]))
    border = [q for q in range(100) if np.argmax(cls[q]) != VOID]
    count = (pred[border] > 0.1).sum(axis=0)
    print("§14.1 pixels the border step zeroes:", int((count >= 2).sum()), "of", count.size)


def pattern_rgb(h, w):
    y, x, c = np.meshgrid(np.arange(h), np.arange(w), np.arange(3), indexing="ij")
    return ((7 * x + 13 * y + 101 * c + (x * y) % 17) % 256).astype(np.uint8)


def section_14_2():
    for h, w in [(720, 1280), (1080, 1920)]:
        r = np.asarray(Image.fromarray(pattern_rgb(h, w)).resize((1820, 1024), Image.Resampling.BILINEAR))
        picks = {p: tuple(int(v) for v in r[p]) for p in [(0, 0), (511, 910), (1023, 1819),
                                                           (300, 1234)]}
        print(f"§14.2 {h}x{w} -> 1024x1820: sum {int(r.astype(np.int64).sum())}", picks)
    same = np.asarray(Image.fromarray(pattern_rgb(720, 1280)).resize((1280, 720), Image.Resampling.BILINEAR))
    print("§14.2 same size unchanged:", bool((same == pattern_rgb(720, 1280)).all()))


def section_14_3():
    y, x = np.meshgrid(np.arange(1024), np.arange(1824), indexing="ij")
    f = (((31 * x + 17 * y) % 97) / 97).astype(np.float32)
    for h, w, picks in [(720, 1280, [(0, 0), (359, 640), (719, 1279)]),
                        (1080, 1920, [(0, 0), (359, 640), (1079, 1919)])]:
        r = cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA)
        print(f"§14.3 -> {h}x{w}: sum {r.astype(np.float64).sum():.6f}",
              {p: f"{r[p]:.7f}" for p in picks})
    for flag in (cv2.INTER_AREA, cv2.INTER_CUBIC):
        same = cv2.resize(f, (1824, 1024), interpolation=flag)
        print("§14.3 same size exact copy:", flag, bool((same == f).all()))


def section_14_4():
    y = np.array([0, 0, 1, 1, 0, 1, 0, 0, 1, 0])
    s = np.array([0.1, 0.4, 0.35, 0.8, 0.4, 0.8, 0.2, 0.05, 0.6, 0.9], dtype=np.float32)
    fpr, tpr, _ = roc_curve(y, s)
    p, r, _ = precision_recall_curve(y, s)
    print("§14.4 AP", repr(average_precision_score(y, s)), "AUROC", roc_auc_score(y, s))
    print("§14.4 FPR", fpr.tolist(), "TPR", tpr.tolist())
    print("§14.4 FPR at the first TPR > 0.9:", fpr[np.argmax(tpr > 0.9)])
    # The reference's AUPR (docs/method.md §8.1): trapezoids over the curve ordered by recall.
    order = np.argsort(r, kind="stable")
    print("§14.4 precision", np.round(p, 4).tolist(), "recall", r.tolist(),
          "AUPR", np.trapz(p[order], r[order]))
    neg = np.zeros(10, dtype=int)
    with np.errstate(invalid="ignore"):
        import warnings
        warnings.simplefilter("ignore")
        print("§14.4 all negative: AP", repr(average_precision_score(neg, s)),
              "TPR", roc_curve(neg, s)[1].tolist())


if __name__ == "__main__":
    print("numpy", np.__version__, "scikit-learn", sklearn.__version__, "opencv", cv2.__version__,
          "Pillow", PIL.__version__)
    section_14_1()
    section_14_2()
    section_14_3()
    section_14_4()
