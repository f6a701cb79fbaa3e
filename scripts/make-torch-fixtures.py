"""Exports tiny, seeded, untrained PyTorch models to test/fixtures/torch-extra/.

Each model shows one pattern real `torch.onnx.export` files contain (other opsets, constant
folding off, a channel Concat, LayerNorm, BatchNorm kept as a node, a bottleneck block with a
1x1 downsample). manifest.json records, per file, the input shape, the exporter settings and
PyTorch's logits on a fixed probe input (the same formula as test/helpers.ts probeInput, so
no random numbers cross the language boundary).

Run from the repository root with Debian's python3-torch (1.13):
    /usr/bin/python3 scripts/make-torch-fixtures.py
"""
import json
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(__file__), "..", "test", "fixtures", "torch-extra")
PROBE_BATCH = 2


def probe(shape):
    """[PROBE_BATCH, *shape] with x[i] = sin(0.37 i) + 0.5 cos(0.011 i), i the flat index."""
    n = PROBE_BATCH * math.prod(shape)
    i = torch.arange(n, dtype=torch.float64)
    return (torch.sin(i * 0.37) + 0.5 * torch.cos(i * 0.011)).float().reshape(PROBE_BATCH, *shape)


def randomize_bn(module, generator):
    # Untrained BN is the identity (mean 0, var 1, gamma 1, beta 0); random statistics make a
    # test notice if BN parameters are dropped or bound to the wrong space.
    for m in module.modules():
        if isinstance(m, (nn.BatchNorm2d, nn.LayerNorm)):
            with torch.no_grad():
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=generator))
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=generator))
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=generator))
            m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=generator))


class SmallCnn(nn.Module):
    """conv-bn-relu-pool x2, then x.view(x.size(0), -1) (a Shape chain) and two Linear layers."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 12, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(12)
        self.fc1 = nn.Linear(12 * 7 * 7, 16)
        self.fc2 = nn.Linear(16, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        x = x.view(x.size(0), -1)
        return self.fc2(F.relu(self.fc1(x)))


class ConcatCnn(nn.Module):
    """Two conv branches (3x3 and 1x1) concatenated on channels, a conv reading both, GAP, Linear."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.left = nn.Conv2d(8, 6, 3, padding=1)
        self.right = nn.Conv2d(8, 4, 1)
        self.mix = nn.Conv2d(10, 12, 3, padding=1, stride=2)
        self.fc = nn.Linear(12, 10)

    def forward(self, x):
        x = F.relu(self.stem(x))
        x = torch.cat([F.relu(self.left(x)), F.relu(self.right(x))], dim=1)
        x = F.relu(self.mix(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class LayerNormMlp(nn.Module):
    """Flatten, Linear-LayerNorm-ReLU x2, Linear."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(28 * 28, 32)
        self.ln1 = nn.LayerNorm(32)
        self.fc2 = nn.Linear(32, 24)
        self.ln2 = nn.LayerNorm(24)
        self.fc3 = nn.Linear(24, 10)

    def forward(self, x):
        x = torch.flatten(x, 1)
        x = F.relu(self.ln1(self.fc1(x)))
        x = F.relu(self.ln2(self.fc2(x)))
        return self.fc3(x)


class Bottleneck(nn.Module):
    """torchvision's Bottleneck: 1x1-3x3-1x1 (expansion 4), 1x1 conv+BN downsample."""

    def __init__(self, cin, planes, stride):
        super().__init__()
        cout = planes * 4
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.downsample = nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
        )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.downsample(x))


class BottleneckNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.layer1 = Bottleneck(8, 4, 1)
        self.layer2 = Bottleneck(16, 6, 2)
        self.fc = nn.Linear(24, 10)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer2(self.layer1(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


# name, model class, input C x H x W, export keyword arguments, what the file shows
CASES = [
    (
        "cnn-opset11",
        SmallCnn,
        (1, 28, 28),
        dict(opset_version=11, do_constant_folding=False, keep_initializers_as_inputs=True),
        "opset 11, constant folding off (Constant nodes, Shape-Gather-Unsqueeze-Concat-Reshape), "
        "initializers duplicated as graph inputs",
    ),
    (
        "cnn-opset17",
        SmallCnn,
        (1, 28, 28),
        dict(opset_version=17, do_constant_folding=False),
        "opset 17, constant folding off",
    ),
    (
        "concat",
        ConcatCnn,
        (3, 16, 16),
        dict(opset_version=13),
        "channel Concat of two conv branches; 3x16x16 input",
    ),
    (
        "layernorm",
        LayerNormMlp,
        (1, 28, 28),
        dict(opset_version=17),
        "LayerNormalization nodes (opset 17), Flatten",
    ),
    (
        "bn-preserve",
        SmallCnn,
        (1, 28, 28),
        dict(opset_version=15, training=torch.onnx.TrainingMode.PRESERVE),
        "BatchNormalization kept as nodes (training=PRESERVE, model in eval mode), opset 15",
    ),
    (
        "bottleneck",
        BottleneckNet,
        (1, 28, 28),
        dict(opset_version=13),
        "two torchvision Bottleneck blocks with 1x1 conv+BN downsample (BN folded on export)",
    ),
]


def main():
    os.makedirs(OUT, exist_ok=True)
    manifest = {
        "exporter": f"torch {torch.__version__} torch.onnx.export, eval mode, seeded and untrained",
        "probe": "x[i] = sin(0.37 i) + 0.5 cos(0.011 i) over the flat [2, C, H, W] input "
        "(test/helpers.ts probeInput)",
        "models": [],
    }
    for seed, (name, make, shape, kwargs, note) in enumerate(CASES):
        torch.manual_seed(1000 + seed)
        model = make()
        randomize_bn(model, torch.Generator().manual_seed(2000 + seed))
        model.eval()
        x = probe(shape)
        with torch.no_grad():
            logits = model(x)
        path = os.path.join(OUT, f"{name}.onnx")
        torch.onnx.export(
            model,
            (x,),
            path,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            **kwargs,
        )
        manifest["models"].append(
            {
                "name": name,
                "file": f"{name}.onnx",
                "input_shape": list(shape),
                "opset": kwargs["opset_version"],
                "do_constant_folding": kwargs.get("do_constant_folding", True),
                "note": note,
                "logits": logits.tolist(),
                "bytes": os.path.getsize(path),
            }
        )
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
