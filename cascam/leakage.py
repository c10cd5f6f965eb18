"""The leakage diagnostic: do the masks of a cascade carry the class by themselves?
Per iteration: the models' accuracies on masked, original and box-free images, and a probe trained on the masks alone.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from .cascade import Cascade
from .masking import attenuation, fit_masks

__all__ = [
    "PROBE_EPOCHS",
    "PROBE_SIZE",
    "MaskProbe",
    "attenuation_maps",
    "train_probe",
    "mask_probe_accuracy",
    "leakage_table",
]

#: Probe defaults: a few epochs on maps of at most 16 × 16 pixels (masks are CAM-coarse: 8 × 8 for the small
#: CNN at 64 px, 16 × 16 for ResNet-50 at 512 px).
PROBE_EPOCHS = 8
PROBE_SIZE = 16
#: The cached table, one row per (iteration, probe setting), in the run's folder.
CACHE_NAME = "leakage.csv"
_PROBE_KEYS = ("probe_epochs", "probe_seed", "probe_size")
_STATS = ("valid_accuracy_own", "valid_accuracy_original", "valid_accuracy_clean")


class MaskProbe(nn.Module):
    """A tiny CNN on one map: two 3×3 conv layers, global average pooling, a linear layer.

    Two coordinate channels (x and y in [−1, 1]) are appended to the input: without them global
    average pooling would be blind to *where* the holes are, and position is exactly what a mask
    can leak (a hole on the left for one class, on the right for the other).

    Input ``(B, 1, S, S)``; output logits ``(B, 2)``.
    """

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
        )
        self.head = nn.Linear(2 * width, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        ys = torch.linspace(-1, 1, h, device=x.device, dtype=x.dtype).view(1, 1, h, 1).expand(b, 1, h, w)
        xs = torch.linspace(-1, 1, w, device=x.device, dtype=x.dtype).view(1, 1, 1, w).expand(b, 1, h, w)
        z = self.features(torch.cat([x, ys, xs], dim=1))
        return self.head(z.mean(dim=(2, 3)))


def attenuation_maps(cascade: Cascade, *, size: int = PROBE_SIZE, batch_size: int = 128) -> torch.Tensor:
    r"""What the cascade's masks have done to each image before models 2..K+1: ``(N, K, S, S)``.

    .. math:: A_k = \exp\Big(-\theta \sum_{j<k} M_j\Big), \qquad k = 2, \dots, K+1

    with M_j = TH(CAM_j(x^(j))) the thresholded raw map of iteration j, recomputed with the trained
    models and the training targets (the labels) exactly as in training, upsampled (and dilated, with
    ``mask_dilate``) to the image as :func:`cascam.masking.mask_images` does, then area-averaged to ``S = min(size, image side)``.
    Entry ``[:, k − 2]`` is A_k, the product of the blending weights exp(−θ·M_j) of every fill
    (multiply, mean, blur, inpaint). Values in (0, 1]; 1 = untouched. No image content enters.
    Images are processed ``batch_size`` at a time, so memory stays at one batch of images.
    """
    data = cascade.data
    h, w = data.image_size
    s = min(size, h, w)
    theta = cascade.config.theta
    out = torch.empty(len(data), cascade.K, s, s)
    for start in range(0, len(data), batch_size):
        stop = min(len(data), start + batch_size)
        ths = cascade.trace(data.images[start:stop], data.labels[start:stop], batch_size)["thresholded"]
        total = torch.zeros(stop - start, 1, h, w)
        for j, m in enumerate(ths):
            total += fit_masks(m.float().cpu(), (h, w), cascade.config.mask_dilate).unsqueeze(1)
            a = attenuation(total, theta)
            out[start:stop, j] = F.adaptive_avg_pool2d(a, (s, s))[:, 0] if (h, w) != (s, s) else a[:, 0]
    return out


def train_probe(
    maps: torch.Tensor,
    labels: torch.Tensor,
    train_index: np.ndarray,
    valid_index: np.ndarray,
    *,
    epochs: int = PROBE_EPOCHS,
    seed: int = 0,
    batch_size: int = 64,
    lr: float = 3e-3,
    device: torch.device | str = "cpu",
) -> float:
    """Train a :class:`MaskProbe` on ``maps[train_index]`` and return its accuracy on ``maps[valid_index]``.

    Args:
        maps: ``(N, S, S)`` attenuation maps A in (0, 1]; the probe sees 1 − A (how much was darkened).
        labels: int64 ``(N,)``.
        train_index, valid_index: the cascade's split.
    Adam, cross-entropy, ``epochs`` full passes, the final weights; seeded (initialisation and
    shuffling) without touching the global random state.
    """
    device = torch.device(device)
    x = (1 - maps.float()).unsqueeze(1)
    y = labels.long()
    tr, va = torch.as_tensor(train_index), torch.as_tensor(valid_index)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        probe = MaskProbe().to(device)
    opt = torch.optim.Adam(probe.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the probe's ops are too small to share: extra threads only spin and wait
    try:
        probe.train()
        for _ in range(epochs):
            order = tr[torch.randperm(len(tr), generator=gen)]
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                loss = F.cross_entropy(probe(x[idx].to(device)), y[idx].to(device))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        probe.eval()
        with torch.no_grad():
            pred = torch.cat([probe(x[va[s : s + 256]].to(device)).argmax(1).cpu() for s in range(0, len(va), 256)])
    finally:
        torch.set_num_threads(threads)
    return float((pred == y[va]).float().mean())


def _probe_on_split(cascade: Cascade, maps: torch.Tensor, *, epochs: int, seed: int) -> float:
    """:func:`train_probe` on ``maps`` ``(N, S, S)`` with the cascade's labels, split and device."""
    return train_probe(
        maps,
        cascade.data.labels,
        cascade.train_index,
        cascade.valid_index,
        epochs=epochs,
        seed=seed,
        device=cascade.device,
    )


def _chance(cascade: Cascade) -> float:
    """The best constant guess on the validation split: the share of its most frequent class."""
    y = cascade.data.labels[torch.as_tensor(cascade.valid_index)]
    return float(torch.bincount(y).max()) / max(1, len(y))


def mask_probe_accuracy(
    cascade: Cascade, k: int, *, epochs: int = PROBE_EPOCHS, seed: int = 0, size: int = PROBE_SIZE
) -> float:
    r"""Validation accuracy of a probe that predicts the class from the masks alone, before model k.

    The probe is trained on the cascade's training split with input A_k (see
    :func:`attenuation_maps`), the accumulated attenuation of iterations 1..k−1:

    .. math:: A_k = \exp\Big(-\theta \sum_{j<k} M_j\Big)

    It never sees image content. Accuracy near chance means the masks carry no class information;
    accuracy near 1 means model k could read its label from the holes alone — a new shortcut.
    For k = 1 nothing has been masked (A_1 ≡ 1): the result is the chance level, the validation
    share of the most frequent class (0.5 for a balanced split), and nothing is trained.
    """
    if not 1 <= k <= cascade.K:
        raise ValueError(f"k: must be in [1, {cascade.K}] for this cascade; got {k!r}")
    if k == 1:
        return _chance(cascade)
    maps = attenuation_maps(cascade.truncated(k - 1), size=size)[:, k - 2]
    return _probe_on_split(cascade, maps, epochs=epochs, seed=seed)


def _stats_rows(cascade: Cascade) -> pd.DataFrame:
    rows = []
    for k in range(1, cascade.K + 1):
        s = cascade.record.stats(k)
        rows.append({"iteration": k, **{c: (math.nan if s.get(c) is None else float(s[c])) for c in _STATS}})
    return pd.DataFrame(rows)


def leakage_table(
    cascade: Cascade,
    probe: bool = True,
    *,
    epochs: int = PROBE_EPOCHS,
    seed: int = 0,
    size: int = PROBE_SIZE,
    use_cache: bool = True,
) -> pd.DataFrame:
    """The leakage diagnostic, one row per iteration k = 1..K.

    Columns: ``iteration``; ``valid_accuracy_own``, ``valid_accuracy_original``,
    ``valid_accuracy_clean`` — model k's validation accuracy on its own masked images x^(k), on the
    original images and on the box-free twins (NaN where the data has none), read from the run's
    stats; ``chance`` (the validation share of the most frequent class); and, with ``probe``,
    ``mask_probe_accuracy`` (:func:`mask_probe_accuracy`). A model that scores high on its own
    images but near chance on box-free ones, while the probe is far above chance, reads the masks.

    Probe results are cached in the run's folder (``leakage.csv``, keyed by iteration and the probe
    settings); only missing iterations are computed, with one pass of the cascade over the data.
    Iteration k depends only on iterations 1..k−1, so a truncated cascade reads the longer run's rows.
    """
    table = _stats_rows(cascade)
    table["chance"] = _chance(cascade)
    if not probe:
        return table
    setting = {"probe_epochs": int(epochs), "probe_seed": int(seed), "probe_size": int(size)}
    cached = cascade.record.read_frame(CACHE_NAME) if use_cache else None
    known: dict[int, float] = {}
    if cached is not None and set(_PROBE_KEYS) <= set(cached.columns):
        same = np.logical_and.reduce([cached[c] == v for c, v in setting.items()])
        known = {int(r.iteration): float(r.mask_probe_accuracy) for r in cached[same].itertuples()}
    missing = [k for k in range(1, cascade.K + 1) if k not in known]
    if missing:
        chance = _chance(cascade)
        need = [k for k in missing if k > 1]
        maps = attenuation_maps(cascade.truncated(max(need) - 1), size=size) if need else None
        for k in missing:
            if k == 1:
                known[k] = chance
                continue
            known[k] = _probe_on_split(cascade, maps[:, k - 2], epochs=epochs, seed=seed)
    table["mask_probe_accuracy"] = [known[k] for k in table["iteration"]]
    if missing:
        rows = table.assign(**setting)
        if cached is not None and set(_PROBE_KEYS) <= set(cached.columns):
            keep = ~np.logical_and.reduce(
                [cached[c] == v for c, v in setting.items()] + [cached["iteration"].isin(rows["iteration"])]
            )
            rows = pd.concat([cached[keep], rows], ignore_index=True)
        cascade.record.write_frame(CACHE_NAME, rows.sort_values([*_PROBE_KEYS, "iteration"]).reset_index(drop=True))
    return table
