#!/usr/bin/env python3
"""OpenCV's COLORMAP_JET as the reference applies it for `_heat.png` (`cv2.applyColorMap` on
`uint8(score * 255)`): the colour of each of the 256 levels, as RGB bytes (768 bytes, level-major).

    pip install --target /tmp/pyjet opencv-python-headless==4.7.0.68 numpy==1.26.4
    PYTHONPATH=/tmp/pyjet python3 scripts/make_jet_fixture.py tests/fixtures/jet/opencv_jet.rgb
"""
import sys

import cv2
import numpy as np

levels = np.arange(256, dtype=np.uint8).reshape(1, 256)
bgr = cv2.applyColorMap(levels, cv2.COLORMAP_JET)  # [1, 256, 3] BGR
rgb = bgr[0, :, ::-1].astype(np.uint8)
with open(sys.argv[1], "wb") as f:
    f.write(rgb.tobytes())
