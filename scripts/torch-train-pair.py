"""Trains one ResNet-20 model in PyTorch with the recipe of the reference's mergeable models, and
exports it to ONNX twice: BatchNorm kept as nodes (`-bn.onnx`) and folded into the convolutions
(`.onnx`, PyTorch's default eval export). The comparison point for `zipit train` (issue "Models
that merge") and a source of PyTorch pairs for side-by-side runs against the reference.

Recipe (the reference's, as measured to give pairs that merge): the zoo's ResNet-20 layout
(conv-BN-ReLU stem, 3 stages of 3 BasicBlocks with a 3x3 conv + BN projection shortcut, global
average pool, a linear head over all 10 classes trained on the chosen classes only), Kaiming-
normal conv and linear weights, SGD lr 0.1, momentum 0.9, weight decay 5e-4 on ALL parameters
(PyTorch's default: BN and biases included), batch 128, linear warm-up over the first 15% of
the steps then linear decay to 0, a random 28x28 crop of the image padded by 2 black (raw 0)
pixels and a horizontal flip. Inputs: pixel / 255, then (x - 0.2860) / 0.3530.

Usage (Debian's python3-torch):
  /usr/bin/python3 scripts/torch-train-pair.py --classes 0,2,4,6,8 --seed 11 --out runs/torch/a
writes runs/torch/a.onnx, runs/torch/a-bn.onnx and prints one JSON line.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
from importlib import import_module

ResNet20 = import_module("torch-train-bench").ResNet20
idx = import_module("torch-train-reference").idx

MEAN, STD = 0.2860, 0.3530


def augment(x, gen):
    """Random crop of the image padded by 2 black pixels (raw 0, normalised -MEAN/STD), then a flip."""
    n = x.shape[0]
    padded = F.pad(x, (2, 2, 2, 2), value=-MEAN / STD)
    out = torch.empty_like(x)
    shifts = torch.randint(0, 5, (n, 2), generator=gen)
    flips = torch.rand(n, generator=gen) < 0.5
    for i in range(n):
        dy, dx = shifts[i].tolist()
        img = padded[i, :, dy : dy + 28, dx : dx + 28]
        out[i] = img.flip(-1) if flips[i] else img
    return out


def load_halves(classes):
    """The training images of `classes` and all test images, normalised, as [N, 1, 28, 28] tensors with labels."""
    train_x, train_y = idx("train-images-idx3-ubyte.gz"), idx("train-labels-idx1-ubyte.gz")
    test_x, test_y = idx("t10k-images-idx3-ubyte.gz"), idx("t10k-labels-idx1-ubyte.gz")

    def prepare(x, y, keep):
        images = (torch.from_numpy(x[keep].astype(np.float32)) / 255 - MEAN) / STD
        return images.unsqueeze(1), torch.from_numpy(y[keep].astype(np.int64))

    xs, ys = prepare(train_x, train_y, np.isin(train_y, classes))
    xt, yt = prepare(test_x, test_y, np.ones(len(test_y), dtype=bool))
    return xs, ys, xt, yt


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--classes", required=True)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", required=True, help="path prefix of the two ONNX files")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    classes = [int(c) for c in args.classes.split(",")]

    xs, ys, xt, yt = load_halves(classes)

    model = ResNet20(1, 10)
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    batch = 128
    steps_per_epoch = len(xs) // batch
    total = steps_per_epoch * args.epochs
    warmup = math.ceil(0.15 * total)

    def lr_at(step):
        if step < warmup:
            return 0.1 * (step + 1) / warmup
        return 0.1 * max(0.0, total - 1 - step) / max(1, total - 1 - warmup)

    started = time.perf_counter()
    step = 0
    for _ in range(args.epochs):
        model.train()
        order = torch.randperm(len(xs), generator=gen)
        for s in range(steps_per_epoch):
            chosen = order[s * batch : (s + 1) * batch]
            for group in opt.param_groups:
                group["lr"] = lr_at(step)
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(augment(xs[chosen], gen)), ys[chosen])
            loss.backward()
            opt.step()
            step += 1
    seconds = time.perf_counter() - started

    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(xt[i : i + 1000]) for i in range(0, len(xt), 1000)])
    mine = torch.from_numpy(np.isin(yt.numpy(), classes))
    own = torch.tensor(classes)
    accuracy = (own[logits[mine][:, own].argmax(1)] == yt[mine]).float().mean().item()

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    example = torch.zeros(1, 1, 28, 28)
    for suffix, mode in (("", torch.onnx.TrainingMode.EVAL), ("-bn", torch.onnx.TrainingMode.PRESERVE)):
        torch.onnx.export(
            model,
            example,
            f"{args.out}{suffix}.onnx",
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=13,
            training=mode,
            do_constant_folding=True,
        )
    print(json.dumps({"classes": classes, "epochs": args.epochs, "seed": args.seed,
                      "testTaskAccuracy": round(accuracy, 4), "trainSeconds": round(seconds, 1),
                      "out": args.out}))


if __name__ == "__main__":
    main()
