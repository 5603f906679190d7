#!/usr/bin/python3
"""make_inputs.py OUTDIR — generate the image-intake test inputs with PIL.

For every decodable input X it writes X and X.ppm, the RGB that PIL's
Image.open(X).convert("RGB") gives (after ImageOps.exif_transpose for the
orientation cases), which the Criterion tests compare against. Hostile inputs
have no .ppm. Deterministic (fixed seeds); run by the Makefile into
build/test-images, never committed.
"""
import ctypes
import io
import os
import struct
import sys
import zlib

import numpy as np
from PIL import Image, ImageOps

OUT = sys.argv[1] if len(sys.argv) > 1 else "build/test-images"
RNG = np.random.default_rng(1234)


def pattern(w, h, seed=0):
    """Smooth gradients plus a little noise: compressible, asymmetric."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 255 * x / max(w - 1, 1)
    g = 255 * y / max(h - 1, 1)
    b = 128 + 100 * np.sin((x + 2 * y + seed) / 7.0)
    img = np.stack([r, g, b], axis=-1) + RNG.normal(0, 6, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def save(name, data, ref=None):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
    if ref is not None:
        ref.convert("RGB").save(os.path.join(OUT, name + ".ppm"))


def pil_bytes(im, fmt, **kw):
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def save_pil(name, im, fmt, **kw):
    data = pil_bytes(im, fmt, **kw)
    save(name, data, Image.open(io.BytesIO(data)))
    return data


def png_chunk(tag, body):
    return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def png_raw(arr, color_type, depth, interlace=False):
    """A PNG from a (h, w, c) uint8/uint16 array, filter 0, optional Adam7."""
    h, w = arr.shape[:2]
    dt = ">u2" if depth == 16 else "u1"
    passes = ADAM7 if interlace else [(0, 0, 1, 1)]
    raw = b""
    for x0, y0, dx, dy in passes:
        sub = arr[y0::dy, x0::dx]
        if sub.size == 0:
            continue
        for row in sub:
            raw += b"\0" + row.astype(dt).tobytes()
    ihdr = struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, 1 if interlace else 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) +
            png_chunk(b"IDAT", zlib.compress(raw, 9)) + png_chunk(b"IEND", b""))


def ycck_jpeg(cmyk):
    """A YCCK JPEG via libturbojpeg (PIL cannot write YCCK)."""
    tj = ctypes.CDLL("libturbojpeg.so.0")
    tj.tjInitCompress.restype = ctypes.c_void_p
    h, w = cmyk.shape[:2]
    handle = tj.tjInitCompress()
    buf, size = ctypes.POINTER(ctypes.c_ubyte)(), ctypes.c_ulong(0)
    src = np.ascontiguousarray(cmyk)
    TJPF_CMYK, TJSAMP_420 = 11, 2
    rc = tj.tjCompress2(ctypes.c_void_p(handle), src.ctypes.data_as(ctypes.c_void_p), w, 0, h,
                        TJPF_CMYK, ctypes.byref(buf), ctypes.byref(size), TJSAMP_420, 90, 0)
    assert rc == 0
    data = ctypes.string_at(buf, size.value)
    tj.tjFree(buf)
    tj.tjDestroy(ctypes.c_void_p(handle))
    return data


def make_jpeg():
    rgb = Image.fromarray(pattern(67, 45))
    for sub, tag in ((0, "444"), (1, "422"), (2, "420")):
        save_pil(f"jpeg_{tag}.jpg", rgb, "JPEG", quality=90, subsampling=sub)
    save_pil("jpeg_progressive.jpg", rgb, "JPEG", quality=85, progressive=True)
    save_pil("jpeg_gray.jpg", rgb.convert("L"), "JPEG", quality=90)
    save_pil("jpeg_cmyk_adobe.jpg", rgb.convert("CMYK"), "JPEG", quality=90)
    data = ycck_jpeg(np.asarray(rgb.convert("CMYK")))
    save("jpeg_ycck.jpg", data, Image.open(io.BytesIO(data)))
    for o in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = o
        data = pil_bytes(Image.fromarray(pattern(40, 24, o)), "JPEG", quality=95, exif=exif)
        save(f"exif_{o}.jpg", data, ImageOps.exif_transpose(Image.open(io.BytesIO(data))))
        Image.open(io.BytesIO(data)).convert("RGB").save(os.path.join(OUT, f"exif_{o}.jpg.raw.ppm"))


def make_png():
    rgb = Image.fromarray(pattern(33, 21))
    save_pil("png_rgb.png", rgb, "PNG")
    rgba = rgb.copy()
    rgba.putalpha(Image.fromarray(pattern(33, 21)[:, :, 0]))
    save_pil("png_rgba.png", rgba, "PNG")
    save_pil("png_gray.png", rgb.convert("L"), "PNG")
    save_pil("png_gray1.png", rgb.convert("1"), "PNG")
    save_pil("png_gray_alpha.png", rgba.convert("LA"), "PNG")
    pal = rgb.convert("P", palette=Image.ADAPTIVE, colors=16)
    save_pil("png_palette_trns.png", pal, "PNG", transparency=3)
    arr16 = (pattern(33, 21).astype(np.uint16) * 257 + RNG.integers(0, 256, (21, 33, 3))).astype(np.uint16)
    save("png_rgb16.png", png_raw(arr16, 2, 16), Image.fromarray((arr16 >> 8).astype(np.uint8)))
    g16 = arr16[:, :, :1]
    save("png_gray16.png", png_raw(g16, 0, 16), Image.fromarray((g16[:, :, 0] >> 8).astype(np.uint8)))
    rgba8 = np.asarray(rgba)
    data = png_raw(rgba8, 6, 8, interlace=True)
    save("png_rgba_interlaced.png", data, Image.open(io.BytesIO(data)))
    data = png_raw(np.asarray(rgb), 2, 8, interlace=True)
    save("png_rgb_interlaced.png", data, Image.open(io.BytesIO(data)))


def make_webp():
    rgb = Image.fromarray(pattern(37, 29))
    rgba = rgb.copy()
    rgba.putalpha(Image.fromarray(pattern(37, 29)[:, :, 1]))
    save_pil("webp_lossy.webp", rgb, "WEBP", quality=80)
    save_pil("webp_lossless.webp", rgb, "WEBP", lossless=True)
    save_pil("webp_lossy_alpha.webp", rgba, "WEBP", quality=80)
    save_pil("webp_lossless_alpha.webp", rgba, "WEBP", lossless=True, exact=True)


def patch_sof(data, w, h):
    """Rewrite the frame size in a JPEG's SOF0/SOF2 header."""
    b = bytearray(data)
    i = 2
    while i + 9 < len(b):
        m, seglen = b[i + 1], struct.unpack(">H", b[i + 2:i + 4])[0]
        if m in (0xC0, 0xC2):
            b[i + 5:i + 9] = struct.pack(">HH", h, w)
            return bytes(b)
        i += 2 + seglen
    raise ValueError("no SOF")


def make_hostile():
    base = pil_bytes(Image.fromarray(pattern(64, 48)), "JPEG", quality=90)
    save("bad_truncated.jpg", base[: len(base) // 2])
    save("bad_huge_header.jpg", patch_sof(base, 60000, 60000))
    save("bad_zero_width.jpg", patch_sof(base, 0, 48))
    save("bad_wide.jpg", patch_sof(base, 30000, 10))
    png = bytearray(pil_bytes(Image.fromarray(pattern(16, 16)), "PNG"))
    idat = png.index(b"IDAT")
    length = struct.unpack(">I", png[idat - 4:idat])[0]
    png[idat + 4 + length] ^= 0xFF
    save("bad_crc.png", bytes(png))
    raw = zlib.compress(b"\0" * 4096)
    ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)
    save("bad_bomb.png", b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) +
         png_chunk(b"IDAT", raw) + png_chunk(b"IEND", b""))
    webp = pil_bytes(Image.fromarray(pattern(40, 40)), "WEBP", quality=80)
    save("bad_truncated.webp", webp[: len(webp) // 2])
    save("bad_empty.bin", b"")
    save("bad_random.bin", RNG.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    save("bad_text.txt", b"hello, this is not an image\n" * 20)
    small = Image.fromarray(pattern(16, 16))
    save("bad.gif", pil_bytes(small, "GIF"))
    save("bad.bmp", pil_bytes(small, "BMP"))
    save("bad.tiff", pil_bytes(small, "TIFF"))
    save("bad.heic", b"\0\0\0\x18ftypheic\0\0\0\0mif1heic" + bytes(64))


def main():
    os.makedirs(OUT, exist_ok=True)
    make_jpeg()
    make_png()
    make_webp()
    make_hostile()
    print(f"make_inputs: wrote {len(os.listdir(OUT))} files to {OUT}")


if __name__ == "__main__":
    main()
