#!/usr/bin/env python3
"""Writes tests/fixtures/demo_maskformer.pt: the demo's stand-in model. It is NOT a trained network:
a few fixed colour rules, written by hand, that meet maskomaly's model contract
(forward(x[B,3,Hp,Wp]) -> (pred_logits[B,100,20], pred_masks[B,100,Hp/4,Wp/4])) and whose query
masks follow the regions of the demo's synthetic road scenes (`maskomaly::demo::road_scene`):

    query  0  class 0 (road), confident   mask: grey, unsaturated pixels (road and lane marks)
    query 10  class 10 (sky), confident   mask: pixels much bluer than red (the sky)
    query 49  void, confident             mask: what is neither road nor sky (the obstacle)
    others    void                        mask: empty (logit -12)

Query 49 is the first of the default `method.anomaly_queries`, so the Maskomaly rule sees what a
trained Mask2Former shows on an anomaly: no confident known-class mask covers the obstacle (the
rejection term stays 1) and an anomaly query does (the anomaly term is high), while road and sky are
claimed by confident masks (score near 0). Colours are read from the 4x4-average-pooled input after
undoing the normalisation, so any input size works. Scripted (not traced).

Command (torch 2.11.0 from PyPI; the import needs the CUDA wheel set):
    python3 -m pip install --target /tmp/pytorch torch==2.11.0
    PYTHONPATH=/tmp/pytorch python3 scripts/make_demo_model.py tests/fixtures/demo_maskformer.pt
"""
import sys
from typing import Tuple

import torch
import torch.nn.functional as F

Q, K = 100, 20  # queries; 19 Cityscapes classes + void
VOID = K - 1
ROAD_Q, SKY_Q, OBSTACLE_Q = 0, 10, 49
ROAD_CLASS, SKY_CLASS = 0, 10
# Road: max(rgb) - min(rgb) below this (the scene's road has 5, its lane marks 0, sky >= 65).
ROAD_SATURATION = 25.0
# Sky: blue - red above this (the scene's sky has 65..145, road 5, the obstacle -30).
SKY_BLUE_EXCESS = 40.0
EMPTY_LOGIT = -12.0
CLASS_LOGIT = 6.0  # softmax 0.955 on its class: above the rule's 0.7 rejection threshold


class DemoMaskFormer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        f32 = torch.float32
        # The job's default normalisation (preprocess.pixel_mean / pixel_std, RGB).
        self.register_buffer("pixel_mean", torch.tensor([123.675, 116.28, 103.53], dtype=f32).view(1, 3, 1, 1))
        self.register_buffer("pixel_std", torch.tensor([58.395, 57.12, 57.375], dtype=f32).view(1, 3, 1, 1))
        # Region logits (road, sky, obstacle) -> query mask logits: a 1x1 convolution with one-hot weights.
        select = torch.zeros(Q, 3, 1, 1, dtype=f32)
        bias = torch.full((Q,), EMPTY_LOGIT, dtype=f32)
        for region, q in enumerate([ROAD_Q, SKY_Q, OBSTACLE_Q]):
            select[q, region, 0, 0] = 1.0
            bias[q] = 0.0
        self.register_buffer("select", select)
        self.register_buffer("select_bias", bias)
        classes = torch.zeros(Q, K, dtype=f32)
        for q in range(Q):
            c = {ROAD_Q: ROAD_CLASS, SKY_Q: SKY_CLASS}.get(q, VOID)
            classes[q, c] = CLASS_LOGIT
        self.register_buffer("class_logits", classes)
        self.road_saturation = ROAD_SATURATION
        self.sky_blue_excess = SKY_BLUE_EXCESS

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        rgb = F.avg_pool2d(x, 4, 4) * self.pixel_std + self.pixel_mean  # [B, 3, Hp/4, Wp/4], 0..255
        saturation = rgb.amax(dim=1) - rgb.amin(dim=1)  # [B, h, w]
        road = (self.road_saturation - saturation) / 3.0
        sky = (rgb[:, 2] - rgb[:, 0] - self.sky_blue_excess) / 4.0
        obstacle = torch.minimum(-road, -sky)
        regions = torch.stack([road, sky, obstacle], dim=1)  # [B, 3, h, w]
        masks = F.conv2d(regions, self.select, self.select_bias)  # [B, Q, h, w]
        logits = self.class_logits.unsqueeze(0).expand(x.shape[0], -1, -1).contiguous()  # [B, Q, K+1]
        return logits, masks


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/demo_maskformer.pt"
    m = torch.jit.script(DemoMaskFormer().eval())
    m.save(out)
    print(out)
