#!/usr/bin/env python3
"""Arrays saved by numpy's own `np.save`, for the byte-for-byte check of the `.npy` writer
(`src/output/npy.rs`): the Fishyscapes pair's float32 score map and uint8 segmentation.

    pip install --target /tmp/pynpy numpy==1.24.2
    PYTHONPATH=/tmp/pynpy python3 scripts/make_npy_fixtures.py tests/fixtures/npy
"""
import os
import sys

import numpy as np

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
# Values the writer must keep exactly: halves, a negative, 1.0, tiny and large magnitudes.
f = (np.arange(24, dtype=np.float32) * 0.5 - 3.0).reshape(4, 6)
f[0, 0], f[3, 5], f[1, 1] = 1.0, np.float32(1e-30), np.float32(3.4e38)
np.save(os.path.join(out, "f32_4x6.npy"), f)
np.save(os.path.join(out, "u8_3.npy"), np.array([1, 2, 255], dtype=np.uint8))
np.save(os.path.join(out, "u8_7x5.npy"), (np.arange(35, dtype=np.uint32) * 37 % 256).astype(np.uint8).reshape(7, 5))
np.save(os.path.join(out, "f32_1x1x1x1.npy"), np.full((1, 1, 1, 1), -0.0, dtype=np.float32))
np.save(os.path.join(out, "f32_2x3x5.npy"), np.linspace(-1, 1, 30, dtype=np.float32).reshape(2, 3, 5))
