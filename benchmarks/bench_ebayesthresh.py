"""Timing of the EbayesThresh port: one 4096-value map with a fixed (R takes about 3 ms), and the
batched CAM entry point against a per-map Python loop (256 maps of 56×56). Run on demand:

    python benchmarks/bench_ebayesthresh.py [--repeats 7] [--maps 256] [--side 56]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
import scipy
import torch

from cascam.threshold.ebayesthresh import ebayes_threshold_maps, ebayesthresh

R_MS_PER_4096_MAP = 3.0  # R 4.2.2, EbayesThresh 1.4-12, ebayesthresh(x, sdev = 0.05) on a 64×64 map


def synthetic_cams(n: int, side: int, seed: int = 0) -> np.ndarray:
    """``(n, side, side)`` CAM-like maps: two Gaussian blobs plus |N(0, 0.05²)| noise, max 1."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float64)
    maps = np.empty((n, side, side))
    for i in range(n):
        m = np.abs(rng.normal(0.0, 0.05, (side, side)))
        for _ in range(2):
            cy, cx = rng.uniform(0.15, 0.85, 2) * side
            r = rng.uniform(0.06, 0.15) * side
            m += rng.uniform(0.5, 1.0) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
        maps[i] = m / m.max()
    return maps


def timed(fn: Callable[[], object], repeats: int, number: int = 1) -> tuple[float, float]:
    """(median, min) seconds per call over ``repeats`` rounds of ``number`` calls."""
    fn()  # warm-up
    rounds = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        rounds.append((time.perf_counter() - t0) / number)
    return statistics.median(rounds), min(rounds)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{platform.platform()} | CPU {cpu}, {os.cpu_count()} logical cores, load {load:.1f} | "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), numpy {np.__version__}, "
        f"scipy {scipy.__version__}, python {platform.python_version()} | GPU {gpu}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--maps", type=int, default=256)
    ap.add_argument("--side", type=int, default=56)
    args = ap.parse_args()
    print(machine())

    x = synthetic_cams(1, 64, seed=1)[0].reshape(-1)
    print("\nsingle map, 4096 values, prior laplace, a = 0.5 fixed, posterior median:")
    for label, kw in [("sdev = 0.05 given", {"sdev": 0.05}), ("sdev by MAD", {})]:
        med, best = timed(lambda kw=kw: ebayesthresh(x, **kw), args.repeats, number=20)
        print(
            f"  {label:18s} {med * 1e3:6.2f} ms median, {best * 1e3:6.2f} ms min   (R ≈ {R_MS_PER_4096_MAP} ms)"
        )
    med, best = timed(lambda: ebayesthresh(x, a=None), max(3, args.repeats // 2))
    print(f"  {'a estimated':18s} {med * 1e3:6.2f} ms median, {best * 1e3:6.2f} ms min")

    cams = synthetic_cams(args.maps, args.side)
    print(f"\n{args.maps} maps of {args.side}×{args.side}, a = 0.5 fixed, MAD sdev, standardize='max':")

    def loop() -> np.ndarray:
        out = np.empty_like(cams)
        for i, cam in enumerate(cams):
            peak = np.abs(cam).max()
            out[i] = np.maximum(ebayesthresh(cam.reshape(-1) / peak) * peak, 0).reshape(cam.shape)
        return out

    t_loop, _ = timed(loop, max(3, args.repeats // 2))
    cams_t = torch.from_numpy(cams).float()
    t_cpu, _ = timed(lambda: ebayes_threshold_maps(cams_t), args.repeats)
    diff = np.abs(ebayes_threshold_maps(torch.from_numpy(cams)).numpy() - loop()).max()
    print(f"  per-map loop (numpy)      {t_loop * 1e3:8.1f} ms")
    print(f"  batched, CPU (numpy)     {t_cpu * 1e3:8.1f} ms   loop/batched = {t_loop / t_cpu:5.1f}×")
    if torch.cuda.is_available():
        cams_g = cams_t.cuda()

        def on_gpu() -> None:
            ebayes_threshold_maps(cams_g)
            torch.cuda.synchronize()

        t_gpu, _ = timed(on_gpu, args.repeats)
        print(f"  batched, torch CUDA       {t_gpu * 1e3:8.1f} ms   loop/batched = {t_loop / t_gpu:5.1f}×")
    print(f"  max |batched − loop| (float64) = {diff:.2e}")


if __name__ == "__main__":
    main()
