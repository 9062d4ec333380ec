#!/usr/bin/env python3
"""Model benchmark, Python side: Hugging Face transformers' Mask2Former (the reference port) on CPU.

    python3 scripts/bench_model.py --preset swin-large --height 256 --width 512 --threads 2 --reps 3 --dir DIR

Builds the model with seeded random weights, saves it to DIR (model.safetensors + config.json, the
layout `checkpoint.format: hf` reads), times the forward on the deterministic input
x[c, y, x] = sin(0.01 * (7c + 3y + x)) (float32, shape [1, 3, H, W]) and writes DIR/hf_out.npz with
`pred_logits` / `pred_masks` plus DIR/hf_seconds.txt (median seconds). Needs torch and transformers.
"""
import argparse
import os
import time

import numpy as np
import torch
from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation, SwinConfig


def config(preset):
    if preset == "swin-large":
        backbone = SwinConfig(embed_dim=192, depths=[2, 2, 18, 2], num_heads=[6, 12, 24, 48], window_size=12,
                              out_features=["stage1", "stage2", "stage3", "stage4"])
        return Mask2FormerConfig(backbone_config=backbone, num_labels=19, num_queries=100,
                                 use_pretrained_backbone=False)
    raise SystemExit(f"unknown preset {preset}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="swin-large")
    ap.add_argument("--height", type=int, default=256)
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--dir", required=True)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = Mask2FormerForUniversalSegmentation(config(a.preset)).eval()
    os.makedirs(a.dir, exist_ok=True)
    if not os.path.exists(os.path.join(a.dir, "model.safetensors")):
        model.save_pretrained(a.dir, safe_serialization=True)
    c, y, x = np.meshgrid(np.arange(3), np.arange(a.height), np.arange(a.width), indexing="ij")
    inp = torch.from_numpy(np.sin(0.01 * (7 * c + 3 * y + x)).astype(np.float32))[None]
    times = []
    with torch.no_grad():
        out = model(pixel_values=inp)
        for _ in range(a.reps):
            t0 = time.perf_counter()
            out = model(pixel_values=inp)
            times.append(time.perf_counter() - t0)
    np.savez(os.path.join(a.dir, "hf_out.npz"), pred_logits=out.class_queries_logits[0].numpy(),
             pred_masks=out.masks_queries_logits[0].numpy())
    med = sorted(times)[len(times) // 2]
    with open(os.path.join(a.dir, "hf_seconds.txt"), "w") as f:
        f.write(f"{med:.6f}\n")
    print(f"{med:.6f}")


if __name__ == "__main__":
    main()
