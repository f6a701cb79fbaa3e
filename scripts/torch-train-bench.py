"""Training throughput of the zoo's ResNet-20 and ViT in PyTorch, the reference for bench/train.ts.

Prints one JSON object: images/s per model (resnet20xW, vitxW) at the given batch size and
thread count, with the same layer layout as src/zoo (ResNet-20: conv-bn-relu, BasicBlocks with
conv+BN shortcuts where the shape changes, GAP, linear head; ViT: torch-train-vit.py's model,
whose layout src/zoo/vit.ts follows, dim 64 x W) on 1x28x28 inputs and SGD with momentum.
"""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet20(nn.Module):
    def __init__(self, width, classes, channels=1):
        super().__init__()
        c = 16 * width
        self.conv1 = nn.Conv2d(channels, c, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        layers = []
        for stage, w in enumerate([16 * width, 32 * width, 64 * width]):
            for block in range(3):
                stride = 2 if stage > 0 and block == 0 else 1
                layers.append(Block(c, w, stride))
                c = w
        self.layers = nn.Sequential(*layers)
        self.linear = nn.Linear(c, classes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layers(out)
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


def build(name):
    arch, width = name.rsplit("x", 1)
    if arch == "resnet20":
        return ResNet20(int(width), 10)
    if arch == "vit":
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from importlib import import_module

        return import_module("torch-train-vit").ViT(dim=64 * int(width))
    raise SystemExit(f"unknown model {name}")


def measure(name, batch, steps, warmup):
    torch.manual_seed(0)
    model = build(name)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(batch, 1, 28, 28)
    y = torch.randint(0, 10, (batch,))
    for i in range(warmup + steps):
        if i == warmup:
            start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    return batch * steps / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="resnet20x1,resnet20x4,vitx1")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = {"torch": torch.__version__, "batch": args.batch, "threads": args.threads, "imagesPerSecond": {}}
    for name in args.models.split(","):
        width = int(name.rsplit("x", 1)[1])
        steps = args.steps if width <= 2 else max(3, args.steps // 3)
        result["imagesPerSecond"][name] = round(measure(name, args.batch, steps, args.warmup), 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
