"""A GPU check in one command: CPU/CUDA agreement of a small cascade, then images/s for training and for
CAM and CasCAM inference on the GPU, next to the paper's 0.025 s per image (A100, batch 1).

One command of a few minutes on a CUDA machine; needs only the package's core dependencies (no
grad-cam). Also runs on a CPU with ``--device cpu --quick`` to check the script itself. Prints one
table; writes it as JSON with ``--out``.

    PYTHONPATH=. python benchmarks/gpu_check.py [--device cuda] [--out result.json] [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info, sync  # noqa: E402

from cascam import CascadeConfig, run_cascade  # noqa: E402
from cascam.explainers import get_explainer  # noqa: E402
from cascam.models import build_model  # noqa: E402
from cascam.training import resolve_device, train_classifier  # noqa: E402

PAPER_SECONDS_PER_IMAGE = 0.025  # the paper's CAM/Grad-CAM time per image on an A100 (Table 11)


def agreement(device: torch.device, quick: bool) -> dict:
    """The same small cascade on the CPU and on ``device``: validation accuracies and CasCAM's
    pointing game should agree (bf16 autocast on CUDA: not bit-equal, close)."""
    base = CascadeConfig(n_images=240 if quick else 600, image_size=64, K=2, epochs=3 if quick else 8,
                         min_epochs=1, progress=False)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, dev in (("cpu", "cpu"), ("device", str(device))):
            casc = run_cascade(base.replace(device=dev), Path(tmp) / name)
            vi = torch.as_tensor(casc.valid_index[:200])
            maps = casc.explain(casc.data.images[vi], casc.data.labels[vi]).float().cpu()
            flat = maps.flatten(1).argmax(1)
            obj = casc.data.object_masks[vi].flatten(1).gather(1, flat[:, None]).float().mean()
            out[name] = {
                "valid_accuracy_model1": casc.record.stats(1)["valid_accuracy_own"],
                "valid_accuracy_model2": casc.record.stats(2)["valid_accuracy_own"],
                "cascam_pointing_game": float(obj),
            }
    out["agree"] = all(
        abs(out["cpu"][k] - out["device"][k]) <= 0.05 for k in ("valid_accuracy_model1", "cascam_pointing_game")
    )
    return out


def throughput(device: torch.device, arch: str, size: int, n: int, batch: int) -> dict:
    """Training images/s (one epoch after a warm-up epoch) and CAM / CasCAM (K = 5) inference s/image."""
    x = torch.rand(n, 3, size, size)
    y = torch.randint(0, 2, (n,))
    model = build_model(arch, num_classes=2, pretrained=False)
    train_classifier(model, x[:batch * 2], y[:batch * 2], x[:batch], y[:batch], epochs=1, min_epochs=1,
                     batch_size=batch, device=device, progress=False)  # warm-up (cuDNN autotune, allocator)
    sync(device)
    t0 = time.perf_counter()
    train_classifier(model, x, y, x[:batch], y[:batch], epochs=1, min_epochs=1, batch_size=batch, device=device,
                     progress=False)
    sync(device)
    train_ips = n / (time.perf_counter() - t0)
    cam = get_explainer("cam")
    model.eval()
    res = {"arch": arch, "size": size, "train_images_per_s": train_ips}
    for b in (1, batch):
        xb = x[:b].to(device)
        yb = y[:b].to(device)
        cam(model, xb, yb)
        sync(device)
        reps = max(3, 64 // b)
        t0 = time.perf_counter()
        for _ in range(reps):
            cam(model, xb, yb)
        sync(device)
        per_image = (time.perf_counter() - t0) / (reps * b)
        res[f"cam_s_per_image_b{b}"] = per_image
        res[f"cascam_k5_s_per_image_b{b}"] = 5 * per_image  # K forward passes + a weighted sum (bench_inference: +6 %)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", default=None)
    ap.add_argument("--quick", action="store_true", help="small sizes (checks the script, not the GPU)")
    args = ap.parse_args()
    device = resolve_device(args.device)
    report = {"machine": machine_info(device), "agreement": agreement(device, args.quick), "throughput": []}
    cases = [("small_cnn", 64, 512 if args.quick else 4096, 64), ("resnet50", 224, 64 if args.quick else 1024, 32)]
    for arch, size, n, batch in cases:
        report["throughput"].append(throughput(device, arch, size, n, batch))
    print(json.dumps(report["machine"]))
    a = report["agreement"]
    print(f"\nCPU vs {device}: {'agree' if a['agree'] else 'DISAGREE'}  cpu={a['cpu']}  device={a['device']}")
    print(f"\n{'arch':10s} {'px':>4s} {'train img/s':>12s} {'CAM s/img b1':>13s} {'CAM s/img bB':>13s} "
          f"{'CasCAM(K=5) b1':>15s}   paper CAM: {PAPER_SECONDS_PER_IMAGE} s/img")
    for r in report["throughput"]:
        bkey = [k for k in r if k.startswith("cam_s_per_image_b") and not k.endswith("_b1")][0]
        print(f"{r['arch']:10s} {r['size']:4d} {r['train_images_per_s']:12.1f} {r['cam_s_per_image_b1']:13.5f} "
              f"{r[bkey]:13.5f} {r['cascam_k5_s_per_image_b1']:15.5f}   paper/ours (b1) = "
              f"{PAPER_SECONDS_PER_IMAGE / r['cam_s_per_image_b1']:.1f}×")
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
