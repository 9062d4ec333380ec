#!/usr/bin/env python3
"""Writes tests/fixtures/tiny_maskformer.pt: a tiny TorchScript model that meets maskomaly's model
contract (forward(x[B,3,Hp,Wp]) -> (pred_logits[B,100,20], pred_masks[B,100,Hp/4,Wp/4])).

Mask logits are a 1x1 convolution of the 4x4-average-pooled input; class logits are a linear map of
the image mean. Weights follow fixed formulas, so the file is reproducible. Scripted (not traced), so
any input size works.

Command (torch 2.11.0):
    PYTHONPATH=<dir with torch> python3 scripts/make_tiny_model.py tests/fixtures/tiny_maskformer.pt
"""
import math
import sys
from typing import Tuple

import torch
import torch.nn.functional as F

Q, K = 100, 20
NON_VOID = [3, 7, 11, 15, 19, 24, 40, 55, 60, 70, 77, 90]


class TinyMaskFormer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        wm = [[math.sin(1.3 * i) * 1.5, math.cos(0.7 * i) * 1.5, math.sin(2.1 * i) * 1.5] for i in range(Q)]
        bm = [math.cos(0.37 * i) * 2.0 - 0.5 for i in range(Q)]
        bc, wc = [], []
        for i in range(Q):
            for c in range(K):
                if i not in NON_VOID:
                    bc.append(3.0 if c == K - 1 else -2.0)
                else:
                    bc.append(4.0 + i % 3 if c == i % 19 else -2.0)
                wc.append([math.sin((i * 7 + c * 3 + ch) * 0.61) * 0.3 for ch in range(3)])
        f32 = torch.float32
        self.mask_weight = torch.nn.Parameter(torch.tensor(wm, dtype=f32).view(Q, 3, 1, 1))
        self.mask_bias = torch.nn.Parameter(torch.tensor(bm, dtype=f32))
        self.class_weight = torch.nn.Parameter(torch.tensor(wc, dtype=f32))
        self.class_bias = torch.nn.Parameter(torch.tensor(bc, dtype=f32))

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        pooled = F.avg_pool2d(x, 4, 4)  # [B, 3, Hp/4, Wp/4]
        masks = F.conv2d(pooled, self.mask_weight, self.mask_bias)  # [B, Q, Hp/4, Wp/4]
        mean = x.mean(dim=(2, 3))  # [B, 3]
        logits = F.linear(mean, self.class_weight, self.class_bias).view(-1, 100, 20)  # [B, Q, K+1]
        return logits, masks


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/tiny_maskformer.pt"
    m = torch.jit.script(TinyMaskFormer().eval())
    m.save(out)
    print(out)
