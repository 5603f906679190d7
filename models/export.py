#!/usr/bin/python3
"""export.py — export a torchvision classifier to ONNX with classifyd's metadata.

    export.py --arch resnet50 --weights models/weights/resnet50-0676ba61.pth --out models/resnet50.onnx
    export.py --arch googlenet --random 1 --out build/models/googlenet.onnx [--opset 13]

Two weight sources:
  --weights FILE.pth  an official torchvision state dict (see manifest.json / fetch.py);
                      the export is marked untrained=false.
  --random SEED       deterministic random weights from torchvision's own initializers,
                      with BatchNorm running statistics calibrated on image-like inputs
                      so activations and logits behave like a trained net's; marked
                      untrained=true. These are the test models of `make test`.

The same command always writes the same tensors: everything random comes from
torch.manual_seed(SEED) or from a torch.Generator seeded with SEED, and the calibration
runs in a fixed number of threads.

The graph: input `input` [batch,3,224,224] (symbolic batch), output `logits`
[batch,1000], eval mode, constant folding on. Metadata keys: models/METADATA.md.

build_model() and image_like_batch() are imported by tests/diff/test_engine_vs_torch.py,
which rebuilds the same PyTorch model to compare the engine against it.
"""
import argparse
import hashlib
import io
import json
import os
import sys
import time

import torch
import torchvision

ARCHS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "googlenet")
OPSETS = range(11, 18)  # what torch 1.13 exports and classifyd supports
DEFAULT_OPSET = 13
IN_SHAPE = (3, 224, 224)
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
PREPROCESS = {"resize_shorter": 256, "crop": [224, 224], "mean": list(MEAN), "std": list(STD),
              "channel_order": "RGB", "pixel_range": "0-1"}
# BatchNorm calibration of random models: CALIB_BATCHES x CALIB_BATCH images at 224x224.
CALIB_BATCHES = 4
CALIB_BATCH = 8
# Spread of a random model's logits after classifier calibration; a trained ImageNet net's
# logits have a per-image standard deviation of roughly 2-4 and a top-1 near 10-20.
LOGIT_STD = 3.0
# Calibration and export use a fixed thread count so float reductions, and therefore the
# stored tensors, are the same on every machine regardless of its core count.
THREADS = 2


def labels():
    """The 1000 ImageNet class names bundled with torchvision (no download)."""
    return list(torchvision.models.ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


def image_like_batch(n, seed, size=IN_SHAPE[1]):
    """n deterministic, varied, image-like tensors, normalized like ImageNet inputs.

    Each image is smooth colour blobs (a coarse random grid upsampled bilinearly)
    plus a little fine texture, in [0,1], then normalized with the ImageNet mean/std,
    so its statistics resemble a real preprocessed photo rather than white noise.
    """
    g = torch.Generator().manual_seed(int(seed))
    out = torch.empty(n, 3, size, size)
    for i in range(n):
        cells = 2 + int(torch.randint(0, 14, (1,), generator=g))
        coarse = torch.rand(1, 3, cells, cells, generator=g)
        img = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear",
                                              align_corners=False)
        img = img + 0.08 * torch.randn(1, 3, size, size, generator=g)
        out[i] = img.clamp_(0.0, 1.0)[0]
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (out - mean) / std


def _construct(arch, random_init):
    """The torchvision module, configured as torchvision does for pretrained weights."""
    if arch == "googlenet":
        # Pretrained googlenet: aux heads dropped, transform_input on, no init (weights
        # follow). Random: the same graph (so transform_input's ops get tested) with
        # torchvision's own initialization.
        return torchvision.models.GoogLeNet(num_classes=1000, aux_logits=False,
                                            transform_input=True, init_weights=random_init)
    return getattr(torchvision.models, arch)(weights=None, num_classes=1000)


def _calibrate_batchnorm(model, seed):
    """Set BatchNorm running stats to the cumulative average over image-like batches."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative moving average
    model.train()
    with torch.no_grad():
        for b in range(CALIB_BATCHES):
            model(image_like_batch(CALIB_BATCH, seed * 1000 + b))
    for bn in bns:
        bn.momentum = 0.1  # torchvision's default, so the module is unchanged otherwise


def _calibrate_classifier(model, seed):
    """Rescale and re-centre the final Linear so logits look like a trained net's.

    With torchvision's init the logits are tiny (std ~0.5) and mostly the same for every
    input, so softmax is almost uniform and top-5 probabilities all differ by < 1e-3:
    useless for checking predictions. Here the input-independent part of each logit
    (its mean over calibration images) moves into the bias with the sign flipped, and
    the weights are scaled so the remaining logits have standard deviation LOGIT_STD.
    """
    fc = model.fc
    feats = []
    hook = fc.register_forward_hook(lambda mod, inp, out: feats.append(inp[0].detach()))
    with torch.no_grad():
        model.eval()
        model(image_like_batch(CALIB_BATCH, seed * 1000 + CALIB_BATCHES))
        hook.remove()
        z = feats[0] @ fc.weight.t()
        mean = z.mean(0)
        scale = LOGIT_STD / float((z - mean).std())
        fc.weight.mul_(scale)
        fc.bias.copy_(-scale * mean)


def _load_state_dict(model, arch, path):
    state = torch.load(path, map_location="cpu")
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not a state dict")
    if arch == "googlenet":
        state = {k: v for k, v in state.items() if not k.startswith("aux")}
    model.load_state_dict(state, strict=True)


def build_model(arch, seed=None, weights=None):
    """The eval-mode PyTorch model that export() writes: random (seed) or loaded (weights)."""
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r} (known: {', '.join(ARCHS)})")
    if (seed is None) == (weights is None):
        raise ValueError("exactly one of seed and weights is required")
    torch.set_num_threads(THREADS)
    if seed is not None:
        torch.manual_seed(int(seed))
        model = _construct(arch, random_init=True)
        _calibrate_batchnorm(model, int(seed))
        _calibrate_classifier(model, int(seed))
    else:
        model = _construct(arch, random_init=False)
        _load_state_dict(model, arch, weights)
    return model.eval()


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _onnx_bytes(model, opset):
    import warnings
    buf = io.BytesIO()
    dummy = torch.zeros(1, *IN_SHAPE)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, dummy, buf, opset_version=opset, input_names=["input"],
                          output_names=["logits"], do_constant_folding=True,
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                          training=torch.onnx.TrainingMode.EVAL)
    return buf.getvalue()


def metadata(arch, name, untrained, weights_text):
    return {"model_name": name, "arch": arch, "labels": json.dumps(labels()),
            "preprocess": json.dumps(PREPROCESS), "untrained": "true" if untrained else "false",
            "weights": weights_text}


def export(model, arch, out, opset=DEFAULT_OPSET, meta=None):
    """Write `model` to `out` as ONNX with `meta` as metadata_props; checks the result."""
    import onnx
    if opset not in OPSETS:
        raise ValueError(f"opset {opset} unsupported (use {OPSETS.start}..{OPSETS.stop - 1})")
    proto = onnx.load_from_string(_onnx_bytes(model, opset))
    del proto.metadata_props[:]
    for k, v in (meta or {}).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.checker.check_model(proto)
    tmp = f"{out}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(proto.SerializeToString())
    os.replace(tmp, out)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--arch", required=True, choices=ARCHS)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--weights", metavar="FILE.pth", help="official torchvision state dict")
    src.add_argument("--random", metavar="SEED", type=int, help="calibrated random weights")
    p.add_argument("--source", default="", help="where --weights came from (URL), for metadata")
    p.add_argument("--name", help="model_name metadata (default: the arch)")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET)
    p.add_argument("--out", required=True)
    return p.parse_args(argv)


def main(argv=None):
    a = parse_args(argv)
    if a.opset not in OPSETS:
        sys.exit(f"export: opset {a.opset} unsupported (torch 1.13 + classifyd: "
                 f"{OPSETS.start}..{OPSETS.stop - 1})")
    t0 = time.monotonic()
    if a.random is not None:
        model = build_model(a.arch, seed=a.random)
        text = f"random seed {a.random} (torchvision init; BatchNorm and classifier calibrated)"
    else:
        if not os.path.isfile(a.weights):
            sys.exit(f"export: {a.weights}: no such file")
        try:
            model = build_model(a.arch, weights=a.weights)
        except Exception as e:  # torch.load/load_state_dict raise many types on bad files
            sys.exit(f"export: {a.weights}: not {a.arch} weights: {str(e).splitlines()[0]}")
        text = " ".join(x for x in (a.source, f"file {os.path.basename(a.weights)}",
                                    f"sha256 {sha256_file(a.weights)}") if x)
    meta = metadata(a.arch, a.name or a.arch, a.random is not None, text)
    export(model, a.arch, a.out, a.opset, meta)
    print(f"export: {a.out} ({a.arch}, opset {a.opset}, {text}) in "
          f"{time.monotonic() - t0:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
