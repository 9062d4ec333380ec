#!/usr/bin/env python3
"""The Maskomaly rule as the reference implementation writes it (numpy, float32, pairwise border
loop), for the scoring benchmark. Written from docs/method.md §4, not copied.

    python3 scripts/reference_scoring.py CLS.npy PRED.npy OUT.npy   -> prints the seconds it took
"""
import sys
import time

import numpy as np


def get_soft_mask(cls, pred, anomaly=(49, 31, 83, 32), ground=(19, 24), void=19):
    soft = np.ones(pred.shape[1:], dtype=np.float32)
    soft2 = np.zeros(pred.shape[1:], dtype=np.float32)
    for q in anomaly:
        soft2 = np.maximum(soft2, pred[q] * np.max(cls[q]))
    for q in range(cls.shape[0]):
        m = np.argmax(cls[q])
        if m != void and cls[q, m] > 0.7:
            soft = np.minimum(soft, 1 - pred[q] * cls[q, m])
    border = [q for q in range(cls.shape[0]) if np.argmax(cls[q]) != void]
    for a in range(len(border)):
        for b in range(a + 1, len(border)):
            i, j = border[a], border[b]
            soft = np.minimum(soft, 1 - np.logical_and(pred[i] > 0.1, pred[j] > 0.1).astype(np.float32))
    for q in ground:
        m = np.argmax(cls[q])
        soft = np.minimum(soft, 1 - pred[q] * cls[q, m])
    return 0.6 * soft + 0.4 * soft2


if __name__ == "__main__":
    cls = np.load(sys.argv[1])
    pred = np.load(sys.argv[2])
    t0 = time.perf_counter()
    out = get_soft_mask(cls, pred).astype(np.float32)
    dt = time.perf_counter() - t0
    np.save(sys.argv[3], out)
    print(f"{dt:.6f}")
