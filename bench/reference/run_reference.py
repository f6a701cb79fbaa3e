#!/usr/bin/python3
"""The official ZipIt! implementation (github.com/gstoica27/ZipIt) on a pair prepared by
bench/reference.ts: each model alone, the Ensemble, W.Avg, Permute, ZipIt! full and partial,
each scored by the reference's own evaluate_logits_alltasks. Prints one JSON object.

The reference is imported from $ZIPIT_REFERENCE (a checkout) at run time; none of its code is
copied here. The order of operations is its non_imnet_evaluation_scripts' (zipit_concept_merging
.py, hyperparameter_testing.py, base_model_concept_merging.py), under torch.no_grad():

  1. reset_bn_stats(base_model, merge_loader) for each base model (BEFORE merging and before the
     base models and the ensemble are scored);
  2. graphs = [resnet20_graph(deepcopy(base)).graphify() ...]; Merge = ModelMerge(*graphs);
     Merge.transform(deepcopy(new_model), merge_loader, transform_fn, metric_classes=
     {covariance, mean}, stop_at=stop_node, a=alpha, b=beta);
  3. reset_bn_stats(Merge, merge_loader);
  4. evaluate_logits_alltasks(Merge, test_loader, splits, num_classes).

The merge loader is the merge images bench/reference.ts wrote, in its order, batch --batch,
not shuffled and not augmented (the reference uses its augmented, shuffled train loader: here
both sides must see byte-identical inputs).

Usage (normally run by bench/reference.ts, which writes --input):
  ZIPIT_REFERENCE=/path/to/ZipIt /usr/bin/python3 bench/reference/run_reference.py \
      --input DIR [--methods models,wavg,permute,zipit,zipit-13,zipit-7] [--alpha 0.3 --beta 0.125]
Needs Debian's python3-torch, python3-scipy, python3-networkx (apt-get install -y python3-torch
python3-scipy python3-networkx); the reference's other imports that this pipeline never calls
(tqdm, fvcore, clip, einops, sklearn) are replaced by inert stubs when missing.
"""
import argparse
import json
import os
import random
import sys
import time
import types
import warnings
from copy import deepcopy

METHODS = ["models", "wavg", "permute", "zipit", "zipit-13", "zipit-7"]


def fail(message):
    print(message, file=sys.stderr)
    sys.exit(1)


def stub_missing_modules():
    """Inert stand-ins for imports of the reference that this pipeline never calls."""

    def missing(name):
        def call(*_args, **_kwargs):
            raise RuntimeError(f"{name} is stubbed by bench/reference/run_reference.py (not installed)")

        return call

    def module(name, **attrs):
        try:
            __import__(name)
            return
        except ImportError:
            pass
        m = types.ModuleType(name)
        for key, value in attrs.items():
            setattr(m, key, value)
        sys.modules[name] = m

    def progress(iterable=None, *_args, **_kwargs):
        return iterable

    module("tqdm", tqdm=progress)
    module("tqdm.auto", tqdm=progress)
    module("fvcore")
    module("fvcore.nn")
    module("fvcore.nn.flop_count", flop_count=missing("fvcore.nn.flop_count.flop_count"))
    module("clip", load=missing("clip.load"), tokenize=missing("clip.tokenize"))
    module("einops", repeat=missing("einops.repeat"), rearrange=missing("einops.rearrange"))
    module("sklearn")
    module("sklearn.cluster", AgglomerativeClustering=missing("AgglomerativeClustering"), KMeans=missing("KMeans"))
    module("sklearn.model_selection", train_test_split=missing("train_test_split"))


def import_reference():
    path = os.environ.get("ZIPIT_REFERENCE", "")
    needed = ["model_merger.py", "matching_functions.py", "metric_calculators.py", "utils.py",
              "graphs/resnet_graph.py", "models/resnets.py"]
    if not path or not all(os.path.isfile(os.path.join(path, f)) for f in needed):
        fail("Set ZIPIT_REFERENCE to a checkout of the official ZipIt! code: "
             "git clone https://github.com/gstoica27/ZipIt && export ZIPIT_REFERENCE=$PWD/ZipIt")
    os.environ.setdefault("MPLBACKEND", "Agg")
    warnings.filterwarnings("ignore")
    stub_missing_modules()
    sys.path.insert(0, os.path.abspath(path))
    import model_merger
    import matching_functions
    import metric_calculators
    import utils
    import graphs.resnet_graph as resnet_graph
    from graphs.base_graph import NodeType
    import models.resnets as resnets
    return types.SimpleNamespace(model_merger=model_merger, matching=matching_functions,
                                 metrics=metric_calculators, utils=utils, resnet_graph=resnet_graph,
                                 NodeType=NodeType, resnets=resnets)


def log(message):
    print(f"run_reference: {message}", file=sys.stderr, flush=True)


def peak_mib():
    """Whole-process peak resident memory (VmHWM), MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", required=True, help="folder written by bench/reference.ts")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--alpha", type=float, default=0.3)
    parser.add_argument("--beta", type=float, default=0.125)
    parser.add_argument("--grid", default="",
                        help="alpha/beta pairs, e.g. 0.3/0.125,0.7/1: one full ZipIt! row per pair")
    parser.add_argument("--no-base-reset", action="store_true",
                        help="skip the reference scripts' BN reset of the base models before merging")
    parser.add_argument("--dump", default="",
                        help="write each merge's per-node matchings (model B's feature for each merged "
                             "feature) and correlation matrices to this JSON file, to compare with ours")
    args = parser.parse_args()
    methods = args.methods.split(",")
    for m in methods:
        if m not in METHODS:
            fail(f"Expected methods among {','.join(METHODS)}, got '{m}'")

    ref = import_reference()
    import numpy as np
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    with open(os.path.join(args.input, "manifest.json")) as f:
        manifest = json.load(f)
    torch.set_num_threads(manifest["threads"])
    # The reference scripts seed everything with 0 first (only the unused new model's init draws).
    torch.manual_seed(0)
    random.seed(0)
    np.random.seed(0)

    def read(entry, dtype):
        data = np.fromfile(os.path.join(args.input, entry["file"]), dtype=dtype)
        return torch.from_numpy(data.reshape(entry["dims"]).copy())

    width, num_classes, in_channels = manifest["width"], manifest["numClasses"], manifest["inChannels"]

    def new_resnet():
        model = ref.resnets.resnet20(w=width, num_classes=num_classes)
        # The reference's conv1 reads 3 channels; Fashion-MNIST has 1.
        model.conv1 = nn.Conv2d(in_channels, int(width * 16), kernel_size=3, stride=1, padding=1, bias=False)
        return model

    def load(entry):
        model = new_resnet()
        blob = np.fromfile(os.path.join(args.input, entry["file"]), dtype="<f4")
        state = {}
        for t in entry["tensors"]:
            count = int(np.prod(t["dims"]))
            state[t["key"]] = torch.from_numpy(blob[t["offset"]:t["offset"] + count].reshape(t["dims"]).copy())
        expected = {k: v.shape for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
        if set(expected) != set(state):
            fail(f"{entry['path']}: keys differ from the reference's resnet20: missing "
                 f"{sorted(set(expected) - set(state))}, unexpected {sorted(set(state) - set(expected))}")
        for k, shape in expected.items():
            if tuple(state[k].shape) != tuple(shape):
                fail(f"{entry['path']}: {k} is {list(state[k].shape)}, the reference's resnet20 has {list(shape)}")
        model.load_state_dict(state, strict=False)
        return model.eval()

    merge_x = read(manifest["merge"]["images"], "<f4")
    merge_y = read(manifest["merge"]["labels"], "u1").long()
    test_x = read(manifest["test"]["images"], "<f4")
    test_y = read(manifest["test"]["labels"], "u1").long()
    merge_loader = DataLoader(TensorDataset(merge_x, merge_y), batch_size=manifest["batchSize"], shuffle=False)
    # Evaluation is in eval mode, so its batch size does not change a score: the reference's 500.
    test_loader = DataLoader(TensorDataset(test_x, test_y), batch_size=500, shuffle=False)
    splits = manifest["tasks"]
    names = [chr(65 + k) for k in range(len(manifest["models"]))]

    def score(model):
        joint, avg, per_task = ref.utils.evaluate_logits_alltasks(model, test_loader, splits=splits,
                                                                   num_classes=num_classes)
        return {"joint": joint, "tasks": per_task, "avg": avg}

    out = {"side": "reference", "reference": os.environ["ZIPIT_REFERENCE"], "torch": torch.__version__,
           "alpha": args.alpha, "beta": args.beta, "baseReset": not args.no_base_reset, "rows": []}
    with torch.no_grad():
        bases = [load(m) for m in manifest["models"]]
        # The loaded models must compute what the ONNX files compute (before any BN reset).
        check_x = read(manifest["check"]["images"], "<f4")
        diffs = []
        for k, model in enumerate(bases):
            want = read(manifest["check"]["logits"][k], "<f4")
            got = model(check_x)
            diffs.append(float((got - want).abs().max()))
            if diffs[-1] > 1e-3 * max(1.0, float(want.abs().max())):
                fail(f"{manifest['models'][k]['path']}: the reference's resnet20 with these weights differs "
                     f"from onnxruntime by {diffs[-1]:.3g} on the first test images; the mapping is wrong")
        out["loadMaxAbsDiff"] = diffs
        if not args.no_base_reset:
            # The reset is deterministic (same images, same order), so the first process of a run
            # saves its result and the others load it instead of repeating it.
            cache = os.path.join(args.input, "bases-reset.pt")
            if os.path.exists(cache):
                for base, state in zip(bases, torch.load(cache)):
                    base.load_state_dict(state)
            else:
                log("resetting the base models' BN statistics on the merge images")
                started = time.perf_counter()
                bases = [ref.utils.reset_bn_stats(base, merge_loader) for base in bases]
                out["baseResetSeconds"] = time.perf_counter() - started
                torch.save([base.state_dict() for base in bases], cache)

        graph0 = ref.resnet_graph.resnet20(deepcopy(bases[0])).graphify()

        def stop_node(layer):
            """The PREFIX node whose activations feed `layer` (a stage's first shortcut conv)."""
            for node in graph0.G:
                if graph0.get_node_info(node)["type"] != ref.NodeType.PREFIX:
                    continue
                for succ in graph0.succs(node):
                    info = graph0.get_node_info(succ)
                    if info["type"] == ref.NodeType.MODULE and info["layer"] == layer:
                        return node
            fail(f"No PREFIX node feeds {layer} in the reference's resnet20 graph")

        prefixes = [n for n in graph0.G if graph0.get_node_info(n)["type"] == ref.NodeType.PREFIX]
        # zipped/total in the paper's count (stem conv + block convs on the longest path, of 20).
        stops = {"zipit": (None, "20/20"), "zipit-13": (stop_node("layer3.0.shortcut.0"), "13/20"),
                 "zipit-7": (stop_node("layer2.0.shortcut.0"), "7/20")}
        out["graph"] = {"metricNodes": prefixes, "stopNodes": {k: v[0] for k, v in stops.items()}}
        functions = {"wavg": ("W.Avg", ref.matching.match_tensors_identity, {}),
                     "permute": ("Permute", ref.matching.match_tensors_permute, {}),
                     "zipit": (None, ref.matching.match_tensors_zipit, {"a": args.alpha, "b": args.beta})}
        # A grid runs the full zip once per alpha/beta pair, rows named by the pair.
        grid = [tuple(float(v) for v in ab.split("/")) for ab in args.grid.split(",") if ab]
        runs = [(m, None) for m in methods if not (grid and m == "zipit")]
        runs += [("zipit", ab) for ab in grid]
        for method, ab in runs:
            log(method if ab is None else f"{method} {ab[0]:g}/{ab[1]:g}")
            if method == "models":
                for n, base in zip(names, bases):
                    out["rows"].append(dict(method=f"Model {n}", **score(base)))
                out["rows"].append(dict(method="Ensemble", **score(ref.utils.SpoofModel(bases))))
                continue
            name, transform_fn, params = functions[method.split("-")[0]]
            if ab is not None:
                params = {"a": ab[0], "b": ab[1]}
            stop, label = stops.get(method, (None, None))
            graphs = [ref.resnet_graph.resnet20(deepcopy(base)).graphify() for base in bases]
            merge = ref.model_merger.ModelMerge(*graphs, device="cpu")
            started = time.perf_counter()
            merge.transform(deepcopy(new_resnet()), merge_loader, transform_fn=transform_fn,
                            metric_classes=ref.metrics.get_metric_fns(["covariance", "mean"]),
                            stop_at=stop, **params)
            transformed = time.perf_counter()
            ref.utils.reset_bn_stats(merge, merge_loader)
            finished = time.perf_counter()
            row = dict(method=(name or f"ZipIt!{label}") + ("" if ab is None else f" {ab[0]:g}/{ab[1]:g}"),
                       **score(merge))
            row.update(mergeSeconds=finished - started, transformSeconds=merge.compute_transform_time,
                       metricsAndApplySeconds=transformed - started - merge.compute_transform_time,
                       bnResetSeconds=finished - transformed)
            out["rows"].append(row)
            if args.dump:
                dumps = out.setdefault("dumps", {})
                dumps[row["method"]] = {
                    str(node): {
                        # unmerge chunk k is [features of model k, merged features]: for each merged
                        # feature the model-B features it covers.
                        "b": [[int(i) for i in torch.nonzero(col).flatten()] for col in merge.unmerges[node][1].T],
                        "correlation": ref.matching.compute_correlation(
                            merge.metrics[node]["covariance"]).tolist(),
                    }
                    for node in merge.unmerges
                }
            merge.clear_hooks()
    out["peakMiB"] = peak_mib()
    if args.dump:
        with open(args.dump, "w") as f:
            json.dump(out.pop("dumps", {}), f)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
