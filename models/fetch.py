#!/usr/bin/python3
"""fetch.py — download the official torchvision weights and export them to ONNX.

    fetch.py --dir models [--arch resnet50 --arch googlenet ...] [--timeout 60]

For each arch (all of manifest.json by default):
  1. DIR/weights/<file> present: its sha256 must start with the manifest's prefix.
     Absent: download the manifest URL (urllib, timeout) into a temp file in
     DIR/weights/, check the sha256 prefix, then rename it into place atomically,
     so an interrupted or corrupted download never leaves a file under the real name.
  2. Run export.py on it, producing DIR/<arch>.onnx (untrained=false).

Offline (network refused or unreachable) it says where to put the .pth files and
exits 1; any other failure also exits 1 after trying every arch.
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
MAX_BYTES = 1 << 30  # the largest official file (resnet152) is ~241 MB
CHUNK = 1 << 20


class FetchError(Exception):
    pass


class OfflineError(FetchError):
    pass


def load_manifest():
    with open(os.path.join(HERE, "manifest.json")) as f:
        return json.load(f)["models"]


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _copy_limited(resp, out, url):
    """Copy the response body to `out`, refusing more than MAX_BYTES; returns its sha256."""
    h, total = hashlib.sha256(), 0
    while True:
        chunk = resp.read(CHUNK)
        if not chunk:
            return h.hexdigest()
        total += len(chunk)
        if total > MAX_BYTES:
            raise FetchError(f"{url}: more than {MAX_BYTES} bytes, refusing")
        h.update(chunk)
        out.write(chunk)


def download(url, dest, prefix, timeout):
    """Download url to dest through a temp file; the sha256 must start with prefix."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(dest), prefix=".part-")
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as resp:
                    digest = _copy_limited(resp, out, url)
            except urllib.error.HTTPError as e:
                raise FetchError(f"{url}: HTTP {e.code} {e.reason}") from e
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
                raise OfflineError(f"{url}: {getattr(e, 'reason', e)}") from e
        if not digest.startswith(prefix):
            raise FetchError(f"{url}: sha256 {digest} does not start with {prefix}")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def ensure_weights(arch, entry, wdir, timeout):
    dest = os.path.join(wdir, entry["file"])
    if os.path.exists(dest):
        digest = sha256_file(dest)
        if not digest.startswith(entry["sha256_prefix"]):
            raise FetchError(f"{dest}: sha256 {digest} does not start with "
                             f"{entry['sha256_prefix']}; delete it and fetch again")
        print(f"fetch: {arch}: using {dest}", file=sys.stderr)
        return dest
    print(f"fetch: {arch}: downloading {entry['url']}", file=sys.stderr)
    download(entry["url"], dest, entry["sha256_prefix"], timeout)
    return dest


def export(arch, entry, pth, out_dir):
    out = os.path.join(out_dir, f"{arch}.onnx")
    cmd = [sys.executable, os.path.join(HERE, "export.py"), "--arch", arch, "--weights", pth,
           "--source", entry["url"], "--out", out]
    if subprocess.run(cmd).returncode != 0:
        raise FetchError(f"{arch}: export.py failed: {' '.join(cmd)}")


def offline_help(missing, manifest, wdir):
    print("fetch: cannot download (offline?). Put the official weights here and run "
          "`make models` again:", file=sys.stderr)
    for arch in missing:
        e = manifest[arch]
        print(f"  {os.path.join(wdir, e['file'])}   <- {e['url']} "
              f"(sha256 starts with {e['sha256_prefix']})", file=sys.stderr)


def main(argv=None):
    manifest = load_manifest()
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dir", default=HERE, help="models folder (weights go in DIR/weights)")
    p.add_argument("--arch", action="append", choices=sorted(manifest))
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per network operation")
    a = p.parse_args(argv)
    wdir = os.path.join(a.dir, "weights")
    os.makedirs(wdir, exist_ok=True)
    offline, failed = [], []
    for arch in a.arch or list(manifest):
        try:
            pth = ensure_weights(arch, manifest[arch], wdir, a.timeout)
            export(arch, manifest[arch], pth, a.dir)
        except OfflineError as e:
            print(f"fetch: {arch}: {e}", file=sys.stderr)
            offline.append(arch)
        except FetchError as e:
            print(f"fetch: {arch}: {e}", file=sys.stderr)
            failed.append(arch)
    if offline:
        offline_help(offline, manifest, wdir)
    if offline or failed:
        print(f"fetch: failed: {' '.join(offline + failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
