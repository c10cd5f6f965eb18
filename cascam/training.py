"""Training one classifier of the cascade: seeded, early-stopped on validation loss, with a per-epoch history,
optionally in two phases (a frozen body, then everything with a lower body learning rate; docs/method.md,
§ The training schedule).

Images are float tensors in [0, 1] (or uint8) in memory, or a streamed source (:mod:`cascam.streaming`:
an x^(k) file in the run folder, read batch by batch through a DataLoader); batches move to the
device, are widened to float32 there, and flipped there.
On CUDA: bf16 autocast, channels-last layout, the training set moved to the GPU once when it fits
(:func:`stage_on_device`), otherwise batches copied through pinned memory without blocking.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .streaming import iterate_batches

__all__ = [
    "resolve_device",
    "split_indices",
    "train_classifier",
    "predict_logits",
    "accuracy",
    "TrainResult",
    "to_device",
    "stage_on_device",
    "prepare_model",
    "body_parameters",
]

#: Share of the free GPU memory that a training set may take when it is moved to the GPU whole.
DEVICE_CACHE_SHARE = 0.4


def to_device(batch: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Move one batch to ``device``: on CUDA through pinned (page-locked) memory with a non-blocking
    copy, so the copy overlaps the previous batch's kernels; in channels-last layout for 4-D images
    (faster convolutions with cuDNN, same values). On the CPU the batch is returned as it is."""
    if batch.device == device:
        out = batch
    elif device.type == "cuda" and batch.device.type == "cpu":
        out = batch.pin_memory().to(device, non_blocking=True)
    else:
        out = batch.to(device)
    if device.type == "cuda" and out.dim() == 4:
        out = out.contiguous(memory_format=torch.channels_last)
    return out


def stage_on_device(images: torch.Tensor, device: torch.device, share: float = DEVICE_CACHE_SHARE) -> torch.Tensor:
    """``images`` moved to the GPU once when they take less than ``share`` of its free memory (then
    every epoch indexes them there and no batch crosses the bus); otherwise, and on the CPU, unchanged."""
    if device.type != "cuda" or images.device == device:
        return images
    free, _ = torch.cuda.mem_get_info(device)
    if images.element_size() * images.nelement() < share * free:
        return images.to(device)
    return images


def prepare_model(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` on ``device``; on CUDA in channels-last layout (a no-op for the values)."""
    model.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    return model


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` → CUDA if available, else MPS, else CPU; an explicit device that is absent fails clearly."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: 'cuda' requested but no CUDA device is available; use device=auto or cpu")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("device: 'mps' requested but MPS is not available; use device=auto or cpu")
    return torch.device(name)


def split_indices(labels: torch.Tensor | np.ndarray, valid_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A fixed, seeded, stratified train/validation split (sorted index arrays).

    Each class contributes round(valid_fraction · n_class) validation images (at least one when
    the class has two or more images). The split depends only on the labels and the seed.
    """
    y = np.asarray(labels)
    rng = np.random.default_rng([seed, 7919])
    train, valid = [], []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        idx = idx[rng.permutation(len(idx))]
        n_valid = int(round(valid_fraction * len(idx)))
        if len(idx) >= 2:
            n_valid = min(max(n_valid, 1), len(idx) - 1)
        valid.append(idx[:n_valid])
        train.append(idx[n_valid:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(valid))


@dataclass
class TrainResult:
    """What training one model produced: the best-validation-loss weights and the epoch history."""

    model: nn.Module
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False
    seconds: float = 0.0


def _as_float(xb: torch.Tensor) -> torch.Tensor:
    """A batch as float32 in [0, 1]: uint8 is divided by 255, float16 (a streamed x^(k)) widened."""
    if xb.dtype == torch.uint8:
        return xb.float() / 255
    return xb if xb.dtype == torch.float32 else xb.float()


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


@torch.no_grad()
def predict_logits(model: nn.Module, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Logits ``(N, C)`` (float32, CPU) for float images ``(N, 3, H, W)`` in [0, 1] (any device)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        xb = _as_float(to_device(images[start : start + batch_size], device))
        with _autocast(device):
            out.append(model(xb).float().cpu())
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0, 2)


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 256) -> float:
    """Share of images whose argmax logit equals the label."""
    if len(images) == 0:
        return float("nan")
    pred = predict_logits(model, images, batch_size).argmax(1)
    return float((pred == labels.cpu()).float().mean())


def body_parameters(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """``(body, rest)``: the parameters of ``model.features`` (a :class:`~cascam.models.CamNet`'s
    body) and all the others (the head), each in ``model.parameters()`` order."""
    body = getattr(model, "features", None)
    if not isinstance(body, nn.Module):
        raise ValueError("freeze_epochs/body_lr_mult: the model has no `features` body (a CamNet has one)")
    ids = {id(p) for p in body.parameters()}
    params = list(model.parameters())
    return [p for p in params if id(p) in ids], [p for p in params if id(p) not in ids]


def _is_batchnorm(module: nn.Module) -> bool:
    return isinstance(module, nn.modules.batchnorm._BatchNorm)


def _set_body_frozen(model: nn.Module, frozen: bool, train_bn: bool) -> None:
    """Freeze (or unfreeze) the body: its parameters stop receiving gradients, except those of its
    batch-norm layers when ``train_bn`` (fastai's ``train_bn=True``)."""
    for module in model.features.modules():
        keep = not frozen or (train_bn and _is_batchnorm(module))
        for p in module.parameters(recurse=False):
            p.requires_grad_(keep)


def _body_batchnorm_eval(model: nn.Module) -> None:
    """The body's batch-norm layers in eval mode (running statistics fixed), for ``train_bn=False``."""
    for module in model.features.modules():
        if _is_batchnorm(module):
            module.eval()


def _evaluate(model, images, labels, batch_size) -> tuple[float, float]:
    logits = predict_logits(model, images, batch_size)
    loss = float(F.cross_entropy(logits, labels.cpu()))
    acc = float((logits.argmax(1) == labels.cpu()).float().mean())
    return loss, acc


def train_classifier(
    model: nn.Module,
    train_images: torch.Tensor,
    train_labels: torch.Tensor,
    valid_images: torch.Tensor,
    valid_labels: torch.Tensor,
    *,
    epochs: int = 15,
    min_epochs: int = 5,
    patience: int = 3,
    batch_size: int = 64,
    lr: float = 2e-3,
    weight_decay: float = 0.0,
    seed: int = 0,
    device: torch.device | str = "cpu",
    flip: bool = True,
    progress: bool = True,
    desc: str = "train",
    min_delta: float = 1e-3,
    freeze_epochs: int = 0,
    body_lr_mult: float = 1.0,
    train_bn: bool = True,
) -> TrainResult:
    """Train ``model`` with Adam and cross-entropy, early stopping on the validation loss.

    Stops when the validation loss has not improved by more than ``min_delta`` for ``patience``
    epochs (a loss creeping from 0.004 to 0.003 on a solved task is not progress), but never before
    ``min_epochs`` (validation loss plateaus early with batch norm), and after ``epochs`` at most;
    the weights of the best epoch are restored. Horizontal flips are applied on the device.

    Two-phase schedule (fastai's ``fine_tune``): during the first ``freeze_epochs`` epochs the body
    (``model.features``) is frozen — its parameters get no gradient and do not change — except its
    batch-norm layers when ``train_bn`` (their affine parameters train and their running statistics
    update, as fastai's ``train_bn=True``; with ``train_bn=False`` they are fixed too). Then every
    parameter trains. One Adam optimizer with two parameter groups serves both phases: the head at
    ``lr``, the body at ``lr * body_lr_mult`` (so the body's batch-norm layers also train at that rate
    while the rest is frozen). The best epoch may be a frozen one, but early stopping counts only
    unfrozen epochs: ``patience`` restarts when the body is unfrozen, and no run stops during the
    frozen phase. ``epochs`` counts both phases (``freeze_epochs == epochs`` trains only the head and
    the body's batch norm). With ``freeze_epochs=0`` and ``body_lr_mult=1`` this is the one-phase
    training, bit for bit.

    Args:
        train_images, valid_images: float ``(N, 3, H, W)`` in [0, 1] or uint8 (CPU or device), or a
            :class:`~cascam.streaming.DiskImages`/:class:`~cascam.streaming.TensorImages` source.
        train_labels, valid_labels: int64 ``(N,)``.
    Returns:
        :class:`TrainResult` with one history row per epoch: ``epoch``, ``phase`` (``frozen`` or
        ``unfrozen``), ``train_loss``, ``valid_loss``, ``valid_accuracy``, ``seconds``.
    """
    if isinstance(freeze_epochs, bool) or not isinstance(freeze_epochs, int) or freeze_epochs < 0:
        raise ValueError(f"freeze_epochs: must be an integer ≥ 0; got {freeze_epochs!r}")
    if not body_lr_mult > 0:
        raise ValueError(f"body_lr_mult: must be > 0; got {body_lr_mult!r}")
    device = torch.device(device)
    torch.manual_seed(seed)
    prepare_model(model, device)
    train_images, train_labels = stage_on_device(train_images, device), stage_on_device(train_labels, device)
    valid_images = stage_on_device(valid_images, device)
    if freeze_epochs == 0 and body_lr_mult == 1:
        opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    else:
        body, head = body_parameters(model)
        groups = [{"params": head, "lr": lr, "name": "head"}, {"params": body, "lr": lr * body_lr_mult, "name": "body"}]
        opt = torch.optim.Adam(groups, lr=lr, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed)
    n = len(train_images)
    best_loss, best_state, best_epoch, since_best = float("inf"), None, 0, 0
    history: list[dict] = []
    t_start = time.perf_counter()
    bar = tqdm(range(1, epochs + 1), desc=desc, disable=not progress, leave=False, unit="epoch")
    stopped_early = False
    for epoch in bar:
        t0 = time.perf_counter()
        frozen = epoch <= freeze_epochs
        if freeze_epochs and epoch == 1:
            _set_body_frozen(model, True, train_bn)
        elif freeze_epochs and epoch == freeze_epochs + 1:
            _set_body_frozen(model, False, train_bn)
            since_best = 0  # patience counts only the unfrozen epochs
        model.train()
        if frozen and not train_bn:
            _body_batchnorm_eval(model)
        order = torch.randperm(n, generator=gen)
        total, count = 0.0, 0
        for idx, xb in iterate_batches(train_images, order, batch_size, device):  # drops a last batch of one
            yb = to_device(train_labels[idx.to(train_labels.device)], device)
            xb = _as_float(xb)
            if flip:
                flips = torch.rand(len(idx), generator=gen) < 0.5
                xb = torch.where(flips.to(device).view(-1, 1, 1, 1), xb.flip(-1), xb)
            with _autocast(device):
                loss = F.cross_entropy(model(xb).float(), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach().item() * len(idx)
            count += len(idx)
        valid_loss, valid_acc = _evaluate(model, valid_images, valid_labels, 4 * batch_size)
        history.append(
            {
                "epoch": epoch,
                "phase": "frozen" if frozen else "unfrozen",
                "train_loss": total / max(count, 1),
                "valid_loss": valid_loss,
                "valid_accuracy": valid_acc,
                "seconds": time.perf_counter() - t0,
            }
        )
        bar.set_postfix(loss=f"{valid_loss:.3f}", acc=f"{valid_acc:.3f}")
        if valid_loss < best_loss:
            improved = valid_loss < best_loss - min_delta
            best_loss, best_epoch = valid_loss, epoch
            best_state = copy.deepcopy(model.state_dict())
            since_best = 0 if improved else since_best + 1
        else:
            since_best += 1
        if not frozen and epoch >= min_epochs and since_best > patience and epoch < epochs:
            stopped_early = True
            break
    bar.close()
    if freeze_epochs:
        _set_body_frozen(model, False, train_bn)
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return TrainResult(model, history, best_epoch, stopped_early, time.perf_counter() - t_start)
