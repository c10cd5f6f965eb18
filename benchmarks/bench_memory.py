"""Peak memory of the masking step (``cascade_step``: CAM → Top-k → mask) as the number of images N grows.

Each N runs in a fresh subprocess (peak RSS from ``resource.getrusage`` is a per-process high-water
mark). The step's outputs are O(N) by design — raw maps and thresholded maps ``(N, H, W)`` and the
masked images ``(N, 3, H, W)`` — and so is its input, so the script reports peak RSS minus the
process before the step minus input and outputs: the working memory of the step. Batch-by-batch
streaming keeps that constant in N; growth with N means an O(N) copy. On CUDA the device's peak
allocated memory is reported too (inputs stay on the CPU, as ``run_cascade`` keeps them).

Usage: python benchmarks/bench_memory.py [--device auto|cpu|cuda] [--n 256 1024] [--size 224] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import torch
from _common import load_warning, machine_info  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

MiB = 2**20


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


def measure(n: int, size: int, arch: str, batch_size: int, device_name: str) -> dict:
    """In this (fresh) process: the masking step on ``n`` random float images; memory in bytes."""
    from cascam.cascade import cascade_step
    from cascam.config import CascadeConfig
    from cascam.explainers import CAM
    from cascam.models import build_model
    from cascam.training import resolve_device

    device = resolve_device(device_name)
    config = CascadeConfig(arch=arch, image_size=size, n_images=max(n, 8), progress=False)
    torch.manual_seed(0)
    model = build_model(arch, num_classes=2, pretrained=False).to(device).eval()
    explainer = CAM()
    # Warm-up on two images so library initialisation is not counted as the step's memory.
    warm = torch.rand(2, 3, size, size)
    cascade_step(model, explainer, warm, torch.zeros(2, dtype=torch.long), config, batch_size=batch_size)
    del warm
    base = current_rss()

    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 3, size, size, generator=g)
    targets = torch.randint(0, 2, (n,), generator=g)
    with_input = current_rss()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        cuda_before = torch.cuda.memory_allocated(device)
    t0 = time.perf_counter()
    cams, th, x_next = cascade_step(model, explainer, x, targets, config, batch_size=batch_size)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t0
    peak = peak_rss()
    input_bytes = x.nbytes
    output_bytes = cams.nbytes + th.nbytes + x_next.nbytes
    out = {
        "n": n,
        "seconds": seconds,
        "rss_base": base,
        "rss_with_input": with_input,
        "rss_peak": peak,
        "input_bytes": input_bytes,
        "output_bytes": output_bytes,
        "working_bytes": peak - base - input_bytes - output_bytes,
    }
    if device.type == "cuda":
        out["cuda_peak_bytes"] = torch.cuda.max_memory_allocated(device) - cuda_before
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--n", type=int, nargs="+", default=[256, 1024], help="numbers of images, one process each")
    parser.add_argument("--size", type=int, default=224, help="image side in px")
    parser.add_argument("--arch", default="small_cnn")
    parser.add_argument("--batch-size", type=int, default=256, help="cascade_step's batch (its default)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    if args.child:  # one measurement, printed as JSON for the parent
        print(json.dumps(measure(args.n[0], args.size, args.arch, args.batch_size, args.device)))
        return {}

    from cascam.training import resolve_device

    device = resolve_device(args.device)
    info = machine_info(device)
    for key, value in info.items():
        print(f"{key:>14}: {value}")
    if warning := load_warning(info):
        print(warning)
    print(
        f"{'setup':>14}: cascade_step (CAM, Top-k 10 %, mask) with {args.arch} (random weights), {args.size} px, "
        f"batch {args.batch_size}, float32 input on the CPU; one fresh process per N\n",
        flush=True,
    )

    rows = []
    header = f"{'N':>6}{'seconds':>9}{'input':>9}{'outputs':>9}{'peak RSS':>10}{'peak−base':>11}{'working':>9}"
    if device.type == "cuda":
        header += f"{'CUDA peak':>11}"
    print(header + "   (MiB)")
    for n in args.n:
        cmd = [sys.executable, os.path.abspath(__file__), "--child", "--n", str(n), "--size", str(args.size)]
        cmd += ["--arch", args.arch, "--batch-size", str(args.batch_size), "--device", args.device]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            sys.exit(f"N = {n}: the measuring process failed:\n{done.stderr}")
        row = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(row)
        line = (
            f"{n:>6}{row['seconds']:>9.2f}{row['input_bytes'] / MiB:>9.0f}{row['output_bytes'] / MiB:>9.0f}"
            f"{row['rss_peak'] / MiB:>10.0f}{(row['rss_peak'] - row['rss_base']) / MiB:>11.0f}"
            f"{row['working_bytes'] / MiB:>9.0f}"
        )
        if "cuda_peak_bytes" in row:
            line += f"{row['cuda_peak_bytes'] / MiB:>11.0f}"
        print(line, flush=True)

    report: dict = {"machine": info, "arch": args.arch, "image_size": args.size, "batch_size": args.batch_size}
    report["results"] = rows
    if len(rows) >= 2:
        first, last = rows[0], rows[-1]
        growth = last["working_bytes"] - first["working_bytes"]
        report["peak_difference_bytes"] = last["rss_peak"] - first["rss_peak"]
        report["working_growth_bytes"] = growth
        report["working_growth_vs_outputs"] = growth / max(last["output_bytes"] - first["output_bytes"], 1)
        print(
            f"\nN {first['n']} → {last['n']}: peak RSS +{report['peak_difference_bytes'] / MiB:.0f} MiB, of which "
            f"input + outputs +{(last['input_bytes'] + last['output_bytes'] - first['input_bytes'] - first['output_bytes']) / MiB:.0f} MiB; "
            f"working memory {first['working_bytes'] / MiB:.0f} → {last['working_bytes'] / MiB:.0f} MiB "
            f"({growth / MiB:+.0f} MiB, {report['working_growth_vs_outputs']:.2f}× the outputs' growth; "
            "0 = streaming, 1 = one extra copy of the outputs)"
        )
        if "cuda_peak_bytes" in first:
            report["cuda_peak_difference_bytes"] = last["cuda_peak_bytes"] - first["cuda_peak_bytes"]
            print(f"CUDA peak: {first['cuda_peak_bytes'] / MiB:.0f} → {last['cuda_peak_bytes'] / MiB:.0f} MiB")

    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=2)
    return report


if __name__ == "__main__":
    main()
