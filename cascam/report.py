"""Headline numbers of a run: where plain CAM and CasCAM point (animal or label box), and the
synthetic benchmark's validity conditions (a)–(c).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .cascade import Cascade, run_cascade
from .stats import bootstrap_mean_ci
from .store import RunStore

__all__ = ["headline", "headline_scores", "benchmark_validity", "box_shortcut_pointing", "format_report"]


def _valid(cascade: Cascade):
    idx = cascade.valid_index
    data = cascade.data
    return data.images[idx], data.labels[idx], idx


def headline_scores(cascade: Cascade) -> pd.DataFrame:
    """Per-image pointing game and energy on the animal and on the box, plain CAM (model 1's map)
    and CasCAM, on the validation images: one row per method × image (``method``, ``image``, then
    the metrics of :func:`cascam.metrics.compute_all` the data's masks allow)."""
    from .metrics import compute_all

    images, labels, idx = _valid(cascade)
    data = cascade.data
    obj = data.object_masks[idx] if data.object_masks is not None else None
    art = data.artifact_masks[idx] if data.artifact_masks is not None else None
    from .evaluate import VISIBLE_PART, visible_scores

    visible = data.parts[VISIBLE_PART][idx] if VISIBLE_PART in data.parts else None
    combined, ths = cascade.explain(images, labels, return_stages=True)
    frames = []
    for name, maps in (("CAM", ths[0]), ("CasCAM", combined)):
        m = compute_all(maps, object_mask=obj, artifact_mask=art)
        if visible is not None:
            m.update(visible_scores(maps, visible))
        frames.append(pd.DataFrame({"method": name, "image": np.asarray(idx), **{k: np.asarray(v, dtype=float) for k, v in m.items()}}))
    return pd.concat(frames, ignore_index=True)


def headline(cascade: Cascade) -> pd.DataFrame:
    """Pointing game and energy on the animal and on the box, plain CAM (model 1) vs CasCAM, validation images.

    Returns one row per method with ``object_pointing``, ``object_energy``, ``artifact_pointing`` and
    ``artifact_energy`` (means over images; pointing as a rate in [0, 1]). Columns whose mask the
    data lacks are omitted. :func:`headline_scores` gives the per-image values.
    """
    scores = headline_scores(cascade)
    return scores.drop(columns="image").groupby("method", sort=False).mean()


def box_shortcut_pointing(object_masks: torch.Tensor, box_masks: torch.Tensor) -> float:
    """The pointing game of a map that always peaks at the centre of the label box: the share of images
    whose box centre lies on the object mask. With a trimap-like mask (the animal under the box
    included) this is what a *complete* shortcut scores, the floor a box-following CAM cannot go below
    and the reference for reading a plain CAM's pointing game. Images without a box count as misses.
    """
    hits = []
    for obj, box in zip(object_masks, box_masks):
        ys, xs = torch.nonzero(box, as_tuple=True)
        if len(ys) == 0:
            hits.append(False)
            continue
        cy, cx = int(ys.float().mean().round()), int(xs.float().mean().round())
        hits.append(bool(obj[cy, cx]))
    return float(np.mean(hits)) if hits else float("nan")


def benchmark_validity(cascade: Cascade, store: RunStore | None = None) -> dict:
    """The synthetic benchmark's validity conditions, measured on this run's data and split.

    (a) ``box_only_accuracy``: the class predicted from the label box's colour alone.
    (b) ``boxfree_valid_accuracy``: a model of the same architecture trained and validated on
        box-free images (a one-iteration run with ``artifact=False``, cached in the store).
    (c) ``cam_on_box_rate``: share of validation images whose plain-CAM maximum lies on the box,
        and ``cam_near_box_rate`` within 3 px of it (a coarse CAM can peak just beside a small box).
    The operating point: ``cam_on_animal_rate`` (the maximum on the animal's silhouette, the object
    mask) and ``cam_elsewhere_rate`` (on neither). Where the box lies over the animal a peak counts
    for both, as with a trimap, so the rates may sum to more than one. ``cam_on_animal_ci`` and
    ``cam_on_box_ci``: percentile-bootstrap 95 % intervals over the validation images.
    ``box_shortcut_pointing``: :func:`box_shortcut_pointing`, what a complete shortcut would score.
    """
    from .data.synthetic import box_only_accuracy

    cfg = cascade.config
    out: dict = {"box_only_accuracy": float(box_only_accuracy(cascade.data))}
    control = run_cascade(cfg.replace(artifact=False, K=1), store or RunStore(cascade.record.dir.parent))
    out["boxfree_valid_accuracy"] = float(control.record.stats(1)["valid_accuracy_own"])
    images, labels, idx = _valid(cascade)
    cam = cascade.explain(images, labels, return_stages=True)[1][0]
    art = cascade.data.artifact_masks[idx]
    flat = cam.reshape(len(cam), -1).argmax(1)
    on_box = art.reshape(len(art), -1).gather(1, flat[:, None])[:, 0]
    near = torch.nn.functional.max_pool2d(art[:, None].float(), 7, stride=1, padding=3)[:, 0] > 0
    near_box = near.reshape(len(near), -1).gather(1, flat[:, None])[:, 0]
    out["cam_on_box_rate"] = float(on_box.float().mean())
    out["cam_near_box_rate"] = float(near_box.float().mean())
    if cascade.data.object_masks is not None:
        obj = cascade.data.object_masks[idx]
        on_animal = obj.reshape(len(obj), -1).gather(1, flat[:, None])[:, 0]
        out["cam_on_animal_rate"] = float(on_animal.float().mean())
        out["cam_elsewhere_rate"] = float((~on_animal & ~on_box).float().mean())
        out["cam_on_animal_ci"] = bootstrap_mean_ci(on_animal.float().numpy())
        out["box_shortcut_pointing"] = box_shortcut_pointing(obj, art)
    out["cam_on_box_ci"] = bootstrap_mean_ci(on_box.float().numpy())
    return out


def format_report(cascade: Cascade, table: pd.DataFrame, validity: dict | None = None) -> str:
    """A short plain-text report for the command line."""
    lines = [f"run: {cascade.record.dir}", f"config: K={cascade.config.K} θ={cascade.config.theta} "
             f"threshold={cascade.config.threshold} topk={cascade.config.topk} λ={cascade.config.lam} "
             f"explainer={cascade.config.explainer}", ""]
    it = cascade.iteration_table()
    cols = [c for c in ("iteration", "epochs_run", "stopped_early", "train_seconds", "valid_accuracy_own",
                        "valid_accuracy_original", "valid_accuracy_clean") if c in it.columns]
    lines += ["per iteration (validation accuracy of model k on its own masked images, originals, box-free):",
              it[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"), ""]
    lines += ["validation images (means; pointing = rate of images whose maximum lies in the mask):",
              table.to_string(float_format=lambda v: f"{v:.3f}"), ""]
    if validity:
        lines += ["benchmark validity:"] + [f"  {k}: {v:.3f}" for k, v in validity.items()]
    return "\n".join(lines)
