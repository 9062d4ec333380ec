#!/usr/bin/env python3
"""A random-weights Mask2Former Swin-L (Cityscapes semantic: 100 queries, 19 classes) checkpoint in
the detectron2 model-zoo layout, for load tests of the real-size path without the real file.

    python3 scripts/make_swin_large_pkl.py /tmp/swinl_random.pkl
    MASKOMALY_SWINL_CHECKPOINT=/tmp/swinl_random.pkl cargo test --lib swin_large_checkpoint -- --ignored --nocapture

Same tool versions as make_model_fixtures.py; the file is ~1.2 GB (protocol 2 writes array bytes as
latin-1 text, as the zoo files of that era do).
"""
import os
import pickle
import sys

import torch
from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation, SwinConfig

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_model_fixtures import hf_to_d2  # noqa: E402


def main():
    out = sys.argv[1]
    torch.manual_seed(0)
    backbone = SwinConfig(
        embed_dim=192,
        depths=[2, 2, 18, 2],
        num_heads=[6, 12, 24, 48],
        window_size=12,
        out_features=["stage1", "stage2", "stage3", "stage4"],
    )
    cfg = Mask2FormerConfig(backbone_config=backbone, num_labels=19, num_queries=100, use_pretrained_backbone=False)
    model = Mask2FormerForUniversalSegmentation(cfg).eval()
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    d2 = hf_to_d2(sd, cfg)
    n = sum(v.numel() for k, v in d2.items() if v.is_floating_point() and not k.startswith("criterion."))
    print(f"{len(d2)} tensors, {n} float values (without criterion.*)")
    with open(out, "wb") as f:
        pickle.dump({"model": {k: v.numpy() for k, v in d2.items()}, "__author__": "random"}, f, protocol=2)


if __name__ == "__main__":
    main()
