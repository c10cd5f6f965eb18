"""Training throughput: ``train_classifier`` against a minimal hand-written PyTorch loop (Adam, cross-entropy, flips).

Same model (one seeded initialisation, copied), same data, same epochs and batch size; early stopping
is off (``min_epochs = epochs``). ``train_classifier`` also evaluates the validation split after each
epoch and keeps the best weights, which the minimal loop does not: the ratio counts that as its cost
(target ≥ 0.9×), and the time of the validation passes alone is printed so the rest of the gap is
visible.

Usage: python benchmarks/bench_training.py [--device auto|cpu|cuda] [--n 1000] [--epochs 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import copy
import json
import time

import torch
import torch.nn.functional as F
from _common import load_warning, machine_info, sync  # noqa: E402  (benchmarks/ is on sys.path when run as a script)
from torch import nn

from cascam.cascade import to_float_images
from cascam.data.synthetic import generate_synthetic
from cascam.models import build_model
from cascam.training import predict_logits, resolve_device, train_classifier

TARGET_RATIO = 0.9


def minimal_loop(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    device: torch.device,
) -> nn.Module:
    """The shortest loop that does the same training: shuffle, flip half the batch, Adam step."""
    model.to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=gen)
        for start in range(0, len(images), batch_size):
            idx = order[start : start + batch_size]
            xb, yb = images[idx].to(device), labels[idx].to(device)
            flips = (torch.rand(len(idx), generator=gen) < 0.5).to(device).view(-1, 1, 1, 1)
            xb = torch.where(flips, xb.flip(-1), xb)
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return model


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--n", type=int, default=1000, help="training images")
    parser.add_argument("--n-valid", type=int, default=200, help="validation images of train_classifier (1/6 split)")
    parser.add_argument("--size", type=int, default=64, help="image side in px")
    parser.add_argument("--arch", default="small_cnn")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2, help="interleaved timed runs; the fastest counts")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    device = resolve_device(args.device)
    data = generate_synthetic(args.n + args.n_valid, size=args.size, seed=0)
    x = to_float_images(data.images)  # train_classifier takes float images in memory, as run_cascade passes them
    x_train, y_train = x[: args.n], data.labels[: args.n]
    x_valid, y_valid = x[args.n :], data.labels[args.n :]
    torch.manual_seed(0)
    initial = build_model(args.arch, num_classes=2, pretrained=False)
    lr = 2e-3

    info = machine_info(device)
    for key, value in info.items():
        print(f"{key:>14}: {value}")
    if warning := load_warning(info):
        print(warning)
    print(
        f"{'setup':>14}: {args.arch}, {args.size} px, {args.n} training + {args.n_valid} validation images, "
        f"{args.epochs} epochs, batch {args.batch_size}, Adam lr {lr:g}\n",
        flush=True,
    )

    def run_package() -> float:
        model = copy.deepcopy(initial)
        sync(device)
        t0 = time.perf_counter()
        result = train_classifier(
            model,
            x_train,
            y_train,
            x_valid,
            y_valid,
            epochs=args.epochs,
            min_epochs=args.epochs,
            batch_size=args.batch_size,
            lr=lr,
            seed=0,
            device=device,
            progress=False,
        )
        sync(device)
        if len(result.history) != args.epochs:
            raise RuntimeError(f"train_classifier stopped after {len(result.history)} of {args.epochs} epochs")
        return time.perf_counter() - t0

    def run_minimal() -> float:
        model = copy.deepcopy(initial)
        sync(device)
        t0 = time.perf_counter()
        minimal_loop(
            model, x_train, y_train, epochs=args.epochs, batch_size=args.batch_size, lr=lr, seed=0, device=device
        )
        sync(device)
        return time.perf_counter() - t0

    def run_validation() -> float:
        """What train_classifier adds per run: one pass over the validation split per epoch."""
        model = copy.deepcopy(initial).to(device)
        sync(device)
        t0 = time.perf_counter()
        for _ in range(args.epochs):
            predict_logits(model, x_valid, 4 * args.batch_size)
        sync(device)
        return time.perf_counter() - t0

    # Warm-up on a few batches (allocator, oneDNN/cuDNN kernel choice), then interleaved timed runs.
    minimal_loop(
        copy.deepcopy(initial),
        x_train[: 4 * args.batch_size],
        y_train[: 4 * args.batch_size],
        epochs=1,
        batch_size=args.batch_size,
        lr=lr,
        seed=0,
        device=device,
    )
    package_s = minimal_s = validation_s = float("inf")
    for _ in range(args.repeats):
        minimal_s = min(minimal_s, run_minimal())
        package_s = min(package_s, run_package())
        validation_s = min(validation_s, run_validation())

    images = args.n * args.epochs
    ratio = minimal_s / package_s
    ratio_without_validation = minimal_s / max(package_s - validation_s, 1e-9)
    report = {
        "machine": info,
        "arch": args.arch,
        "image_size": args.size,
        "n_train": args.n,
        "n_valid": args.n_valid,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "minimal_seconds": minimal_s,
        "train_classifier_seconds": package_s,
        "validation_seconds": validation_s,
        "minimal_images_per_second": images / minimal_s,
        "train_classifier_images_per_second": images / package_s,
        "throughput_ratio": ratio,
        "throughput_ratio_without_validation": ratio_without_validation,
        "target_ratio": TARGET_RATIO,
        "target_met": ratio >= TARGET_RATIO,
    }
    print(f"{'loop':<44}{'seconds':>10}{'images/s':>10}")
    print(f"{'minimal PyTorch loop':<44}{minimal_s:>10.2f}{images / minimal_s:>10.0f}")
    print(f"{'train_classifier':<44}{package_s:>10.2f}{images / package_s:>10.0f}")
    print(f"{'  of which validation passes (timed apart)':<44}{validation_s:>10.2f}")
    verdict = "met" if report["target_met"] else "NOT met"
    print(
        f"\ntrain_classifier / minimal loop, images/s: {ratio:.2f}× (target ≥ {TARGET_RATIO}×: {verdict}); "
        f"without the validation passes {ratio_without_validation:.2f}×"
    )

    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=2)
    return report


if __name__ == "__main__":
    main()
