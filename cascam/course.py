"""The course's exercises as functions: each returns the numbers its solution states.

The course pages (``course/*.md``) are prose plus one or two calls of these functions, and
``tests/test_course.py`` calls the same functions on a tiny configuration, so an exercise that breaks
fails the tests. Every function takes a :class:`~cascam.CascadeConfig` (default :func:`course_config`,
the size a 2-core laptop runs in minutes) and a run store; exercises that share a configuration
share its trained models through the store, so later exercises mostly load.

Exercises:

1. :func:`find_shortcut` — model 1's accuracy with and without the box, and where its CAM peaks.
2. :func:`peel` — a 3-step cascade per θ: how much of each masked input's box is left and where
   each model's map peaks (:func:`peel_figure` draws the inputs and maps).
3. :func:`thresholds` — Top-k 5/10/20 % and EbayesThresh on the same raw maps: what each keeps.
4. :func:`combination` — λ = 0 vs 0.5, per-stage normalisation (``paper``) vs raw sum (``code``).
5. :func:`leaks` — the leakage diagnostic and the mask probe (:mod:`cascam.leakage`).
6. :func:`honest_evaluation` — a paired bootstrap of CasCAM against FullGrad (:mod:`cascam.verdicts`).
7. :func:`own_shortcut` — another shortcut (a coloured border or a corner watermark) through the
   data API (:func:`shortcut_data`), and whether the cascade finds the animal behind it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from .cascade import Cascade, run_cascade
from .config import CascadeConfig
from .data import ImageData
from .store import RunStore

__all__ = [
    "COURSE_SIZE",
    "course_config",
    "course_store",
    "find_shortcut",
    "peel",
    "peel_figure",
    "thresholds",
    "combination",
    "leaks",
    "honest_evaluation",
    "shortcut_data",
    "own_shortcut",
    "SHORTCUT_KINDS",
]

#: The exercises' size: synthetic shortcut pets, 48 px, three iterations, a few epochs on the CPU.
COURSE_SIZE: dict = {
    "data": "synthetic",
    "variant": "single",
    "benchmark_version": 1,  # the exercises and the teacher's page were written for drawing 1
    "n_images": 400,
    "image_size": 48,
    "K": 3,
    "theta": 0.3,
    "threshold": "topk",
    "topk": 10.0,
    "lam": 0.1,
    "arch": "small_cnn",
    "pretrained": False,
    "epochs": 6,
    "min_epochs": 3,
    "patience": 2,
    "batch_size": 64,
    "device": "cpu",
    "seed": 0,
    "progress": False,
}

#: The artifacts :func:`shortcut_data` can draw.
SHORTCUT_KINDS = ("border", "watermark")


def course_config(**overrides) -> CascadeConfig:
    """The exercises' configuration (:data:`COURSE_SIZE`), with ``overrides`` (e.g. ``n_images=96``)."""
    return CascadeConfig.from_dict({**COURSE_SIZE, **overrides})


def course_store(store: RunStore | str | os.PathLike | None = None) -> RunStore:
    """``store`` as a :class:`RunStore`; by default ``$CASCAM_STORE`` or ``runs/``."""
    if isinstance(store, RunStore):
        return store
    return RunStore(store if store is not None else os.environ.get("CASCAM_STORE", "runs"))


def _valid(cascade: Cascade, n: int | None = None):
    """Images, labels, animal and box masks of the cascade's validation split (the first ``n``)."""
    idx = torch.as_tensor(np.asarray(cascade.valid_index[:n] if n else cascade.valid_index))
    d = cascade.data
    return d.images[idx], d.labels[idx], d.object_masks[idx], d.artifact_masks[idx]


def _at(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A bool mask ``(B, H, W)`` resized (nearest) to the size of the maps ``like``."""
    if mask.shape[-2:] == like.shape[-2:]:
        return mask.bool()
    return F.interpolate(mask[:, None].float(), size=like.shape[-2:], mode="nearest")[:, 0] > 0.5


def _peak_share(maps: torch.Tensor, region: torch.Tensor) -> float:
    """Share of maps whose maximum lies in ``region`` (first maximum in row-major order)."""
    from .metrics import artifact_pointing

    return float(np.nanmean(artifact_pointing(maps, region)))


def _mean(values) -> float:
    return float(np.nanmean(np.asarray(values, dtype=float)))


# --------------------------------------------------------------------------------------------------
# 1. Find the shortcut.


def find_shortcut(config: CascadeConfig | None = None, store=None) -> dict:
    """Exercise 1: train model 1 and measure its shortcut.

    Returns ``accuracy`` (validation accuracy on the images with the box), ``box_free_accuracy``
    (on the same images without the box), ``chance`` (the validation share of the larger class),
    ``box_peak_share`` / ``animal_peak_share`` (share of validation images whose raw CAM peaks on the
    box / on the animal) and ``box_area_share`` (the share of the image the box covers, the peak
    share a map that ignored the box would reach by luck).
    """
    from .leakage import leakage_table

    cfg = (config or course_config()).replace(K=1)
    cascade = run_cascade(cfg, course_store(store))
    row = leakage_table(cascade, probe=False).iloc[0]
    images, labels, obj, art = _valid(cascade)
    cam = cascade.trace(images, labels)["cams"][0]
    return {
        "accuracy": float(row["valid_accuracy_own"]),
        "box_free_accuracy": float(row["valid_accuracy_clean"]),
        "chance": float(row["chance"]),
        "box_peak_share": _peak_share(cam, _at(art, cam)),
        "animal_peak_share": _peak_share(cam, _at(obj, cam)),
        "box_area_share": float(art.float().mean()),
    }


# --------------------------------------------------------------------------------------------------
# 2. Peel it.


def peel(config: CascadeConfig | None = None, store=None, thetas=(0.01, 0.3, 3.0)) -> pd.DataFrame:
    """Exercise 2: a cascade of ``config.K`` (3) steps for each θ in ``thetas``.

    One row per (θ, k) on the validation images: ``box_left`` (the mean brightness inside the box of
    the masked input x^(k), relative to the original image's: 1 = untouched, 0 = black),
    ``box_peak_share`` / ``animal_peak_share`` (share of images where model k's CAM of its own input
    x^(k) peaks on the box / the animal), ``accuracy_own`` and ``box_free_accuracy`` of model k.
    All θ share model 1 (it never sees a mask).
    """
    from .leakage import leakage_table

    cfg = config or course_config()
    rows = []
    for theta in thetas:
        cascade = run_cascade(cfg.replace(theta=float(theta)), course_store(store))
        images, labels, obj, art = _valid(cascade)
        trace = cascade.trace(images, labels)
        stats = leakage_table(cascade, probe=False).set_index("iteration")
        box = art[:, None].expand(-1, 3, -1, -1)
        original = trace["x"][0][box].mean()
        for k, (x, cam) in enumerate(zip(trace["x"], trace["cams"], strict=True), start=1):
            rows.append({
                "theta": float(theta),
                "k": k,
                "box_left": float(x[box].mean() / original),
                "box_peak_share": _peak_share(cam, _at(art, cam)),
                "animal_peak_share": _peak_share(cam, _at(obj, cam)),
                "accuracy_own": float(stats.loc[k, "valid_accuracy_own"]),
                "box_free_accuracy": float(stats.loc[k, "valid_accuracy_clean"]),
            })
    return pd.DataFrame(rows)


def peel_figure(config: CascadeConfig | None = None, store=None, n: int = 3, theta: float | None = None):
    """Exercise 2's picture: for ``n`` validation images, each masked input x^(k) above model k's CAM."""
    import matplotlib.pyplot as plt

    cfg = config or course_config()
    cascade = run_cascade(cfg if theta is None else cfg.replace(theta=float(theta)), course_store(store))
    images, labels, _, _ = _valid(cascade, n)
    trace = cascade.trace(images, labels)
    K = cascade.K
    fig, axes = plt.subplots(2 * n, K, figsize=(1.8 * K, 3.6 * n), squeeze=False)
    for i in range(n):
        for k in range(K):
            axes[2 * i, k].imshow(trace["x"][k][i].permute(1, 2, 0).numpy())
            axes[2 * i + 1, k].imshow(trace["cams"][k][i].numpy(), cmap="jet")
            axes[2 * i, k].set_title(f"x^({k + 1})", fontsize=8)
            axes[2 * i + 1, k].set_title(f"CAM_{k + 1}", fontsize=8)
    for ax in axes.ravel():
        ax.axis("off")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------------
# 3. Thresholds.

#: The threshold rules exercise 3 compares, as (name, scheme, top-k percent).
THRESHOLDS = (("Top-5 %", "topk", 5.0), ("Top-10 %", "topk", 10.0), ("Top-20 %", "topk", 20.0),
              ("EbayesThresh", "ebayes", None))


def thresholds(config: CascadeConfig | None = None, store=None) -> pd.DataFrame:
    """Exercise 3: the thresholds on the same raw maps (model 1's CAMs of the validation images).

    One row per rule: ``kept`` (share of pixels the rule keeps), ``box_kept`` / ``animal_kept``
    (share of the box's / the animal's pixels it keeps) and ``mass_on_box`` (share of the kept
    map's mass on the box). No training beyond model 1.
    """
    from .threshold import apply_threshold

    cfg = (config or course_config()).replace(K=1)
    cascade = run_cascade(cfg, course_store(store))
    images, labels, obj, art = _valid(cascade)
    cam = cascade.trace(images, labels)["cams"][0]
    box, animal = _at(art, cam), _at(obj, cam)
    rows = []
    for name, scheme, top in THRESHOLDS:
        kept_map = apply_threshold(cam, scheme, topk=top or 10.0)
        kept = kept_map > 0
        mass = kept_map.sum((1, 2)).clamp_min(1e-12)
        rows.append({
            "rule": name,
            "kept": float(kept.float().mean()),
            "box_kept": _mean([(kept[i] & box[i]).sum() / box[i].sum() for i in range(len(cam)) if box[i].any()]),
            "animal_kept": _mean([(kept[i] & animal[i]).sum() / animal[i].sum() for i in range(len(cam)) if animal[i].any()]),
            "mass_on_box": float(((kept_map * box).sum((1, 2)) / mass).mean()),
        })
    return pd.DataFrame(rows).set_index("rule")


# --------------------------------------------------------------------------------------------------
# 4. The combination.


def combination(config: CascadeConfig | None = None, store=None, lams=(0.0, 0.5), combines=("paper", "code")) -> pd.DataFrame:
    """Exercise 4: CasCAM of one trained cascade under λ in ``lams`` and both combinations.

    One row per (λ, combine): ``weight_model1`` (ω_1), the validation means of the object
    ``pointing_game``, ``energy_in_gt`` (share of the map's energy on the animal) and
    ``artifact_energy`` (on the box). No retraining: λ and the combination act after training.
    """
    from .masking import combination_weights
    from .metrics import artifact_energy, energy_in_gt, pointing_game

    cfg = config or course_config()
    cascade = run_cascade(cfg, course_store(store))
    images, labels, obj, art = _valid(cascade)
    rows = []
    for lam in lams:
        for combine in combines:
            maps = cascade.explain(images, labels, lam=float(lam), combine=combine)
            rows.append({
                "lam": float(lam),
                "combine": combine,
                "weight_model1": float(combination_weights(cascade.K, float(lam))[0]),
                "pointing_game": _mean(pointing_game(maps, obj)),
                "energy_in_gt": _mean(energy_in_gt(maps, obj)),
                "artifact_energy": _mean(artifact_energy(maps, art)),
            })
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------------
# 5. When masks leak.


def leaks(config: CascadeConfig | None = None, store=None, theta: float | None = None) -> pd.DataFrame:
    """Exercise 5: the leakage diagnostic of one cascade (:func:`cascam.leakage.leakage_table`).

    One row per iteration k: model k's validation accuracy on its own masked images, on the
    originals and without the box, the chance level, and the mask probe's accuracy (a tiny network
    that sees only the accumulated attenuation exp(−θ Σ_{j<k} M_j), never the image).
    """
    from .leakage import leakage_table

    cfg = config or course_config()
    cascade = run_cascade(cfg if theta is None else cfg.replace(theta=float(theta)), course_store(store))
    return leakage_table(cascade)


# --------------------------------------------------------------------------------------------------
# 6. Evaluate honestly.


def honest_evaluation(config: CascadeConfig | None = None, store=None, n_images: int | None = None,
                      seed: int = 0) -> pd.DataFrame:
    """Exercise 6: CasCAM against FullGrad (which explains model 1) on the same validation images.

    One row per metric — object ``pointing_game`` and ``energy_in_gt`` (claimed: CasCAM higher) and
    ``artifact_energy`` (claimed: CasCAM lower) — with both means, the mean paired difference
    CasCAM − FullGrad, its 95 % percentile-bootstrap interval and the verdict
    (:func:`cascam.verdicts.compare_in_frame`): ``held`` when the interval lies on the claimed side
    of zero, ``contradicted`` on the other side, ``inconclusive`` when it crosses zero.
    """
    from .evaluate import evaluate
    from .verdicts import compare_in_frame

    cfg = config or course_config()
    cascade = run_cascade(cfg, course_store(store))
    frame = evaluate(cascade, ["cascam", "fullgrad"], n_images=n_images)
    rows = []
    for metric, claimed in (("pointing_game", "greater"), ("energy_in_gt", "greater"), ("artifact_energy", "less")):
        v = compare_in_frame(frame, "CasCAM", "FullGrad", metric, claimed=claimed, seed=seed)
        ev = v.evidence[0]
        means = frame.groupby("method")[metric].mean()
        rows.append({"metric": metric, "claimed": claimed, "CasCAM": float(means["CasCAM"]),
                     "FullGrad": float(means["FullGrad"]), "difference": ev.difference, "low": ev.low,
                     "high": ev.high, "n_images": ev.n_images, "verdict": v.verdict})
    return pd.DataFrame(rows).set_index("metric")


# --------------------------------------------------------------------------------------------------
# 7. Your own shortcut.


def shortcut_data(n: int, *, size: int = 48, seed: int = 0, kind: str = "border", version: int = 1) -> ImageData:
    """Shortcut pets with another class-correlated artifact instead of the label box.

    The animals and backgrounds are those of :func:`~cascam.data.synthetic.generate_synthetic` with
    ``artifact=False`` (drawing ``version``, 1 by default as in :data:`COURSE_SIZE`); then

    * ``border``: a frame of width max(2, size/16) px around the image, red for cats, blue for dogs;
    * ``watermark``: a square of side ≈ 20 % of the image in the bottom-right corner, blended at 50 %
      over the image, with horizontal stripes for cats and vertical stripes for dogs (same colours,
      same place: only the pattern tells the class).

    ``artifact_masks`` mark the artifact, ``object_masks`` the animal minus the artifact,
    ``clean_images`` are the images without it (so box-free accuracy means artifact-free here).
    """
    from .data.synthetic import generate_synthetic

    if kind not in SHORTCUT_KINDS:
        raise ValueError(f"kind: unknown artifact {kind!r}; choose one of {', '.join(SHORTCUT_KINDS)}")
    base = generate_synthetic(n, size=size, seed=seed, artifact=False, version=version)
    images = base.images.clone()
    art = torch.zeros(n, size, size, dtype=torch.bool)
    if kind == "border":
        w = max(2, size // 16)
        art[:, :w], art[:, -w:], art[:, :, :w], art[:, :, -w:] = True, True, True, True
        colours = torch.tensor([[220, 30, 30], [30, 60, 220]], dtype=torch.uint8)[base.labels]  # (n, 3)
        images = torch.where(art[:, None], colours[:, :, None, None].expand(-1, -1, size, size), images)
    else:
        side = max(6, round(0.2 * size))
        art[:, -side:, -side:] = True
        stripes = (torch.arange(side) // max(1, side // 6)) % 2 == 0  # bands of about side/6 px
        pattern = torch.zeros(n, side, side)
        cats = base.labels == 0
        pattern[cats] = stripes[:, None].expand(side, side).float()  # horizontal bands
        pattern[~cats] = stripes[None, :].expand(side, side).float()  # vertical bands
        corner = images[:, :, -side:, -side:].float()
        mark = 255.0 * pattern[:, None]
        images[:, :, -side:, -side:] = (0.5 * corner + 0.5 * mark).round().clamp(0, 255).to(torch.uint8)
    return ImageData(
        images=images,
        labels=base.labels,
        object_masks=base.object_masks & ~art,
        artifact_masks=art,
        clean_images=base.images,
        parts={"object1": base.object_masks & ~art, "artifact1": art},
        names=[f"{kind}-{name}" for name in base.names],
        class_names=base.class_names,
        meta={**base.meta, "source": f"synthetic+{kind}", "artifact": kind},
    )


def own_shortcut(kind: str = "border", config: CascadeConfig | None = None, store=None) -> dict:
    """Exercise 7: train a cascade on :func:`shortcut_data` and ask whether it finds the animal.

    The runs go to the folder ``own-<kind>`` of the store (the run store keys runs by configuration,
    and this data is not the configuration's). Returns ``accuracy`` / ``box_free_accuracy`` of
    model 1 (here "box" is the new artifact), ``artifact_peak_share_model1`` (model 1's raw CAM
    peaking on the artifact), and for model 1's thresholded CAM alone (``cam_*``) and the K-step
    CasCAM (``cascam_*``): the object ``pointing_game`` and the ``artifact_energy``.
    """
    from .leakage import leakage_table
    from .metrics import artifact_energy, pointing_game

    cfg = config or course_config()
    root = course_store(store).root / f"own-{kind}"
    data = shortcut_data(cfg.n_images, size=cfg.image_size, seed=cfg.seed, kind=kind, version=cfg.benchmark_version)
    cascade = run_cascade(cfg, RunStore(root), data=data)
    stats = leakage_table(cascade, probe=False).set_index("iteration")
    images, labels, obj, art = _valid(cascade)
    cam = cascade.trace(images, labels)["cams"][0]
    first = cascade.truncated(1).explain(images, labels)
    full = cascade.explain(images, labels)
    return {
        "accuracy": float(stats.loc[1, "valid_accuracy_own"]),
        "box_free_accuracy": float(stats.loc[1, "valid_accuracy_clean"]),
        "artifact_peak_share_model1": _peak_share(cam, _at(art, cam)),
        "cam_pointing_game": _mean(pointing_game(first, obj)),
        "cam_artifact_energy": _mean(artifact_energy(first, art)),
        "cascam_pointing_game": _mean(pointing_game(full, obj)),
        "cascam_artifact_energy": _mean(artifact_energy(full, art)),
        "store": str(Path(root)),
    }
