#!/usr/bin/python3
"""test_cli_photos.py — `classifyd classify` end to end against PyTorch + torchvision.

Images: the first 20 of SHARED/images and all of SHARED/photos (each set skipped, saying
so, when absent) plus a few generated with PIL (JPEG, grayscale PNG, RGBA PNG, odd and
small sizes), all classified in one `BUILD/classifyd classify --model MODELS/resnet50.onnx
IMG...` run. The reference is the same weights in PyTorch (rebuilt from the model's
`weights` metadata: `random seed N` through models/export.py, or the .pth named there)
on torchvision's Resize(256), CenterCrop(224), ToTensor, Normalize of the PIL image
converted to RGB (after ImageOps.exif_transpose: the CLI applies EXIF orientation).

Per image: exactly 5 predictions, probabilities descending; each label equals the
model's metadata label for its index; the indices are PyTorch's top-5 in order, except
that classes whose PyTorch probabilities are within PROB_TOL of each other may swap;
each probability within PROB_TOL of PyTorch's.
"""
import glob
import json
import os
import re
import sys
import tempfile
import zlib

import numpy as np
import onnx
import torch
import torchvision.transforms as T
from PIL import Image, ImageOps

from common import BUILD, MODELS, REPO, SHARED, Tally, describe, export, run

PROB_TOL = 1e-3
SHARED_IMAGES = 20
TF = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(),
                T.Normalize(list(export.MEAN), list(export.STD))])


def model_meta(path):
    return {p.key: p.value for p in onnx.load(path, load_external_data=False).metadata_props}


def reference_model(meta):
    """The PyTorch model the ONNX file was exported from, per its `weights` metadata."""
    arch, text = meta.get("arch", ""), meta.get("weights", "")
    m = re.match(r"random seed (\d+)", text)
    if m:
        return export.build_model(arch, seed=int(m[1]))
    m = re.search(r"file (\S+\.pth)", text)
    pth = m and os.path.join(REPO, "models", "weights", m[1])
    if pth and os.path.exists(pth):
        return export.build_model(arch, weights=pth)
    raise RuntimeError(f"cannot rebuild the reference model from weights={text!r}")


def generated_images(d):
    """Colour types and formats users upload, each compared with PyTorch on PIL's decode.

    The CMYK JPEG (PIL writes Adobe-inverted CMYK), the palette PNG with a tRNS chunk,
    the lossy WebP and the EXIF-rotated "phone photo" (landscape pixels with orientation
    6, so PIL's exif_transpose makes it portrait) are the cases issue 3 names.
    """
    g = np.random.default_rng(5)
    smooth = lambda w, h: Image.fromarray(g.integers(0, 256, (6, 8, 3), dtype=np.uint8)) \
        .resize((w, h), Image.BICUBIC)
    out = []
    pal = smooth(333, 250).convert("P", palette=Image.ADAPTIVE, colors=64)
    pal.info["transparency"] = 3
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    cases = (("gen_rgb_640x427.jpg", smooth(640, 427), "JPEG", {"quality": 90}),
             ("gen_gray_301x517.png", smooth(301, 517).convert("L"), "PNG", {}),
             ("gen_rgba_260x260.png", smooth(260, 260).convert("RGBA"), "PNG", {}),
             ("gen_small_97x61.jpg", smooth(97, 61), "JPEG", {"quality": 90}),
             ("gen_cmyk_400x300.jpg", smooth(400, 300).convert("CMYK"), "JPEG", {"quality": 92}),
             ("gen_palette_trns_333x250.png", pal, "PNG", {"transparency": 3}),
             ("gen_lossy_350x262.webp", smooth(350, 262), "WEBP", {"quality": 80}),
             ("gen_phone_exif6_640x480.jpg", smooth(640, 480), "JPEG",
              {"quality": 90, "exif": exif.tobytes()}))
    for name, img, fmt, opts in cases:
        path = os.path.join(d, name)
        img.save(path, fmt, **opts)
        out.append(path)
    return out


def refusals(t, cli, model_path, d):
    """A GIF and a decompression bomb are refused with their codes, exit status 1."""
    gif = os.path.join(d, "anim.gif")
    Image.new("RGB", (32, 32), (200, 10, 10)).save(gif)
    bomb = os.path.join(d, "bomb.png")  # 1.2 KB file declaring 60000 x 60000 pixels
    Image.new("L", (1000, 1)).save(bomb)
    with open(bomb, "r+b") as f:
        data = bytearray(f.read())
        data[16:24] = (60000).to_bytes(4, "big") * 2
        crc = zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF
        data[29:33] = crc.to_bytes(4, "big")
        f.seek(0)
        f.write(data)
    for path, code in ((gif, "unsupported_media_type"), (bomb, "image_too_large")):
        p = run([cli, "classify", "--model", model_path, path])
        t.check(p.returncode == 1 and code in p.stderr and not p.stdout.strip(),
                f"{os.path.basename(path)} refused as {code}: {describe(p)}")


def image_list(t, d):
    paths = []
    for sub, limit in (("images", SHARED_IMAGES), ("photos", None)):
        folder = os.path.join(SHARED, sub)
        files = sorted(f for f in glob.glob(os.path.join(folder, "*"))
                       if f.lower().endswith((".jpg", ".jpeg", ".png", ".webp")))
        if not files:
            t.skip(f"{folder}: absent or empty, its images are not tested")
        paths += files[:limit]
    return paths + generated_images(d)


def torch_probs(model, path):
    with Image.open(path) as im:
        x = TF(ImageOps.exif_transpose(im).convert("RGB")).unsqueeze(0)
    with torch.no_grad():
        return torch.softmax(model(x), 1)[0].double().numpy()


def check_image(t, name, answer, probs, labels):
    preds = answer.get("predictions") or []
    idx = [p.get("index") for p in preds]
    got = [p.get("probability") for p in preds]
    if not t.check(len(preds) == 5 and all(isinstance(i, int) and 0 <= i < len(probs)
                                           for i in idx), f"{name}: 5 predictions {idx}"):
        return
    t.check(all(got[k] >= got[k + 1] for k in range(4)), f"{name}: sorted descending {got}")
    t.check([p.get("label") for p in preds] == [labels[i] for i in idx],
            f"{name}: labels match the model's metadata")
    ref_idx = [int(i) for i in np.argsort(-probs, kind="stable")[:5]]
    ref_sorted = probs[ref_idx]
    # Position k may hold any class whose PyTorch probability is within PROB_TOL of
    # PyTorch's k-th best: that is exactly "near-equal classes may swap places".
    order_ok = all(abs(probs[i] - ref_sorted[k]) <= PROB_TOL for k, i in enumerate(idx))
    t.check(order_ok and len(set(idx)) == 5,
            f"{name}: top-5 {idx} vs PyTorch {ref_idx} (p {np.round(ref_sorted, 4).tolist()})")
    err = max(abs(got[k] - probs[i]) for k, i in enumerate(idx))
    t.check(err <= PROB_TOL, f"{name}: max |p - p_torch| {err:.2e}")


def main():
    t = Tally("cli_photos")
    model_path = os.path.join(MODELS, "resnet50.onnx")
    cli = os.path.join(BUILD, "classifyd")
    for need in (model_path, cli):
        if not os.path.exists(need):
            t.fail(f"{need} missing (make {'test-models' if need == model_path else 'all'})")
            return t.finish()
    meta = model_meta(model_path)
    labels = json.loads(meta["labels"])
    model = reference_model(meta)
    with tempfile.TemporaryDirectory() as d:
        paths = image_list(t, d)
        p = run([cli, "classify", "--model", model_path, *paths])
        t.check(p.returncode == 0, f"classifyd classify on {len(paths)} images: {describe(p)}")
        answers = {}
        for line in p.stdout.splitlines():
            try:
                obj = json.loads(line)
                answers[obj["image"]] = obj
            except (ValueError, KeyError, TypeError):
                t.fail(f"not a JSON answer line: {line[:120]}")
        for path in paths:
            name = os.path.relpath(path, SHARED) if path.startswith(SHARED) else os.path.basename(path)
            if path not in answers:
                t.fail(f"{name}: no answer line")
                continue
            check_image(t, name, answers[path], torch_probs(model, path), labels)
        refusals(t, cli, model_path, d)
    return t.finish()


if __name__ == "__main__":
    sys.exit(main())
