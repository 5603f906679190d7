#!/usr/bin/python3
"""test_preprocess.py — our decode + preprocess against torchvision.

For each image, build/tools/preprocess_dump writes our 3x224x224 float32
tensor; the reference is torchvision 0.14's Resize(256) / CenterCrop(224) /
ToTensor / Normalize on the PIL image (after ImageOps.exif_transpose, since
the engine applies EXIF orientation by default). Each image must have a mean
absolute difference <= 0.01; per set we print the mean and max MAD and the
largest single-element difference.

Sets: the shared ImageNet images and photos (skipped when ../shared/data is
absent), generated odd sizes, and a generated 4000x3000 JPEG that takes the
DCT-scaled decode path. Env: BUILD (default ./build). Ends with
"preprocess: N passed, M failed[, K skipped]"; exit status 1 on any failure.
"""
import glob
import os
import subprocess
import sys
import tempfile

import numpy as np
import torchvision.transforms as T
from PIL import Image, ImageOps

BUILD = os.environ.get("BUILD", "build")
TOOL = os.path.join(BUILD, "tools", "preprocess_dump")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.path.join(ROOT, "..", "shared", "data")
BOUND = 0.01
TF = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(),
                T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])


def compare(path, tmp):
    out = os.path.join(tmp, "out.f32")
    run = subprocess.run([TOOL, path, out], capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"preprocess_dump failed: {run.stderr.strip()}")
    got = np.fromfile(out, dtype=np.float32)
    if got.size != 3 * 224 * 224:
        raise RuntimeError(f"tensor has {got.size} floats")
    ref = TF(ImageOps.exif_transpose(Image.open(path)).convert("RGB")).numpy().ravel()
    d = np.abs(got - ref)
    return float(d.mean()), float(d.max())


def run_set(name, paths, tmp):
    """True when every image is within the bound."""
    mads, maxes, bad = [], [], []
    for p in paths:
        try:
            mad, mx = compare(p, tmp)
        except Exception as e:  # a failure to decode is a failed image
            bad.append(f"{os.path.basename(p)}: {e}")
            continue
        mads.append(mad)
        maxes.append(mx)
        if mad > BOUND:
            bad.append(f"{os.path.basename(p)}: MAD {mad:.5f} > {BOUND}")
    if mads:
        print(f"  {name:<12} {len(paths):4d} images  MAD mean {np.mean(mads):.6f} "
              f"max {np.max(mads):.6f}  max |diff| {np.max(maxes):.4f}")
    for b in bad:
        print(f"  {name}: FAIL {b}")
    return not bad and len(mads) == len(paths) and len(paths) > 0


def odd_sizes(tmp):
    rng = np.random.default_rng(7)
    paths = []
    for w, h in [(1, 1), (31, 17), (17, 31), (1000, 10), (10, 1000), (300, 301)]:
        y, x = np.mgrid[0:h, 0:w]
        base = np.stack([x * 255 / max(w - 1, 1), y * 255 / max(h - 1, 1), (x + y) % 256], -1)
        arr = np.clip(base + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)
        p = os.path.join(tmp, f"odd_{w}x{h}.png")
        Image.fromarray(arr).save(p)
        paths.append(p)
    return paths


def large_jpeg(tmp):
    """4000x3000 photo-like JPEG: a shared photo upscaled plus sensor-like noise
    (a pure synthetic pattern when the shared data is absent)."""
    src = os.path.join(SHARED, "photos", "grace_hopper.jpg")
    rng = np.random.default_rng(3)
    if os.path.exists(src):
        base = np.asarray(Image.open(src).convert("RGB").resize((4000, 3000), Image.BICUBIC), np.float32)
    else:
        y, x = np.mgrid[0:3000, 0:4000].astype(np.float32)
        base = np.stack([x / 16 % 256, y / 12 % 256, 128 + 100 * np.sin((x + y) / 50)], -1)
    arr = np.clip(base + rng.normal(0, 4, base.shape), 0, 255).astype(np.uint8)
    p = os.path.join(tmp, "large_4000x3000.jpg")
    Image.fromarray(arr).save(p, quality=90)
    return [p]


def main():
    if not os.access(TOOL, os.X_OK):
        print(f"preprocess: {TOOL} is missing (make {TOOL})")
        print("preprocess: 0 passed, 1 failed")
        return 1
    passed = failed = skipped = 0
    with tempfile.TemporaryDirectory() as tmp:
        sets = []
        for name, pattern in (("images", "images/*"), ("photos", "photos/*")):
            files = sorted(f for f in glob.glob(os.path.join(SHARED, pattern))
                           if f.lower().endswith((".jpg", ".jpeg", ".png", ".webp")))
            sets.append((name, files, not os.path.isdir(SHARED)))
        for p in odd_sizes(tmp):
            sets.append((os.path.basename(p)[4:-4], [p], False))
        sets.append(("large", large_jpeg(tmp), False))
        for name, paths, skip in sets:
            if skip:
                print(f"  {name}: SKIP ({SHARED} is absent)")
                skipped += 1
            elif run_set(name, paths, tmp):
                passed += 1
            else:
                failed += 1
    tail = f", {skipped} skipped" if skipped else ""
    print(f"preprocess: {passed} passed, {failed} failed{tail}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
