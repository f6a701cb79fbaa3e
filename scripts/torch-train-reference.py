"""PyTorch reference for `zipit train`: the same ResNet-20, recipe and data, to tell what
accuracy a class half of Fashion-MNIST allows apart from what our trainer reaches.

Same as src/train: 10-way head trained on the chosen classes only, mean cross-entropy,
SGD momentum 0.9, weight decay 5e-4 on conv and linear weights, peak lr 0.1 with a linear
warm-up over min(200, ceil(3% of steps)) steps then cosine to 0, batch 128 (last partial
batch dropped), random shift of up to 2 pixels with zero fill and a left-right flip,
normalised by the whole training set's mean and std. Reports test accuracy among the
task's classes. Usage:
  /usr/bin/python3 scripts/torch-train-reference.py --classes 0,2,4,6,8 --epochs 5 --seed 1
"""
import argparse
import gzip
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
from importlib import import_module

ResNet20 = import_module("torch-train-bench").ResNet20

DATA = os.path.join(os.path.dirname(__file__), "..", "data", "fashion-mnist")


def idx(name):
    with gzip.open(os.path.join(DATA, name)) as f:
        raw = f.read()
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def augment(x, gen):
    """Random shift in [-2, 2] per image with zero (normalised background) fill, then flip."""
    n = x.shape[0]
    padded = F.pad(x, (2, 2, 2, 2), value=0.0)
    out = torch.empty_like(x)
    shifts = torch.randint(0, 5, (n, 2), generator=gen)
    flips = torch.rand(n, generator=gen) < 0.5
    for i in range(n):
        dy, dx = shifts[i].tolist()
        img = padded[i, :, dy : dy + 28, dx : dx + 28]
        out[i] = img.flip(-1) if flips[i] else img
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--classes", required=True)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    classes = [int(c) for c in args.classes.split(",")]

    train_x, train_y = idx("train-images-idx3-ubyte.gz"), idx("train-labels-idx1-ubyte.gz")
    test_x, test_y = idx("t10k-images-idx3-ubyte.gz"), idx("t10k-labels-idx1-ubyte.gz")
    mean, std = train_x.mean() / 255, train_x.std() / 255

    def prepare(x, y):
        keep = np.isin(y, classes)
        images = (torch.from_numpy(x[keep].astype(np.float32)) / 255 - mean) / std
        return images.unsqueeze(1), torch.from_numpy(y[keep].astype(np.int64))

    xs, ys = prepare(train_x, train_y)
    xt, yt = prepare(test_x, test_y)

    model = ResNet20(1, 10)
    decay = [p for n, p in model.named_parameters() if n.endswith("weight") and p.dim() > 1]
    rest = [p for n, p in model.named_parameters() if not (n.endswith("weight") and p.dim() > 1)]
    opt = torch.optim.SGD(
        [{"params": decay, "weight_decay": 5e-4}, {"params": rest, "weight_decay": 0}],
        lr=0.1,
        momentum=0.9,
    )
    batch = 128
    steps_per_epoch = len(xs) // batch
    total = steps_per_epoch * args.epochs
    warmup = min(200, math.ceil(0.03 * total))

    def lr_at(step):
        if step < warmup:
            return 0.1 * (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.05 * (1 + math.cos(math.pi * min(1.0, progress)))

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
    task = logits[:, classes].argmax(1)
    predicted = torch.tensor(classes)[task]
    accuracy = (predicted == yt).float().mean().item()
    print(json.dumps({"classes": classes, "epochs": args.epochs, "seed": args.seed,
                      "testTaskAccuracy": round(accuracy, 4), "trainSeconds": round(seconds, 1)}))


if __name__ == "__main__":
    main()
