"""Pre-training the small CNN on box-free synthetic images: the synthetic benchmark's stand-in for the
ImageNet weights the paper starts from (docs/method.md, § The training schedule).

With ``pretrain="clean"`` a small CNN is trained once on ``pretrain_n_images`` synthetic images drawn
with the run's generator parameters (drawing, size, variant, seed) but without label boxes, and at
indices disjoint from any run's own images (image i of the generator depends only on (seed, i); the
pre-training set is images ``PRETRAIN_START .. PRETRAIN_START + pretrain_n_images - 1``, so runs of
different sizes share one pre-trained network). Every model of the
cascade then starts from its body, with a fresh head, and is fine-tuned on the run's images.

The result is cached in the run store, ``<store>/_pretrain/<key>/`` (``model.pt``, the whole
network; ``stats.json``, written last, with its accuracy, times and history), and shared by every run
whose pre-training is the same (:func:`pretrain_dict`). One process trains it while the others wait
on its claim (:mod:`cascam.claims`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from .claims import LockHeld, claim_run
from .config import ENGINE_VERSION, CascadeConfig, _digest
from .data.base import ImageData
from .store import RunStore, _json_default, _state_bytes, atomic_write_bytes, atomic_write_text

__all__ = ["pretrain_dict", "pretrain_key", "pretrain_images", "pretrained_body", "train_pretrain_model"]

#: Index of the first pre-training image in the generator's stream (no run draws a million images).
PRETRAIN_START = 1_000_000

#: Seconds between two looks at a pre-training that another process holds.
POLL_S = 2.0


def pretrain_dict(config: CascadeConfig) -> dict:
    """What determines the pre-trained network of ``config`` (its cache key): the generator's
    geometry and seed, where the pre-training images start, how many, and how they are trained."""
    from .data.synthetic import SYNTHETIC_VERSIONS

    return {
        "pretrain": config.pretrain,
        "engine_version": ENGINE_VERSION,
        "synthetic_version": SYNTHETIC_VERSIONS[config.benchmark_version],
        "arch": config.arch,
        "variant": config.variant,
        "image_size": config.image_size,
        "seed": config.seed,
        "start": PRETRAIN_START,
        "n_images": config.pretrain_n_images,
        "epochs": config.pretrain_epochs,
        "batch_size": config.batch_size,
        "lr": config.lr,
        "weight_decay": config.weight_decay,
        "valid_fraction": config.valid_fraction,
    }


def pretrain_key(config: CascadeConfig) -> str:
    """12 hex digits naming the pre-trained network of ``config`` in the run store."""
    return _digest(pretrain_dict(config))


def pretrain_images(config: CascadeConfig) -> ImageData:
    """The box-free pre-training images: generator images from :data:`PRETRAIN_START` on (a run's own
    are ``0 .. n_images − 1``, far below), with the run's drawing, size, variant and seed."""
    from .data.synthetic import generate_synthetic

    return generate_synthetic(
        config.pretrain_n_images, size=config.image_size, variant=config.variant, seed=config.seed,
        artifact=False, version=config.benchmark_version, start=PRETRAIN_START,
    )


def train_pretrain_model(config: CascadeConfig, device: torch.device, progress: bool = False):
    """Train the pre-training network from scratch; returns ``(model, stats, history)``."""
    from .cascade import to_float_images
    from .models import build_model
    from .training import accuracy, split_indices, train_classifier

    t0 = time.perf_counter()
    data = pretrain_images(config)
    generate_seconds = time.perf_counter() - t0
    seed = 10**9 + config.seed  # apart from the cascade models' seeds (seed · 1000 + k)
    train_idx, valid_idx = split_indices(data.labels, config.valid_fraction, config.seed)
    x = to_float_images(data.images)
    t_train, t_valid = torch.as_tensor(train_idx), torch.as_tensor(valid_idx)
    torch.manual_seed(seed)
    model = build_model(config.arch, num_classes=2, pretrained=False)
    result = train_classifier(
        model, x[t_train], data.labels[t_train], x[t_valid], data.labels[t_valid],
        epochs=config.pretrain_epochs, min_epochs=config.pretrain_epochs, patience=config.pretrain_epochs,
        batch_size=config.batch_size, lr=config.lr, weight_decay=config.weight_decay, seed=seed,
        device=device, progress=progress, desc="pre-training",
    )
    from .cascade import _describe

    stats = {
        "key": pretrain_key(config),
        "config": pretrain_dict(config),
        "generate_seconds": generate_seconds,
        "train_seconds": result.seconds,
        "epochs_run": len(result.history),
        "best_epoch": result.best_epoch,
        "n_train": len(train_idx),
        "n_valid": len(valid_idx),
        "valid_accuracy": accuracy(result.model, x[t_valid], data.labels[t_valid]),
        "device": _describe(torch.device(device)),
    }
    return result.model, stats, result.history


def _cached(folder: Path) -> bool:
    return (folder / "model.pt").exists() and (folder / "stats.json").exists()


def pretrained_body(
    config: CascadeConfig, store: RunStore, device: torch.device | str = "cpu", *, progress: bool = False
) -> tuple[dict[str, torch.Tensor], dict]:
    """The pre-trained body's state dict (for ``model.features``) and the pre-training's stats, from
    the run store, training it first when nobody has (and waiting while another process does)."""
    if config.pretrain == "none":
        raise ValueError("pretrain: 'none' has no pre-trained body")
    folder = store.pretrain_dir(pretrain_key(config))
    folder.mkdir(parents=True, exist_ok=True)
    while not _cached(folder):
        try:
            lock = claim_run(folder)
        except LockHeld:
            time.sleep(POLL_S)
            continue
        with lock:
            if not _cached(folder):  # nobody finished it while we waited for the claim
                model, stats, history = train_pretrain_model(config, torch.device(device), progress)
                atomic_write_text(folder / "config.json", json.dumps(pretrain_dict(config), indent=2))
                atomic_write_text(folder / "history.json", json.dumps(history, indent=2, default=_json_default))
                atomic_write_bytes(folder / "model.pt", _state_bytes(model))
                atomic_write_text(folder / "stats.json", json.dumps(stats, indent=2, default=_json_default))
    state = torch.load(folder / "model.pt", map_location="cpu", weights_only=True)
    body = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
    return body, json.loads((folder / "stats.json").read_text())
