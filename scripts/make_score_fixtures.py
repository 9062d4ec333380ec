#!/usr/bin/env python3
"""Golden maps for src/scores/: every training-free score computed from Mask2Former outputs the way
each method's official code computes it (torch, float32), as docs/method.md §11 states it.

    pip install --target /tmp/pyscores torch==2.11.0 torchvision==0.26.0 numpy==1.26.4 \
        opencv-python-headless==4.7.0.68 pillow==13.0.0 safetensors==0.8.0
    PYTHONPATH=/tmp/pyscores python3 scripts/make_score_fixtures.py tests/fixtures/scores

Writes into the folder:

* synthetic.safetensors: seeded outputs (`<case>.pred_logits` [Q, K+1], `<case>.pred_masks`
  [Q, Hp/4, Wp/4]), `<case>.sizes` = [H, W, h', w', Hp, Wp], `<case>.maskomaly_params` = anomaly
  queries (4), ground queries (2), void class, and each case's maps `<case>.<score>` [H, W]
  (plus `<case>.rba_smoothed`).
* landscape.png, portrait.png: two generated images; tiny_model.safetensors: the maps of the six
  scores of the tiny TorchScript model (tests/fixtures/tiny_maskformer.pt) on them, preprocessed
  the detectron2 way with min_size 48, max_size 96 (`<image stem>.<score>`).

The formulas (notation of methods.md):
  up(m)     F.interpolate(pred_masks, (Hp, Wp), bilinear, align_corners=False)   Mask2Former forward
  post(t)   crop t[:, :h', :w'], then bilinear (align_corners=False) to H x W     detectron2 sem_seg_postprocess
  S'        post(einsum("qc,qhw->chw", softmax(cls)[:, :-1], sigmoid(up(m))))    semantic_inference
  rba       -S'.tanh().sum(0); smoothed: torchvision GaussianBlur(7, sigma=1)    RbA get_RbA, support.py
  energy    -logsumexp(S', 0)                                                    RbA get_energy
  eam       1 - (sigmoid(post(up(m))) * softmax(cls)[:, :-1].max(1)).sum(0)      Open-set-M2F evaluator
  msp       1 - S'.max(0)                                                        convention
  entropy   -sum xlogy(pi, pi), pi = S' / S'.sum(0); ln K where S'.sum(0) == 0     convention
  maskomaly the reference rule (scripts/reference_scoring.py) on softmax(cls) and sigmoid(up(m)) in
            numpy float32, then cv2.resize(..., (W, H), INTER_AREA)               Maskomaly model.py
"""
import math
import os
import sys

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file
from torchvision import transforms

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference_scoring import get_soft_mask  # noqa: E402

torch.set_num_threads(1)
SCORES = ["maskomaly", "rba", "eam", "energy", "msp", "entropy"]
PIXEL_MEAN = [123.675, 116.280, 103.530]
PIXEL_STD = [58.395, 57.120, 57.375]


def post(t, resized, original):
    """detectron2's sem_seg_postprocess on [C, Hp, Wp]."""
    crop = t[:, : resized[0], : resized[1]]
    return F.interpolate(crop[None], size=original, mode="bilinear", align_corners=False)[0]


def all_scores(pred_logits, pred_masks, resized, original, params):
    """Every score of one image, as {name: [H, W] float32}."""
    hp, wp = pred_masks.shape[1] * 4, pred_masks.shape[2] * 4
    up = F.interpolate(pred_masks[None], size=(hp, wp), mode="bilinear", align_corners=False)[0]
    k = pred_logits.shape[1] - 1

    # Mask2Former semantic_inference + sem_seg_postprocess (RbA's and Mask2Former's sem_seg).
    mask_cls = F.softmax(pred_logits, dim=-1)[..., :-1]
    sem = torch.einsum("qc,qhw->chw", mask_cls, up.sigmoid())
    s = post(sem, resized, original)

    out = {}
    out["rba"] = -s.tanh().sum(dim=0)
    out["rba_smoothed"] = transforms.GaussianBlur(7, sigma=1)(out["rba"].unsqueeze(0)).squeeze(0)
    out["energy"] = -torch.logsumexp(s, dim=0)

    # Open-set-M2F: the mask logits are post-processed by the model, the evaluator applies the sigmoid.
    mask_pred = post(up, resized, original).sigmoid()
    max_p = pred_logits.softmax(-1)[..., :-1].max(1)[0]
    out["eam"] = 1 - (mask_pred * max_p.view(-1, 1, 1)).sum(0)

    out["msp"] = 1 - s.max(dim=0)[0]
    total = s.sum(dim=0, keepdim=True)
    pi = s / total
    ent = -torch.xlogy(pi, pi).sum(dim=0)
    out["entropy"] = torch.where(total[0] == 0, torch.full_like(ent, math.log(k)), ent)

    # Maskomaly: numpy float32 at the padded size, then INTER_AREA to the input size.
    anomaly, ground, void = params
    cls = F.softmax(pred_logits, dim=1).numpy()
    pred = up.sigmoid().numpy()
    soft = get_soft_mask(cls, pred, anomaly=anomaly, ground=ground, void=void).astype(np.float32)
    out["maskomaly"] = torch.from_numpy(
        cv2.resize(soft, (original[1], original[0]), interpolation=cv2.INTER_AREA)
    )
    return {name: v.to(torch.float32).contiguous() for name, v in out.items()}


def blobs(q, h, w, gen):
    """Mask logits with structure: a bump per query plus noise, so masks overlap."""
    ys = torch.arange(h, dtype=torch.float32).view(1, h, 1)
    xs = torch.arange(w, dtype=torch.float32).view(1, 1, w)
    cy = torch.rand(q, 1, 1, generator=gen) * h
    cx = torch.rand(q, 1, 1, generator=gen) * w
    r = torch.rand(q, 1, 1, generator=gen) * (min(h, w) / 2) + 1
    d = ((ys - cy) ** 2 + (xs - cx) ** 2).sqrt() / r
    return (1 - d) * 8 + torch.randn(q, h, w, generator=gen) * 0.5


def synthetic_case(name, seed, original, resized, padded, void_only=False, zero_block=None):
    """Q = 24 queries, K = 7 classes + void; the Maskomaly indices fit that model."""
    q, classes = 24, 8
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(q, classes, generator=gen) * 2
    if void_only:
        logits[:, -1] = 8.0
    else:
        # Every third query void, the others confident in one class (some only moderately).
        for i in range(q):
            if i % 3 == 0:
                logits[i, -1] = 6.0
            else:
                logits[i, i % (classes - 1)] = 5.0 if i % 2 else 1.5
    # Class 0 is never predicted: its probability underflows to 0 (entropy's 0 log 0 terms).
    logits[:, 0] = -200.0
    masks = blobs(q, padded[0] // 4, padded[1] // 4, gen)
    if zero_block is not None:
        # No query claims this block: sigmoid(-200) = 0 in float32, so S' = 0 there.
        (y0, y1, x0, x1) = zero_block
        masks[:, y0:y1, x0:x1] = -200.0
    params = ([5, 11, 17, 23], [2, 3], classes - 1)
    maps = all_scores(logits, masks, resized, original, params)
    t = {
        f"{name}.pred_logits": logits.contiguous(),
        f"{name}.pred_masks": masks.contiguous(),
        f"{name}.sizes": torch.tensor([*original, *resized, *padded], dtype=torch.int64),
        f"{name}.maskomaly_params": torch.tensor([*params[0], *params[1], params[2]], dtype=torch.int64),
    }
    for score, v in maps.items():
        assert v.shape == tuple(original), (name, score, v.shape)
        t[f"{name}.{score}"] = v
    return t


def scene(h, w, seed):
    """An RGB road-like picture: sky, road, a lane mark and an odd-coloured object."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.zeros((h, w, 3), dtype=np.float64)
    horizon = h * 0.4
    sky = y < horizon
    img[sky] = [110, 160, 230]
    img[~sky] = [90, 90, 95]
    img[..., 0] += 12 * np.sin(0.3 * x + seed) + 6 * np.cos(0.21 * y)
    img[..., 1] += 9 * np.sin(0.17 * y + 0.05 * x)
    lane = (~sky) & (np.abs(x - w / 2 - (y - horizon) * 0.3) < 2)
    img[lane] = [235, 235, 220]
    obj = (y - h * 0.7) ** 2 + (x - w * (0.3 + 0.1 * seed)) ** 2 < (min(h, w) * 0.15) ** 2
    img[obj] = [230, 40, 160]
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def preprocess(img, min_size, max_size, divisibility=32):
    """detectron2's test-time input: ResizeShortestEdge (PIL bilinear), normalise, zero-pad."""
    h, w = img.shape[:2]
    scale = min_size / min(h, w)
    newh, neww = (min_size, scale * w) if h < w else (scale * h, min_size)
    if max(newh, neww) > max_size:
        s = max_size / max(newh, neww)
        newh, neww = newh * s, neww * s
    newh, neww = int(newh + 0.5), int(neww + 0.5)
    if (newh, neww) != (h, w):
        img = np.asarray(Image.fromarray(img).resize((neww, newh), Image.BILINEAR))
    x = torch.as_tensor(img.astype("float32").transpose(2, 0, 1))
    mean = torch.tensor(PIXEL_MEAN, dtype=torch.float32).view(-1, 1, 1)
    std = torch.tensor(PIXEL_STD, dtype=torch.float32).view(-1, 1, 1)
    x = (x - mean) / std
    hp = -(-newh // divisibility) * divisibility
    wp = -(-neww // divisibility) * divisibility
    x = F.pad(x, [0, wp - neww, 0, hp - newh], value=0.0)
    return x, (newh, neww)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/scores"
    os.makedirs(out, exist_ok=True)
    t = {}
    # Shrunk for the network (like 1080x1920 -> 1024x1820), padded on the right, with a block that
    # nothing claims; post-processing enlarges.
    t.update(synthetic_case("landscape", 1, (40, 72), (32, 58), (32, 64), zero_block=(2, 5, 3, 7)))
    # Portrait, enlarged for the network, padded at the bottom; post-processing shrinks.
    t.update(synthetic_case("portrait", 2, (44, 25), (115, 64), (128, 64)))
    # No resize and no padding: post-processing is the identity.
    t.update(synthetic_case("identity", 3, (32, 64), (32, 64), (32, 64), zero_block=(0, 3, 10, 14)))
    # Every query predicts void.
    t.update(synthetic_case("void_only", 4, (32, 32), (32, 32), (32, 32), void_only=True))
    save_file(t, os.path.join(out, "synthetic.safetensors"))
    os.chmod(os.path.join(out, "synthetic.safetensors"), 0o644)

    here = os.path.dirname(os.path.abspath(__file__))
    model = torch.jit.load(os.path.join(here, "..", "tests", "fixtures", "tiny_maskformer.pt"))
    e2e = {}
    for stem, (h, w), seed in [("landscape", (40, 70), 0), ("portrait", (70, 40), 1)]:
        img = scene(h, w, seed)
        path = os.path.join(out, f"{stem}.png")
        Image.fromarray(img).save(path)
        img = np.asarray(Image.open(path).convert("RGB"))
        x, resized = preprocess(img, 48, 96)
        with torch.no_grad():
            logits, masks = model(x[None])
        maps = all_scores(logits[0], masks[0], resized, (h, w), ([49, 31, 83, 32], [19, 24], 19))
        for score in SCORES:
            e2e[f"{stem}.{score}"] = maps[score]
    save_file(e2e, os.path.join(out, "tiny_model.safetensors"))
    os.chmod(os.path.join(out, "tiny_model.safetensors"), 0o644)
    print(out)


if __name__ == "__main__":
    main()
