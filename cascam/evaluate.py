"""Evaluation of a run: every method's maps on the validation images, the paper's metrics per image,
and the detection tables (which elements of an image each method highlights).

Baselines explain model 1 (the classifier trained on the original images), as in the paper;
CasCAM uses all K models. Results are cached in the run's folder.
"""

from __future__ import annotations

import hashlib
import json
import time

import numpy as np
import pandas as pd
import torch

from .cascade import Cascade, to_float_images
from .explainers import get_explainer
from .masking import normalize_maps
from .metrics import average_precision, compute_all, prepare, topk_count

__all__ = [
    "METHOD_LABELS", "ALL_METHODS", "method_maps", "evaluate", "detection_table", "DETECTION_RULE",
    "VISIBLE_PART", "visible_scores",
]

#: Display names, in the order of the paper's Table 5.
METHOD_LABELS: dict[str, str] = {
    "cascam": "CasCAM",
    "cam": "CAM",
    "gradcam": "GradCAM",
    "hirescam": "HiResCAM",
    "gradcam++": "GradCAM++",
    "scorecam": "ScoreCAM",
    "ablationcam": "AblationCAM",
    "xgradcam": "XGradCAM",
    "fullgrad": "FullGrad",
    "eigengradcam": "EigenGradCAM",
    "layercam": "LayerCAM",
}
ALL_METHODS: tuple[str, ...] = tuple(METHOD_LABELS)


def _check_methods(methods) -> list[str]:
    out = []
    for m in methods:
        key = m.lower()
        if key not in METHOD_LABELS:
            raise ValueError(f"methods: unknown method {m!r}; choose from {', '.join(ALL_METHODS)}")
        out.append(key)
    return out


def method_maps(
    cascade: Cascade,
    images: torch.Tensor,
    labels: torch.Tensor,
    methods=ALL_METHODS,
    *,
    batch_size: int = 32,
    timings: dict | None = None,
) -> dict[str, torch.Tensor]:
    """Maps ``(B, H, W)`` (normalised to [0, 1]) of each method for ``images``, targets = ``labels``.

    ``cascam`` is the cascade's combined map; every other name is that explainer applied to model 1.
    ``timings`` (if given) receives the seconds each method took for the whole batch.
    """
    methods = _check_methods(methods)
    timings = timings if timings is not None else {}
    model = cascade.models[0]
    device = next(model.parameters()).device
    out: dict[str, torch.Tensor] = {}
    for m in methods:
        t0 = time.perf_counter()
        if m == "cascam":
            maps = cascade.explain(images, labels, batch_size=batch_size)
        else:
            explainer = get_explainer(m)
            parts = []
            for s in range(0, len(images), batch_size):
                xb = to_float_images(images[s : s + batch_size]).to(device)
                parts.append(explainer(model, xb, labels[s : s + batch_size].to(device)).float().cpu())
            maps = normalize_maps(torch.cat(parts))
        timings[m] = time.perf_counter() - t0
        out[m] = maps.cpu()
    return out


def _cache_name(cascade: Cascade, methods, split, n_images, K: int | None = None) -> str:
    """The cache file of one evaluation in format 1 (all requested methods in one file); read only."""
    c = cascade.config
    blob = json.dumps(
        {"methods": list(methods), "split": split, "n": n_images, "K": cascade.K if K is None else K, "lam": c.lam,
         "combine": c.combine, "explain_on": c.explain_on, "explainer": c.explainer, "threshold": c.threshold,
         "topk": c.topk, "version": 1},
        sort_keys=True,
        default=str,
    )
    return "evaluation/" + hashlib.sha256(blob.encode()).hexdigest()[:12] + ".csv"


def _method_cache_name(cascade: Cascade, method: str, split: str, n_images) -> str:
    """One method's cache file. A baseline explains model 1 only, so its file is shared by every K,
    λ and combination of the run; CasCAM's depends on them."""
    key: dict = {"method": method, "split": split, "n": n_images, "version": 2}
    if method == "cascam":
        c = cascade.config
        key.update(K=cascade.K, lam=c.lam, combine=c.combine, explain_on=c.explain_on, explainer=c.explainer,
                   threshold=c.threshold, topk=c.topk)
    blob = json.dumps(key, sort_keys=True, default=str)
    return f"evaluation/{method}-" + hashlib.sha256(blob.encode()).hexdigest()[:12] + ".csv"


def _split_legacy(cascade: Cascade, split: str, n_images) -> None:
    """Turn format-1 caches of the full method list (written before per-method files) into per-method
    files, so an evaluation that took an hour on a CPU is not redone after an upgrade."""
    labels = {v: k for k, v in METHOD_LABELS.items()}
    for k in range(1, cascade.record.iterations_available() + 1):
        legacy = cascade.record.read_frame(_cache_name(cascade, ALL_METHODS, split, n_images, K=k))
        if legacy is None:
            continue
        view = cascade.truncated(k) if k <= cascade.K else None
        for label, frame in legacy.groupby("method", sort=False):
            method = labels.get(label)
            if method is None or (method == "cascam" and view is None):
                continue
            name = _method_cache_name(view or cascade, method, split, n_images)
            if cascade.record.read_frame(name) is None:
                cascade.record.write_frame(name, frame.reset_index(drop=True))


def _split_index(cascade: Cascade, split: str, n_images: int | None) -> np.ndarray:
    if split == "valid":
        idx = cascade.valid_index
    elif split == "train":
        idx = cascade.train_index
    elif split == "all":
        idx = np.arange(len(cascade.data))
    else:
        raise ValueError(f"split: must be valid, train or all; got {split!r}")
    return idx[:n_images] if n_images else idx


#: The column of the authors' AP: ``sklearn.metrics.auc(recall, precision)`` on the
#: precision-recall curve (the trapezoid; their evaluator's definition), beside ``average_precision``
#: (sklearn's step ``average_precision_score``).
AP_TRAPEZOID = "average_precision_trapezoid"

#: The part holding the animal's pixels that the label box leaves visible (benchmark v2; the primary
#: object mask there is the whole silhouette, as a trimap has it). Its reading gets these columns.
VISIBLE_PART = "object1_visible"
VISIBLE_COLUMNS = {"pointing_game": "pointing_game_visible", "energy_in_gt": "energy_in_gt_visible"}


def visible_scores(maps: torch.Tensor, visible: torch.Tensor) -> dict[str, np.ndarray]:
    """The secondary, box-excluded reading: pointing game and energy on the animal's *visible* pixels
    (the silhouette minus the label box), under the names of :data:`VISIBLE_COLUMNS`."""
    m = compute_all(maps, object_mask=visible)
    return {new: m[old] for old, new in VISIBLE_COLUMNS.items()}


def evaluate(
    cascade: Cascade,
    methods=ALL_METHODS,
    split: str = "valid",
    *,
    n_images: int | None = None,
    batch_size: int = 32,
    use_cache: bool = True,
) -> pd.DataFrame:
    """A tidy table, one row per (image, method), with every metric of :func:`cascam.metrics.compute_all`.

    Columns: ``image`` (index in the data set), ``name``, ``label``, ``method`` (display name),
    ``seconds_per_image`` and the metric columns (object metrics only when the data has object
    masks, artifact metrics only when it has artifact masks). With object masks there are two APs:
    ``average_precision`` (step, sklearn's ``average_precision_score``) and
    :data:`AP_TRAPEZOID` (the trapezoid rule, as the authors' evaluator computed it). When the data
    has the part :data:`VISIBLE_PART` (benchmark v2), ``pointing_game_visible`` and
    ``energy_in_gt_visible`` give the box-excluded reading beside the silhouette's. Cached in the run's folder under
    ``evaluation/``, one file per method: a second call reads the cache and computes only the
    methods it lacks, and a baseline's file serves every K, λ and combination of the run (baselines
    explain model 1).
    """
    methods = _check_methods(methods)
    names = {m: _method_cache_name(cascade, m, split, n_images) for m in methods}
    found: dict[str, pd.DataFrame] = {}
    if use_cache:
        for attempt in range(2):
            for m in methods:
                if m not in found and (frame := cascade.record.read_frame(names[m])) is not None:
                    if "average_precision" in frame.columns and AP_TRAPEZOID not in frame.columns:
                        continue  # written before the authors' AP was measured: recompute this method
                    if VISIBLE_PART in cascade.data.parts and "pointing_game_visible" not in frame.columns:
                        continue  # written before the box-excluded reading existed
                    found[m] = frame
            if len(found) == len(methods) or attempt:
                break
            _split_legacy(cascade, split, n_images)
    missing = [m for m in methods if m not in found]
    if missing:
        idx = _split_index(cascade, split, n_images)
        data = cascade.data
        images, labels = data.images[idx], data.labels[idx]
        obj = data.object_masks[idx] if data.object_masks is not None else None
        art = data.artifact_masks[idx] if data.artifact_masks is not None else None
        visible = data.parts[VISIBLE_PART][idx] if VISIBLE_PART in data.parts else None
        timings: dict = {}
        maps = method_maps(cascade, images, labels, missing, batch_size=batch_size, timings=timings)
        for m, s in maps.items():
            frame = pd.DataFrame(compute_all(s, object_mask=obj, artifact_mask=art))
            if obj is not None:  # the authors' AP (trapezoid) beside sklearn's step AP
                frame[AP_TRAPEZOID] = average_precision(s, obj, method="trapezoid")
            if visible is not None:  # benchmark v2: the box-excluded reading beside the silhouette's
                for column, values in visible_scores(s, visible).items():
                    frame[column] = values
            frame.insert(0, "seconds_per_image", timings[m] / max(len(idx), 1))
            frame.insert(0, "method", METHOD_LABELS[m])
            frame.insert(0, "label", labels.numpy())
            frame.insert(0, "name", [data.names[i] for i in idx])
            frame.insert(0, "image", idx)
            cascade.record.write_frame(names[m], frame)
            found[m] = cascade.record.read_frame(names[m])  # as a later call reads it (same dtypes)
    return pd.concat([found[m] for m in methods], ignore_index=True)


#: How "detected" is defined for the detection tables (Tables 3–4 measured).
DETECTION_RULE = (
    "an element counts as detected by a map when it holds at least 10 % of the map's top-15 % pixels, "
    "or at least half of the element's own pixels are among them (so both large and small elements can qualify)"
)


def detection_frame(maps: dict[str, torch.Tensor], parts: dict[str, torch.Tensor]) -> pd.DataFrame:
    """Per image, whether each element is detected under :data:`DETECTION_RULE`: one row per
    method × image (``method``, ``image`` = position in the batch), one 0/1 column per part; NaN
    where the element is absent from the image (empty mask).

    Args:
        maps: method → ``(B, h, w)`` saliency.
        parts: element name → ``(B, H, W)`` bool mask (e.g. ``artifact1``, ``artifact2``, ``object1``,
            ``object2``).
    """
    frames = []
    for method, s in maps.items():
        any_mask = next(iter(parts.values()))
        size = tuple(any_mask.shape[-2:])
        prepared = prepare(s, size).reshape(len(s), -1)
        k = topk_count(prepared.shape[1], 15.0)
        top = torch.zeros_like(prepared, dtype=torch.bool)
        top.scatter_(1, prepared.topk(k, dim=1).indices, True)
        cols = {}
        for name, mask in parts.items():
            m = mask.reshape(len(mask), -1).bool()
            inside = (top & m).sum(1).float()
            detected = ((inside / k >= 0.10) | (inside / m.sum(1).clamp_min(1) >= 0.5)).float()
            cols[name] = torch.where(m.any(1), detected, torch.tensor(float("nan"))).numpy()
        frames.append(pd.DataFrame({"method": METHOD_LABELS.get(method, method), "image": np.arange(len(s)), **cols}))
    return pd.concat(frames, ignore_index=True)


def detection_table(maps: dict[str, torch.Tensor], parts: dict[str, torch.Tensor]) -> pd.DataFrame:
    """Detection rate of each element (rows: methods, columns: parts) under :data:`DETECTION_RULE`:
    the mean of :func:`detection_frame` over the images where the element is present."""
    frame = detection_frame(maps, parts)
    return frame.drop(columns="image").groupby("method", sort=False).mean()
