"""Benchmark of cascam.metrics.compute_all: 11 methods × 500 maps against 224×224 masks, and sklearn per image.

Run: ``python benchmarks/bench_metrics.py [--res 7|224] [--workers 2]``. Prints the machine, the
time of compute_all over every method (AP included), and the speed-up of the batched AP over a
loop of ``sklearn.metrics.average_precision_score`` on a subset, after checking that they agree.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch

from cascam.metrics import average_precision, compute_all, prepare


def machine() -> str:
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    import numpy
    import sklearn

    return (
        f"{platform.system()} {platform.machine()} | {cpu} | {usable} usable cores | load {load}\n"
        f"python {platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"numpy {numpy.__version__}, scikit-learn {sklearn.__version__}"
    )


def make_data(n_maps: int, res: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random maps ``(n, res, res)``, elliptic object masks and square artifact masks ``(n, size, size)``."""
    g = torch.Generator().manual_seed(seed)
    maps = torch.rand(n_maps, res, res, generator=g) - 0.3  # some negatives, as raw CAMs have
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    centre = torch.rand(n_maps, 2, generator=g) * size * 0.5 + size * 0.25
    radii = torch.rand(n_maps, 2, generator=g) * size * 0.25 + size * 0.1
    dy = (yy - centre[:, 0, None, None]) / radii[:, 0, None, None]
    dx = (xx - centre[:, 1, None, None]) / radii[:, 1, None, None]
    objects = dy**2 + dx**2 <= 1
    corner = torch.randint(0, size - size // 6, (n_maps, 2), generator=g)
    artifacts = torch.zeros(n_maps, size, size, dtype=torch.bool)
    for i, (r, c) in enumerate(corner.tolist()):
        artifacts[i, r : r + size // 7, c : c + size // 7] = True
    return maps, objects, artifacts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", type=int, default=11)
    parser.add_argument("--maps", type=int, default=500)
    parser.add_argument("--res", type=int, default=7, help="side of the raw maps (7: CAM-like, upsampled)")
    parser.add_argument("--size", type=int, default=224, help="side of the masks")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--subset", type=int, default=40, help="maps timed with the sklearn loop")
    args = parser.parse_args()

    print(machine())
    print(
        f"compute_all on {args.methods} methods × {args.maps} maps {args.res}×{args.res} → "
        f"masks {args.size}×{args.size}, workers={args.workers}"
    )
    data = [make_data(args.maps, args.res, args.size, seed) for seed in range(args.methods)]
    compute_all(data[0][0][:8], data[0][1][:8], data[0][2][:8])  # warm-up (allocations, thread pools)

    wall, cpu = time.perf_counter(), time.process_time()
    for maps, objects, artifacts in data:
        scores = compute_all(maps, objects, artifacts, workers=args.workers)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    total = args.methods * args.maps
    print(
        f"  {wall:.2f} s wall, {cpu:.2f} s CPU for {total} maps ({1e3 * wall / total:.2f} ms per map, all 9 metrics)"
    )
    print(f"  (normalise + bilinear resize + all metrics); keys: {', '.join(sorted(scores))}")

    from sklearn.metrics import average_precision_score

    maps, objects, _ = data[0]
    sub = slice(0, args.subset)
    prepared = prepare(maps[sub], (args.size, args.size)).numpy()
    labels = objects[sub].numpy()
    t = time.perf_counter()
    reference = np.array(
        [average_precision_score(labels[i].ravel(), prepared[i].ravel()) for i in range(args.subset)]
    )
    t_sklearn = (time.perf_counter() - t) / args.subset
    t = time.perf_counter()
    ours = average_precision(maps, objects)  # all maps of one method, batched
    t_ours = (time.perf_counter() - t) / args.maps
    gap = np.abs(ours[sub] - reference).max()
    print(
        f"AP per map: sklearn loop {1e3 * t_sklearn:.2f} ms ({args.subset} maps), batched {1e3 * t_ours:.2f} ms "
        f"→ {t_sklearn / t_ours:.1f}× faster; max |difference| {gap:.1e}"
    )
    print(
        f"compute_all (9 metrics) per map vs sklearn AP alone per map: {t_sklearn / (wall / total):.1f}× faster"
    )


if __name__ == "__main__":
    main()
