#!/usr/bin/env python3
"""Model benchmark, Python side: Hugging Face transformers' Mask2Former (the reference port) on CPU.

    python3 scripts/bench_model.py --preset swin-large --height 256 --width 512 --threads 2 --reps 3 \
        [--mode fp32|autocast-bf16] --dir DIR

Builds the model with seeded random weights, saves it to DIR (model.safetensors + config.json, the
layout `checkpoint.format: hf` reads), times the forward on the deterministic input
x[c, y, x] = sin(0.01 * (7c + 3y + x)) (float32, shape [1, 3, H, W]) and writes, per mode,
DIR/hf_<mode>.npz with `pred_logits` / `pred_masks` and DIR/hf_<mode>.json with the median seconds
and the multiply-add FLOPs of one forward (torch's FlopCounterMode: matmuls, linear layers,
convolutions, attention). `autocast-bf16` runs under torch.autocast("cpu", dtype=torch.bfloat16).
For mode fp32 also DIR/hf_out.npz and DIR/hf_seconds.txt. Needs torch and transformers.
"""
import argparse
import json
import os
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode
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
    ap.add_argument("--mode", default="fp32", choices=["fp32", "autocast-bf16"])
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
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.mode == "autocast-bf16")
    times = []
    with torch.no_grad(), autocast:
        # The warm-up pass counts the FLOPs.
        counter = FlopCounterMode(display=False)
        t0 = time.perf_counter()
        with counter:
            out = model(pixel_values=inp)
        first = time.perf_counter() - t0
        print(f"{a.mode} {a.height}x{a.width}: warm-up {first:.1f} s", flush=True)
        for _ in range(a.reps):
            t0 = time.perf_counter()
            out = model(pixel_values=inp)
            times.append(time.perf_counter() - t0)
    logits = out.class_queries_logits[0].float().numpy()
    masks = out.masks_queries_logits[0].float().numpy()
    np.savez(os.path.join(a.dir, f"hf_{a.mode}.npz"), pred_logits=logits, pred_masks=masks)
    med = sorted(times)[len(times) // 2] if times else first
    with open(os.path.join(a.dir, f"hf_{a.mode}.json"), "w") as f:
        json.dump({"mode": a.mode, "seconds": med, "times": times, "warmup_seconds": first,
                   "flops": counter.get_total_flops(), "torch": torch.__version__,
                   "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                   "mkldnn_bf16": bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())}, f)
    if a.mode == "fp32":
        np.savez(os.path.join(a.dir, "hf_out.npz"), pred_logits=logits, pred_masks=masks)
        with open(os.path.join(a.dir, "hf_seconds.txt"), "w") as f:
            f.write(f"{med:.6f}\n")
    print(f"{med:.6f}")


if __name__ == "__main__":
    main()
