"""Memory of loading a photo folder: decoded into RAM against decoded once into memory-mapped files.

For each N, three fresh subprocesses load the first N photos of a folder in the ``artifacts.csv`` format
at ``--size`` px and then read every image once in batches of 64 (as a training epoch would):

- ``ram``: ``load_artifact_folder(...)`` decodes every photo into one uint8 array in memory;
- ``memmap, first``: ``load_artifact_folder(..., memmap_dir=…)`` decodes into ``.npy`` files;
- ``memmap, again``: the same call a second time: nothing is decoded, the files are mapped.

Peak *anonymous* RSS (``RssAnon`` in ``/proc/self/status``, sampled after loading and after every batch)
is the memory the process owns and the system cannot drop. Memory-mapped pages a batch touched count
as file-backed RSS (``RssFile``): page cache the kernel reclaims under pressure, shown separately. Seconds
are the load's wall time. Linux only (``/proc``).

Usage: python benchmarks/bench_folder_memory.py [--folder DIR] [--sizes 1000 4000] [--size 224] [--json out.json]
Without ``--folder`` a folder of random photos with label boxes is written to a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from _common import load_warning, machine_info  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

MiB = 2**20


def rss(kind: str) -> int:
    """``RssAnon`` or ``RssFile`` of this process now, in bytes."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(kind + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{kind} not in /proc/self/status")


def child(args) -> dict:
    import torch

    torch.set_num_threads(1)
    from cascam.data.folder import load_artifact_folder

    base = rss("RssAnon")
    t0 = time.perf_counter()
    data = load_artifact_folder(args.folder, size=args.size, limit=args.n, seed=0,
                                memmap_dir=args.cache if args.mode != "ram" else None)
    seconds = time.perf_counter() - t0
    peak_anon, peak_file = rss("RssAnon"), rss("RssFile")
    total = 0.0
    for start in range(0, len(data), 64):  # one pass, as an epoch reads the images
        total += float(data.images[start : start + 64].float().mean())
        peak_anon, peak_file = max(peak_anon, rss("RssAnon")), max(peak_file, rss("RssFile"))
    return {"n": len(data), "mode": args.mode, "load_s": seconds, "anon_mib": (peak_anon - base) / MiB,
            "file_mib": peak_file / MiB, "data_mib": data.images.numel() / MiB, "check": total}


def write_folder(root: str, n: int, size: int) -> None:
    import numpy as np
    from PIL import Image

    from cascam.data.folder import ArtifactFolderWriter

    rng = np.random.default_rng(0)
    writer = ArtifactFolderWriter(root, size=size)
    for i in range(n):
        label = i % 2
        photo = Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8))
        writer.add(f"{'Cat' if label == 0 else 'dog'}_{i}.jpg", photo, label=label)
    writer.finish()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--folder")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--json")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    import torch

    info = machine_info(torch.device("cpu"))
    print(", ".join(f"{k}: {v}" for k, v in info.items()))
    warning = load_warning(info)
    if warning:
        print(warning)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.folder
        if folder is None:
            folder = os.path.join(tmp, "photos")
            write_folder(folder, max(args.sizes), args.size)
        rows = []
        for n in args.sizes:
            cache = os.path.join(tmp, f"cache{n}")
            for mode in ("ram", "memmap, first", "memmap, again"):
                cmd = [sys.executable, __file__, "--child", "--folder", folder, "--n", str(n), "--size", str(args.size),
                       "--mode", mode, "--cache", cache]
                out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
                rows.append(json.loads(out))
                r = rows[-1]
                print(f"N={r['n']:>6}  {mode:<14}  load {r['load_s']:7.1f} s   peak anonymous RSS +{r['anon_mib']:7.0f} MiB"
                      f"   file-backed RSS {r['file_mib']:7.0f} MiB   (images: {r['data_mib']:.0f} MiB)", flush=True)
        if args.json:
            with open(args.json, "w") as fh:
                json.dump(rows, fh, indent=2)


if __name__ == "__main__":
    main()
