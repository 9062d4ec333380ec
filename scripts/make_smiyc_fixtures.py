#!/usr/bin/env python3
"""Writes the SegmentMeIfYouCan parity fixtures in tests/fixtures/smiyc/ by running the benchmark's own
evaluation code on seeded random frames.

Reference: SegmentMeIfYouCan/road-anomaly-benchmark at commit 1c7804e0749686452eb02bbcfb81234e38795f8a
(`road_anomaly_benchmark/metrics/pixel_classification.py`, `pixel_classification_curves.py`,
`instance_segmentation.py`), imported from a checkout on PYTHONPATH. numpy is the version pinned by that
repository's requirements.txt; the other packages are the nearest versions with Python 3.11 wheels (the
metrics use only numpy and scipy.ndimage; the rest is imported by the package). Command, from the
repository root:

    pip install --target /tmp/smiycpy numpy==1.23.3 scipy==1.9.3 matplotlib==3.6.2 pandas==1.5.3 \
        easydict==1.10 h5py==3.8.0 Pillow==9.5.0 tqdm==4.64.1 ipython==8.5.0
    git clone https://github.com/SegmentMeIfYouCan/road-anomaly-benchmark /tmp/rab
    git -C /tmp/rab checkout 1c7804e0749686452eb02bbcfb81234e38795f8a
    MPLBACKEND=agg PYTHONPATH=/tmp/smiycpy:/tmp/rab python3 scripts/make_smiyc_fixtures.py tests/fixtures/smiyc

Files:

* `<case>.json`: frames of one dataset (`fid`, `width`, `height`, `score` = the stored map's bytes,
  little-endian float16 or float32 as `dtype` says, in hex; `label` = one character per pixel, `0` usual,
  `1` anomaly, `x` void (255)), the track (`anomaly`: components >= 500 / 100 px, `obstacle`: 50 / 10),
  and `expected`: the benchmark's `PixBinaryClass` curve (`MetricPixelClassification.process_frame` per
  frame in fid order, then `aggregate`) and its `SegEval-<track>` results (`MetricSegment` with
  `thresh_p` = that curve's best-F1 threshold, `process_frame` per frame, then `aggregate`), plus the
  per-threshold TP / FN / FP sums of the frame results.
* `components_fixed_threshold.json`: the same component procedure at threshold 0.5 with size limits 6 / 4.
* `argsort.json`: float64 arrays with many ties and numpy's `np.argsort` of each (the benchmark orders
  the thresholds of all frames with it; which of several equal highest thresholds comes first changes
  the curve's first point).

The seed is fixed, so the files only change when this script does.
"""

import contextlib
import io
import json
import os
import subprocess
import sys

import numpy as np
from scipy.ndimage import gaussian_filter

import road_anomaly_benchmark
from road_anomaly_benchmark.metrics.instance_segmentation import MetricSegment
from road_anomaly_benchmark.metrics.pixel_classification import MetricPixelClassification

UPSTREAM_COMMIT = "1c7804e0749686452eb02bbcfb81234e38795f8a"
NUMPY_VERSION = "1.23.3"
SIOU_THRESHOLDS = np.linspace(0.25, 0.75, 11, endpoint=True)


def upstream_commit():
    src = os.path.dirname(os.path.dirname(os.path.abspath(road_anomaly_benchmark.__file__)))
    out = subprocess.run(["git", "-C", src, "rev-parse", "HEAD"], capture_output=True, text=True)
    return out.stdout.strip()


def config(configs, name):
    return dict(next(c for c in configs if c.name == name))


def num(x):
    x = float(x)
    return None if np.isnan(x) else x


def run_upstream(frames, track, thresh_p=None, seg_sizes=None):
    """The benchmark's pixel curve and component results for frames in the given order."""
    quiet = contextlib.redirect_stdout(io.StringIO())
    out = {}
    if thresh_p is None:
        pix = MetricPixelClassification(config(MetricPixelClassification.configs, "PixBinaryClass"))
        results = [pix.process_frame(label_pixel_gt=f["label"], anomaly_p=f["score"], visualize=False)
                   for f in frames]
        with quiet:
            curve = pix.aggregate(results, method_name="fixture", dataset_name="fixture")
        out["pixel"] = {
            "ap": num(curve.area_PRC),
            "auroc": num(curve.area_ROC),
            "fpr95": num(curve.tpr95_fpr),
            "tpr95_threshold": num(curve.tpr95_threshold),
            "best_f1": num(curve.best_f1),
            "best_f1_threshold": num(curve.best_f1_threshold),
            "curve_points": int(len(curve.curve_tpr)),
        }
        thresh_p = curve.best_f1_threshold
    name = {"anomaly": "SegEval-AnomalyTrack", "obstacle": "SegEval-ObstacleTrack"}.get(track, "SegEval")
    cfg = config(MetricSegment.configs, name)
    cfg["thresh_p"] = thresh_p
    if seg_sizes is not None:
        cfg["thresh_segsize"], cfg["thresh_instsize"] = seg_sizes
    seg = MetricSegment(cfg)
    per_frame = [seg.process_frame(label_pixel_gt=f["label"], anomaly_p=f["score"], visualize=False)
                 for f in frames]
    with quiet:
        info = seg.aggregate(per_frame, method_name="fixture", dataset_name="fixture")
    by_siou = []
    for t in SIOU_THRESHOLDS:
        key = str(int(t * 100))
        by_siou.append({
            "siou": float(t),
            "tp": int(sum(r["tp_" + key] for r in per_frame)),
            "fn": int(sum(r["fn_" + key] for r in per_frame)),
            "fp": int(sum(r["fp_" + key] for r in per_frame)),
        })
    out["components"] = {
        "threshold": float(thresh_p),
        "min_pred": int(cfg["thresh_segsize"]),
        "min_gt": int(cfg["thresh_instsize"]),
        "siou_gt": num(info.sIoU_gt),
        "siou_pred": num(info.sIoU_pred),
        "ppv": num(info.prec_pred),
        "mean_f1": num(info.f1_mean),
        "tp_mean": num(info.tp_mean),
        "fn_mean": num(info.fn_mean),
        "fp_mean": num(info.fp_mean),
        "f1_25": num(info.f1_25),
        "f1_50": num(info.f1_50),
        "f1_75": num(info.f1_75),
        "tp_25": int(info.tp_25), "fn_25": int(info.fn_25), "fp_25": int(info.fp_25),
        "tp_50": int(info.tp_50), "fn_50": int(info.fn_50), "fp_50": int(info.fp_50),
        "tp_75": int(info.tp_75), "fn_75": int(info.fn_75), "fp_75": int(info.fp_75),
        "gt_components": int(sum(len(r.sIoU_gt) for r in per_frame)),
        "pred_components": int(sum(len(r.sIoU_pred) for r in per_frame)),
        "by_siou": by_siou,
    }
    return out


def encode_frame(f):
    h, w = f["label"].shape
    dtype = "<f2" if f["score"].dtype == np.float16 else "<f4"
    chars = np.array(["0", "1"] + ["?"] * 253 + ["x"])
    assert set(np.unique(f["label"])) <= {0, 1, 255}
    return {
        "fid": f["fid"],
        "width": int(w),
        "height": int(h),
        "score": np.ascontiguousarray(f["score"].astype(dtype)).tobytes().hex(),
        "label": "".join(chars[f["label"].ravel()]),
    }


def write(out_dir, name, note, track, frames, expected):
    dtypes = {f["score"].dtype.name for f in frames}
    assert len(dtypes) == 1
    case = {
        "name": name,
        "note": note,
        "upstream_commit": UPSTREAM_COMMIT,
        "track": track,
        "dtype": dtypes.pop(),
        "frames": [encode_frame(f) for f in frames],
        "expected": expected,
    }
    with open(os.path.join(out_dir, name + ".json"), "w") as fh:
        json.dump(case, fh, separators=(",", ":"))


def rectangles(rng, h, w, n, hs, ws):
    """A 0/1 mask with `n` axis-aligned rectangles of random heights `hs` and widths `ws`."""
    m = np.zeros((h, w), np.uint8)
    for _ in range(n):
        rh, rw = rng.integers(*hs), rng.integers(*ws)
        y, x = rng.integers(0, max(1, h - rh)), rng.integers(0, max(1, w - rw))
        m[y:y + rh, x:x + rw] = 1
    return m


def smooth_scores(rng, gt, lift, sigma, noise, lo=0.0, hi=1.0):
    """Spatially smooth scores, raised by `lift` on (a blurred copy of) the anomaly."""
    base = gaussian_filter(rng.normal(0.0, 1.0, gt.shape), sigma)
    base = base / (np.abs(base).max() + 1e-12)
    s = 0.3 + 0.25 * base + lift * gaussian_filter(gt.astype(np.float64), 1.0) + rng.normal(0, noise, gt.shape)
    return np.clip(lo + (hi - lo) * s, lo, hi)


def fid(i):
    return f"validation_{i:04d}"


def case_anomaly_f16_saturated(rng):
    """Anomaly-track sizes, float16, maps saturating at exactly 1.0, an all-inlier frame, void regions."""
    h, w = 48, 64
    frames = []
    for i in range(5):
        gt = rectangles(rng, h, w, 2, (18, 30), (22, 40)) if i != 3 else np.zeros((h, w), np.uint8)
        if i == 1:
            gt[2:8, 2:9] = 1  # a 42-px anomaly: below 100 px it becomes void for the components
        score = smooth_scores(rng, gt, 0.9 if i < 3 else 0.4, 3.0, 0.05)
        if i == 3:
            score[10:35, 30:56] = np.maximum(score[10:35, 30:56], 0.97)  # a false-positive region
        label = gt.copy()
        if i >= 3:
            label[:, :7] = 255  # void band
        if i == 4:
            label[20:30, 20:44] = 255  # void across an anomaly
        frames.append({"fid": fid(i), "label": label, "score": score.astype(np.float16)})
    return frames


def case_obstacle_f32_odd(rng):
    """Obstacle-track sizes, float32, odd frame sizes, tiny components, touching anomalies, void."""
    frames = []
    for i, (h, w) in enumerate([(29, 37), (23, 41), (31, 53), (47, 29)]):
        gt = rectangles(rng, h, w, 4, (2, 10), (2, 12))
        gt[h // 2, w // 2] = 1  # single pixels: below 10 px they become void
        gt[1, 1] = 1
        score = smooth_scores(rng, gt, 0.55, 1.5, 0.08).astype(np.float32)
        speckle = rng.random((h, w)) < 0.03
        score[speckle] = rng.uniform(0.6, 0.95, speckle.sum()).astype(np.float32)
        label = gt.copy()
        label[-3:, :] = 255
        if i == 2:
            label[5:12, 10:30] = 255
        frames.append({"fid": fid(i), "label": label, "score": score})
    return frames


def case_obstacle_f16_quantised_many(rng):
    """Many small frames with scores on an 1/8 grid: heavily repeated thresholds, most maxima at 1.0."""
    h, w = 20, 30
    frames = []
    for i in range(24):
        gt = rectangles(rng, h, w, 2, (4, 11), (5, 13))
        score = smooth_scores(rng, gt, 0.8, 1.0, 0.08)
        score = np.round(score * 8) / 8
        if i % 5 == 4:
            score = np.minimum(score, 0.875)  # some frames never reach 1.0
        label = gt.copy()
        if i % 3 == 0:
            label[:2, :] = 255
        frames.append({"fid": fid(i), "label": label, "score": score.astype(np.float16)})
    return frames


def case_obstacle_binary(rng):
    """Binary maps (every score exactly 0 or 1)."""
    h, w = 24, 32
    frames = []
    for i in range(3):
        gt = rectangles(rng, h, w, 3, (3, 9), (3, 11))
        pred = np.roll(gt, 1, axis=1) | (rng.random((h, w)) < 0.02)
        if i == 1:
            pred[:] = 0
            pred[4:14, 5:12] = 1
        label = gt.copy()
        label[:, -2:] = 255
        frames.append({"fid": fid(i), "label": label, "score": pred.astype(np.float16)})
    return frames


def case_anomaly_f32_wide_range(rng):
    """Anomaly-track sizes, float32 scores far outside [0, 1] (logit-like, negative thresholds)."""
    h, w = 40, 48
    frames = []
    for i in range(3):
        gt = rectangles(rng, h, w, 1, (20, 30), (25, 36))
        score = smooth_scores(rng, gt, 0.8, 2.0, 0.06, lo=-4.0, hi=9.0).astype(np.float32)
        label = gt.copy()
        label[:4, :] = 255
        frames.append({"fid": fid(i), "label": label, "score": score})
    return frames


def case_components_fixed(rng):
    h, w = 40, 60
    frames = []
    for i in range(3):
        gt = rectangles(rng, h, w, 5, (1, 12), (1, 14))
        label = gt.copy()
        label[:, :3] = 255
        score = np.clip(0.6 * gt + rng.normal(0.2, 0.2, (h, w)), 0, 1).astype(np.float32)
        score[rng.random((h, w)) < 0.02] = 0.95  # speckle: small predicted components
        frames.append({"fid": fid(i), "label": label, "score": score})
    return frames


def argsort_arrays(rng):
    n = 2000
    m3_killer = np.empty(n)  # a median-of-three adversary for the introsort's depth limit
    k = n // 2
    for i in range(1, k + 1):
        if i % 2:
            m3_killer[i - 1] = i
            m3_killer[i] = k + i
        m3_killer[k + i - 1] = 2 * i
    return [
        np.array([0.5]),
        np.array([1.0, 1.0]),
        rng.integers(0, 3, 16).astype(np.float64),
        rng.integers(0, 3, 17).astype(np.float64),
        rng.integers(0, 4, 18).astype(np.float64),
        np.round(rng.random(100) * 8) / 8,
        np.round(rng.random(2000) * 20) / 20,
        np.repeat([1.01, 1.0, 0.5, 0.25], 400),
        np.full(300, 0.7),
        np.concatenate([np.arange(500.0), np.arange(500.0)[::-1]]),
        m3_killer,
    ]


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/smiyc"
    assert np.__version__ == NUMPY_VERSION, f"numpy {np.__version__}, need {NUMPY_VERSION}"
    commit = upstream_commit()
    assert commit == UPSTREAM_COMMIT, f"road-anomaly-benchmark checkout is at {commit!r}"
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(20240)

    cases = [
        ("anomaly_f16_saturated", "anomaly", case_anomaly_f16_saturated,
         "float16 maps saturating at 1.0 (equal highest thresholds), all-inlier frame, void, small anomaly"),
        ("obstacle_f32_odd", "obstacle", case_obstacle_f32_odd,
         "float32, odd sizes, tiny and touching components, speckle, void"),
        ("obstacle_f16_quantised_many", "obstacle", case_obstacle_f16_quantised_many,
         "24 frames of scores on a 1/8 grid: repeated thresholds across frames"),
        ("obstacle_binary", "obstacle", case_obstacle_binary, "scores exactly 0 or 1"),
        ("anomaly_f32_wide_range", "anomaly", case_anomaly_f32_wide_range,
         "float32 scores in [-4, 9]: bin bracket eps = 1% of the range"),
    ]
    for name, track, make, note in cases:
        frames = make(rng)
        write(out_dir, name, note, track, frames, run_upstream(frames, track))

    frames = case_components_fixed(rng)
    write(out_dir, "components_fixed_threshold", "SegEval procedure at threshold 0.5, sizes 6 / 4", "custom",
          frames, run_upstream(frames, "custom", thresh_p=0.5, seg_sizes=(6, 4)))

    arrays = argsort_arrays(rng)
    with open(os.path.join(out_dir, "argsort.json"), "w") as fh:
        json.dump({
            "note": f"np.argsort (default kind) of float64 arrays, numpy {np.__version__}",
            "arrays": [{"values": [float(v) for v in a], "argsort": [int(i) for i in np.argsort(a)]}
                       for a in arrays],
        }, fh, separators=(",", ":"))


if __name__ == "__main__":
    main()
