#!/usr/bin/python3
"""make_seeds.py — the fuzzers' seed corpora (each file well under 2 KB).

    /usr/bin/python3 tests/fuzz/make_seeds.py tests/fuzz

Writes corpus/fuzz_onnx/*.onnx (one model per supported op family, with classifyd's
metadata on some), tiny.onnx (the 8x8-input classifier the HTTP fuzzers serve), and
requests for fuzz_request (raw HTTP), fuzz_multipart (boundary line + body) and
fuzz_query (request targets), built around 9x9 PNG/JPEG/WebP images made with PIL.
Deterministic: the weights come from a fixed-seed generator, the images from fixed pixels.
"""
import json
import os
import io
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

RNG = np.random.default_rng(1234)


def w(name, *shape):
    return numpy_helper.from_array(RNG.standard_normal(shape).astype(np.float32) * 0.3, name)


def i64(name, vals):
    return numpy_helper.from_array(np.array(vals, dtype=np.int64), name)


def model(nodes, inits, out_dims, hw=8, opset=13, meta=None, out="logits"):
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, hw, hw])
    y = helper.make_tensor_value_info(out, TensorProto.FLOAT, ["N"] + out_dims)
    g = helper.make_graph(nodes, "g", [x], [y], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="seed")
    m.ir_version = 7
    for k, v in (meta or {}).items():
        e = m.metadata_props.add()
        e.key, e.value = k, v
    return m


def head(src, c, classes, hw, softmax=False):
    """GlobalAveragePool -> Flatten -> Gemm (-> Softmax)."""
    nodes = [helper.make_node("GlobalAveragePool", [src], ["gap"]),
             helper.make_node("Flatten", ["gap"], ["flat"], axis=1),
             helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits" if not softmax else "z"],
                              transB=1)]
    inits = [w("fc_w", classes, c), w("fc_b", classes)]
    if softmax:
        nodes.append(helper.make_node("Softmax", ["z"], ["logits"], axis=1))
    return nodes, inits


def tiny():
    """Conv-BN-Relu-MaxPool + head, labels and preprocessing in the metadata."""
    nodes = [helper.make_node("Conv", ["input", "c_w", "c_b"], ["c"], kernel_shape=[3, 3],
                              pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "g", "b", "mu", "var"], ["bn"]),
             helper.make_node("Relu", ["bn"], ["r"]),
             helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2])]
    inits = [w("c_w", 4, 3, 3, 3), w("c_b", 4), w("g", 4), w("b", 4), w("mu", 4),
             numpy_helper.from_array(np.abs(RNG.standard_normal(4)).astype(np.float32) + 0.5, "var")]
    hn, hi = head("p", 4, 5, 4)
    meta = {"model_name": "tiny", "arch": "tiny", "untrained": "true",
            "labels": json.dumps(["cat", "dog", "fish", "bird", "other"]),
            "preprocess": json.dumps({"resize_shorter": 9, "crop": [8, 8], "mean": [0.5, 0.5, 0.5],
                                      "std": [0.25, 0.25, 0.25], "channel_order": "RGB",
                                      "pixel_range": "0-1"})}
    return model(nodes + hn, inits + hi, [5], meta=meta)


def residual():
    """Conv, residual Add, Concat, AveragePool (ceil_mode), LRN, Softmax head."""
    nodes = [helper.make_node("Conv", ["input", "a_w"], ["a"], kernel_shape=[1, 1]),
             helper.make_node("Conv", ["a", "b_w", "b_b"], ["b"], kernel_shape=[3, 3],
                              pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["a", "b"], ["s"]),
             helper.make_node("Relu", ["s"], ["sr"]),
             helper.make_node("Concat", ["sr", "a"], ["cat"], axis=1),
             helper.make_node("AveragePool", ["cat"], ["ap"], kernel_shape=[3, 3], strides=[2, 2],
                              ceil_mode=1, pads=[1, 1, 1, 1]),
             helper.make_node("LRN", ["ap"], ["l"], size=3)]
    inits = [w("a_w", 6, 3, 1, 1), w("b_w", 6, 6, 3, 3), w("b_b", 6)]
    hn, hi = head("l", 12, 4, 4, softmax=True)
    return model(nodes + hn, inits + hi, [4], opset=11)


def tensor_ops():
    """Constant, Reshape, MatMul, Mul, Dropout, Identity, Unsqueeze, Gather, Slice."""
    nodes = [helper.make_node("Conv", ["input", "c_w"], ["c"], kernel_shape=[2, 2], strides=[2, 2],
                              auto_pad="VALID"),
             helper.make_node("Constant", [], ["shape"], value=i64("v", [0, -1])),
             helper.make_node("Reshape", ["c", "shape"], ["flat"]),
             helper.make_node("MatMul", ["flat", "mm_w"], ["mm"]),
             helper.make_node("Mul", ["mm", "scale"], ["ms"]),
             helper.make_node("Dropout", ["ms"], ["d"]),
             helper.make_node("Identity", ["d"], ["id"]),
             helper.make_node("Unsqueeze", ["id", "ax"], ["u"]),
             helper.make_node("Gather", ["u", "gi"], ["g"], axis=2),
             helper.make_node("Slice", ["g", "st", "en", "axs"], ["sl"]),
             helper.make_node("Flatten", ["sl"], ["logits"], axis=1)]
    inits = [w("c_w", 2, 3, 2, 2), w("mm_w", 32, 6), w("scale", 6), i64("ax", [1]),
             i64("gi", [0, 2, 4, 5]), i64("st", [1]), i64("en", [3]), i64("axs", [2])]
    return model(nodes, inits, [2], opset=13)


def old_opset():
    """Opset 9: Unsqueeze/Slice attributes, Dropout with is_test, SAME_UPPER padding."""
    nodes = [helper.make_node("Conv", ["input", "c_w"], ["c"], kernel_shape=[3, 3], strides=[2, 2],
                              auto_pad="SAME_UPPER"),
             helper.make_node("MaxPool", ["c"], ["p"], kernel_shape=[3, 3], strides=[1, 1],
                              pads=[1, 1, 1, 1]),
             helper.make_node("GlobalAveragePool", ["p"], ["gap"]),
             helper.make_node("Reshape", ["gap", "shape"], ["flat"]),
             helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["z"], alpha=0.5),
             helper.make_node("Unsqueeze", ["z"], ["u"], axes=[2]),
             helper.make_node("Slice", ["u"], ["s"], starts=[0], ends=[3], axes=[1]),
             helper.make_node("Flatten", ["s"], ["logits"])]
    inits = [w("c_w", 3, 3, 3, 3), i64("shape", [1, 3]), w("fc_w", 3, 7), w("fc_b", 7)]
    return model(nodes, inits, [3], opset=9)


def images():
    from PIL import Image
    im = Image.new("RGB", (9, 9))
    im.putdata([(x * 28, y * 28, (x + y) * 14) for y in range(9) for x in range(9)])
    out = {}
    for fmt in ("PNG", "JPEG", "WEBP"):
        b = io.BytesIO()
        im.save(b, fmt, **({"quality": 50} if fmt == "JPEG" else {}))
        out[fmt.lower()] = b.getvalue()
    return out


def http(method, target, headers=(), body=b""):
    head = [f"{method} {target} HTTP/1.1", "Host: fuzz"] + list(headers)
    if body:
        head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def multipart(boundary, parts):
    out = b""
    for name, filename, ctype, data in parts:
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{boundary}\r\nContent-Disposition: {disp}\r\n".encode()
        if ctype:
            out += f"Content-Type: {ctype}\r\n".encode()
        out += b"\r\n" + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def chunked(data, size):
    out = b""
    for i in range(0, len(data), size):
        piece = data[i:i + size]
        out += b"%x\r\n" % len(piece) + piece + b"\r\n"
    return out + b"0\r\n\r\n"


def write(folder, name, data):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def http_seeds(out):
    img = images()
    png, jpg, webp = img["png"], img["jpeg"], img["webp"]
    mp = multipart("xYz", [("note", None, None, b"hello"), ("image", "a.png", "image/png", png)])
    req = {
        "healthz": http("GET", "/healthz"),
        "readyz": http("GET", "/v2/health/ready"),
        "models": http("GET", "/models"),
        "metrics": http("GET", "/metrics"),
        "page": http("HEAD", "/"),
        "static": http("GET", "/static/app.js"),
        "options": http("OPTIONS", "/classify", ["Origin: http://ok.example",
                                                 "Access-Control-Request-Method: POST"]),
        "wrong_method": http("DELETE", "/models"),
        "raw_png": http("POST", "/classify?top_k=3", ["Content-Type: image/png"], png),
        "raw_jpeg": http("POST", "/models/bgr/classify", ["Content-Type: image/jpeg",
                                                          "Origin: https://b.example"], jpg),
        "raw_webp": http("POST", "/classify?model=bgr&top_k=1", [], webp),
        "multipart": http("POST", "/classify", ["Content-Type: multipart/form-data; boundary=xYz"],
                          mp),
        "too_large": http("POST", "/classify", ["Content-Length: 99999999"]),
        "keepalive": http("GET", "/healthz") + http("POST", "/classify", [], png),
    }
    req["chunked"] = http("POST", "/classify?top_k=5", ["Transfer-Encoding: chunked",
                                                         "Content-Type: image/png"]) + chunked(png, 40)
    for name, data in req.items():
        write(os.path.join(out, "corpus", "fuzz_request"), name, data)
    parts = {
        "image_named": ("xYz", [("image", None, None, png)]),
        "file_part": ("----b0", [("x", "photo.jpg", "image/jpeg", jpg)]),
        "data_after_file": ("B", [("f", "a.webp", "image/webp", webp), ("data", None, None, png),
                                  ("image", "b.png", None, jpg)]),
        "no_file": ("zz", [("a", None, None, b"1"), ("b", None, "text/plain", b"2")]),
    }
    for name, (b, p) in parts.items():
        write(os.path.join(out, "corpus", "fuzz_multipart"), name,
              b.encode() + b"\n" + multipart(b, p))
    queries = ["/classify", "/classify?top_k=1", "/classify?top_k=1000&model=bgr",
               "/classify?model=tiny&top_k=05", "/classify?model=%62gr&top_k=+2",
               "/models/tiny/classify?top_k=2", "/models/nope/classify", "/classify?top_k=0",
               "/classify?top_k=1001", "/classify?model=&top_k=", "/classify?a=1&a=2&top_k=3&top_k=4"]
    for i, q in enumerate(queries):
        write(os.path.join(out, "corpus", "fuzz_query"), "q%02d" % i, q.encode())


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/fuzz"
    corpus = os.path.join(out, "corpus", "fuzz_onnx")
    os.makedirs(corpus, exist_ok=True)
    models = {"tiny": tiny(), "residual": residual(), "tensor_ops": tensor_ops(),
              "old_opset": old_opset()}
    for name, m in models.items():
        onnx.checker.check_model(m)
        onnx.save(m, os.path.join(corpus, name + ".onnx"))
    onnx.save(models["tiny"], os.path.join(out, "tiny.onnx"))
    http_seeds(out)


if __name__ == "__main__":
    main()
