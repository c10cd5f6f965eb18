"""Peak memory and speed of a whole ``run_cascade`` as the number of images N grows, streamed x^(k) against
the in-memory path.

Each (N, path) runs in a fresh subprocess: it generates N synthetic images, then runs the real
:func:`cascam.run_cascade` (K = 2, 1 epoch by default, so both the training loop and the masking
step are measured) with ``stream=True`` (x^(k) in the run folder as float16, read batch by batch) or
``stream=False`` (x^(k) as float32 tensors in memory: about 9 bytes per pixel and channel). The
synthetic data set itself (uint8 images, clean images and the bool masks, about 4 bytes per pixel and
channel) is in memory in both paths. The table shows the RSS after generating it (``data``), the
process's peak while generating (``gen peak``), and the peak during ``run_cascade`` alone (``run peak``:
the high-water mark ``VmHWM`` reset after generating, Linux), so ``run − data`` is what the cascade
adds: flat in N when streamed, O(N) in memory. (Before the reset, a generator that peaked higher
than the run hid the run's peak behind its own.) images/s is N × K / the seconds of ``run_cascade``.

The in-memory path is skipped where its estimated peak exceeds ``--limit-gb`` (default 24).

Usage: python benchmarks/bench_memory.py [--sizes 1000 4000 16000] [--paths stream memory] [--image-size 224]
       [--K 2] [--epochs 1] [--arch small_cnn] [--num-workers 0] [--threads N] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

from _common import load_warning, machine_info  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

MiB, GiB = 2**20, 2**30


def current_rss() -> int:
    """Resident set size of this process now, in bytes (Linux /proc; psutil elsewhere)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import psutil

        return psutil.Process().memory_info().rss


def peak_rss() -> int:
    """High-water mark of this process's RSS, in bytes (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def reset_peak_rss() -> bool:
    """Reset this process's RSS high-water mark (Linux: ``VmHWM``, by writing 5 to
    ``/proc/self/clear_refs``), so that :func:`run_peak_rss` afterwards is the peak of what follows,
    not of what came before (generating the data can peak higher than the run). False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def run_peak_rss() -> int | None:
    """``VmHWM`` of this process in bytes (the peak since :func:`reset_peak_rss`), None where unknown."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def child(args) -> dict:
    """In this (fresh) process: N synthetic images, then run_cascade on them; memory in bytes."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from cascam import CascadeConfig, run_cascade
    from cascam.data import load_data

    config = CascadeConfig(
        n_images=args.n, image_size=args.image_size, K=args.K, epochs=args.epochs, min_epochs=0, arch=args.arch,
        device=args.device, num_workers=args.num_workers, stream=args.path == "stream", progress=False,
    )
    t0 = time.perf_counter()
    data = load_data(config)
    gen_seconds = time.perf_counter() - t0
    rss_data = current_rss()
    peak_before = peak_rss()
    reset = reset_peak_rss()
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        t0 = time.perf_counter()
        run_cascade(config, tmp, data=data)
        seconds = time.perf_counter() - t0
    run_peak = run_peak_rss() if reset else None
    return {
        "n": args.n, "path": args.path, "seconds": seconds, "generate_seconds": gen_seconds,
        "images_per_second": args.n * args.K / seconds, "rss_data": rss_data, "rss_peak_before_run": peak_before,
        # the peak of the run itself where the high-water mark could be reset, else the process's peak
        "rss_peak": run_peak if run_peak is not None else peak_rss(), "rss_peak_process": peak_rss(),
        "peak_is_the_runs": run_peak is not None, "pixels": args.n * 3 * args.image_size**2,
    }


def estimate_memory_path(n: int, size: int) -> int:
    """Bytes the in-memory path needs at least: data (~4 B per pixel and channel) + x, x_next (float32)
    + the validation copies (~1)."""
    return int(n * 3 * size * size * (4 + 4 + 4 + 1))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000, 16000], help="numbers of images N")
    parser.add_argument("--paths", nargs="+", default=["stream", "memory"], choices=["stream", "memory"])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--K", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--arch", default="small_cnn")
    parser.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads in the child (0 = torch's default)")
    parser.add_argument("--limit-gb", type=float, default=24.0, help="skip the in-memory path above this estimate")
    parser.add_argument("--tmp", default=None, help="folder for the run store (default: the system's temp folder)")
    parser.add_argument("--json")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args)), flush=True)
        return {}

    import torch

    info = machine_info(torch.device("cpu") if args.device == "auto" else torch.device(args.device))
    print(", ".join(f"{k}: {v}" for k, v in info.items()))
    if warning := load_warning(info):
        print(warning)
    print(f"run_cascade: synthetic, {args.image_size} px, K={args.K}, epochs={args.epochs}, {args.arch}, "
          f"num_workers={args.num_workers}; one fresh process per (N, path)\n", flush=True)
    print(f"{'N':>7}{'path':>8}{'data':>9}{'gen peak':>10}{'run peak':>10}{'run−data':>10}{'run s':>9}{'images/s':>10}"
          "   (RSS in MiB)")
    rows = []
    for n in args.sizes:
        for path in args.paths:
            if path == "memory" and estimate_memory_path(n, args.image_size) > args.limit_gb * GiB:
                print(f"{n:>7}{path:>8}   skipped: needs about {estimate_memory_path(n, args.image_size) / GiB:.0f} GiB "
                      f"> --limit-gb {args.limit_gb:g}", flush=True)
                continue
            cmd = [sys.executable, os.path.abspath(__file__), "--child", "--n", str(n), "--path", path,
                   "--image-size", str(args.image_size), "--K", str(args.K), "--epochs", str(args.epochs),
                   "--arch", args.arch, "--device", args.device, "--num-workers", str(args.num_workers),
                   "--threads", str(args.threads)] + (["--tmp", args.tmp] if args.tmp else [])
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                sys.exit(f"N = {n}, {path}: the measuring process failed:\n{done.stderr[-3000:]}")
            row = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append(row)
            star = "" if row["peak_is_the_runs"] else "*"
            print(f"{n:>7}{path:>8}{row['rss_data'] / MiB:>9.0f}{row['rss_peak_before_run'] / MiB:>10.0f}"
                  f"{row['rss_peak'] / MiB:>9.0f}{star:1}{(row['rss_peak'] - row['rss_data']) / MiB:>10.0f}"
                  f"{row['seconds']:>9.1f}{row['images_per_second']:>10.2f}", flush=True)
    if any(not r["peak_is_the_runs"] for r in rows):
        print("* the process's peak, generation included (the high-water mark could not be reset here)")
    report = {"machine": info, "image_size": args.image_size, "K": args.K, "epochs": args.epochs, "arch": args.arch,
              "results": rows}
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=2)
    return report


if __name__ == "__main__":
    main()
