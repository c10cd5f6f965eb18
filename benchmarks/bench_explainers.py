"""Per-image inference time of CAM and the nine grad-cam baselines on a ResNet-18 CamNet (paper Table 11).

Usage: python benchmarks/bench_explainers.py [--device cuda] [--n 32] [--batch-sizes 1 16] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from importlib.metadata import version

import torch
import torchvision
from torch import nn

from cascam.explainers import EXPLAINER_NAMES, get_explainer
from cascam.models.base import CamNet

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def resnet18_camnet(num_classes: int = 2, seed: int = 0) -> CamNet:
    """torchvision's ResNet-18 (random weights) as a CamNet: conv1..layer4 → GAP → bias-free linear."""
    torch.manual_seed(seed)
    net = torchvision.models.resnet18(weights=None)
    features = nn.Sequential(
        net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3, net.layer4
    )
    return CamNet(
        features, 512, num_classes, mean=IMAGENET_MEAN, std=IMAGENET_STD, target_layer=net.layer4, stride=32
    )


def machine_info(device: torch.device) -> dict[str, str | int]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info: dict[str, str | int] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "grad-cam": version("grad-cam"),
        "cpu": cpu,
        "cpu_count": os.cpu_count() or 0,
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = str(torch.version.cuda)
    return info


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_method(
    name: str, model: nn.Module, images: torch.Tensor, targets: torch.Tensor, batch_size: int
) -> float:
    """Seconds per image over all ``images``, after one warm-up batch."""
    explain = get_explainer(name)
    device = images.device
    explain(model, images[:batch_size], targets[:batch_size])
    _sync(device)
    start = time.perf_counter()
    for i in range(0, len(images), batch_size):
        explain(model, images[i : i + batch_size], targets[i : i + batch_size])
    _sync(device)
    return (time.perf_counter() - start) / len(images)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--n", type=int, default=32, help="images timed per method and batch size")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--methods", nargs="+", default=list(EXPLAINER_NAMES), choices=EXPLAINER_NAMES)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    device = torch.device(args.device)
    methods = ["cam", *[m for m in args.methods if m != "cam"]]  # CAM always runs: it is the ratio's base
    model = resnet18_camnet().to(device).eval()
    g = torch.Generator().manual_seed(0)
    images = torch.rand(args.n, 3, args.image_size, args.image_size, generator=g).to(device)
    targets = torch.randint(0, 2, (args.n,), generator=g).to(device)

    info = machine_info(device)
    for key, value in info.items():
        print(f"{key:>14}: {value}")
    print(f"{'setup':>14}: ResNet-18 CamNet (random weights), {args.image_size} px, N = {args.n}\n")

    results = []
    header = "".join(f"  {'batch ' + str(b) + ' (ms/img)':>18} {'×CAM':>7}" for b in args.batch_sizes)
    print(f"{'method':<14}{header}")
    cam_time: dict[int, float] = {}
    for name in methods:
        row = f"{name:<14}"
        for b in args.batch_sizes:
            seconds = time_method(name, model, images, targets, b)
            cam_time.setdefault(b, seconds)
            ratio = seconds / cam_time[b]
            results.append(
                {"method": name, "batch_size": b, "seconds_per_image": seconds, "ratio_vs_cam": ratio}
            )
            row += f"  {seconds * 1e3:>18.2f} {ratio:>7.1f}"
        print(row, flush=True)

    report = {"machine": info, "image_size": args.image_size, "n_images": args.n, "results": results}
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=2)
    return report


if __name__ == "__main__":
    main()
