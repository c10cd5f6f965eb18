"""CasCAM inference (``Cascade.explain`` with K models) against K × one CAM pass and against grad-cam's GradCAM.

The K small_cnn models are freshly initialised (untrained): timing does not depend on the weights.
CasCAM = K × (CAM + Top-k) + the weighted combination, so its overhead over K bare CAM passes should be
small (target ≤ 15 %, on wall time; process CPU time is printed beside it as a cross-check when
other jobs load the CPU). GradCAM (one model, the grad-cam package, a backward pass) runs at the same
batch size.

Usage: python benchmarks/bench_inference.py [--device auto|cpu|cuda] [--n 256] [--K 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from _common import load_warning, machine_info, sync  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

from cascam.cascade import Cascade, to_float_images
from cascam.config import CascadeConfig
from cascam.data.synthetic import generate_synthetic
from cascam.explainers import get_explainer
from cascam.models import build_model
from cascam.store import RunRecord
from cascam.training import resolve_device

TARGET_OVERHEAD = 0.15


def timed(run: Callable[[], object], device: torch.device) -> tuple[float, float]:
    """Wall and process CPU seconds of ``run()``; CPU time is a cross-check on a loaded CPU machine."""
    sync(device)
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    sync(device)
    return time.perf_counter() - wall, time.process_time() - cpu


def maps_in_batches(explain, model, x: torch.Tensor, targets: torch.Tensor, batch_size: int) -> None:
    """One explainer over all images, batch by batch on the model's device (results discarded)."""
    device = next(model.parameters()).device
    for start in range(0, len(x), batch_size):
        explain(model, x[start : start + batch_size].to(device), targets[start : start + batch_size].to(device))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--n", type=int, default=256, help="images explained")
    parser.add_argument("--K", type=int, default=5, help="models in the cascade")
    parser.add_argument("--size", type=int, default=64, help="image side in px")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved timed passes; the fastest counts")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    device = resolve_device(args.device)
    config = CascadeConfig(K=args.K, image_size=args.size, n_images=max(args.n, 8), explainer="cam", progress=False)
    models = []
    for k in range(1, args.K + 1):
        torch.manual_seed(k)
        models.append(build_model(config.arch, num_classes=2, pretrained=False).to(device).eval())
    data = generate_synthetic(args.n, size=args.size, seed=0)
    x = to_float_images(data.images)  # float once, outside the timers, for every path
    targets = data.labels
    cam = get_explainer("cam")
    gradcam = get_explainer("gradcam")

    info = machine_info(device)
    for key, value in info.items():
        print(f"{key:>14}: {value}")
    if warning := load_warning(info):
        print(warning)
    print(
        f"{'setup':>14}: K = {args.K} × {config.arch} (untrained), {args.size} px, N = {args.n}, "
        f"batch {args.batch_size}, Top-k {config.topk:g} %, combine = {config.combine}\n",
        flush=True,
    )

    with tempfile.TemporaryDirectory(prefix="cascam-bench-inference-") as tmp:
        record = RunRecord(Path(tmp), config)
        index = np.arange(args.n)
        cascade = Cascade(config, record, data, index, index[:0], models, device)
        b = args.batch_size

        paths: dict[str, Callable[[], object]] = {
            "cam_one_model": lambda: maps_in_batches(cam, models[0], x, targets, b),
            "cam_K_models": lambda: [maps_in_batches(cam, m, x, targets, b) for m in models],
            "cascam_labels": lambda: cascade.explain(x, targets, batch_size=b),
            "cascam_predicted": lambda: cascade.explain(x, None, batch_size=b),
            "gradcam_one_model": lambda: maps_in_batches(gradcam, models[0], x, targets, b),
        }
        small = min(b, args.n)
        cascade.explain(x[:small], targets[:small], batch_size=b)  # warm-up
        maps_in_batches(gradcam, models[0], x[:small], targets[:small], b)
        seconds = dict.fromkeys(paths, float("inf"))
        cpu_seconds = dict.fromkeys(paths, float("inf"))
        for _ in range(args.repeats):
            for name, run in paths.items():
                wall, cpu = timed(run, device)
                seconds[name] = min(seconds[name], wall)
                cpu_seconds[name] = min(cpu_seconds[name], cpu)

    overhead = seconds["cascam_labels"] / seconds["cam_K_models"] - 1
    report = {
        "machine": info,
        "K": args.K,
        "image_size": args.size,
        "n_images": args.n,
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "cascam_overhead_vs_K_cam_cpu_time": cpu_seconds["cascam_labels"] / cpu_seconds["cam_K_models"] - 1,
        "cascam_overhead_vs_K_cam": overhead,
        "cascam_predicted_overhead_vs_K_cam": seconds["cascam_predicted"] / seconds["cam_K_models"] - 1,
        "cascam_vs_gradcam": seconds["cascam_labels"] / seconds["gradcam_one_model"],
        "gradcam_vs_cam": seconds["gradcam_one_model"] / seconds["cam_one_model"],
        "target_overhead": TARGET_OVERHEAD,
        "target_met": overhead <= TARGET_OVERHEAD,
    }
    labels = {
        "cam_one_model": "CAM, one model",
        "cam_K_models": f"CAM, {args.K} models (K × one pass)",
        "cascam_labels": f"CasCAM explain, K = {args.K}, labels given",
        "cascam_predicted": f"CasCAM explain, K = {args.K}, targets predicted",
        "gradcam_one_model": "GradCAM (grad-cam), one model",
    }
    print(f"{'path':<44}{'seconds':>10}{'ms/img':>10}{'×(K×CAM)':>10}{'CPU s':>10}{'×(K×CAM)':>10}")
    for name, text in labels.items():
        s, c = seconds[name], cpu_seconds[name]
        print(
            f"{text:<44}{s:>10.3f}{s * 1e3 / args.n:>10.3f}{s / seconds['cam_K_models']:>10.2f}"
            f"{c:>10.3f}{c / cpu_seconds['cam_K_models']:>10.2f}"
        )
    verdict = "met" if report["target_met"] else "NOT met"
    print(
        f"\nCasCAM overhead over K × CAM: {overhead:+.1%} (target ≤ {TARGET_OVERHEAD:.0%}: {verdict}); "
        f"in CPU time {report['cascam_overhead_vs_K_cam_cpu_time']:+.1%}; "
        f"with predicted targets {report['cascam_predicted_overhead_vs_K_cam']:+.1%}"
    )
    print(
        f"CasCAM (K = {args.K}) / GradCAM (one model): {report['cascam_vs_gradcam']:.2f}×; "
        f"GradCAM / CAM (one model): {report['gradcam_vs_cam']:.2f}×"
    )

    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=2)
    return report


if __name__ == "__main__":
    main()
