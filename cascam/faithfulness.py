"""Faithfulness by ROAD (Rong et al. 2022, grad-cam's ``pytorch_grad_cam.metrics.road``): how much a
model's confidence in its class changes when the most / least relevant x % of the pixels, by a map, are
removed (imputed from their neighbours by grad-cam's noisy linear imputer).

A faithful map loses confidence fast when its most relevant pixels go (``order="most"``: a large
drop, a negative score) and little when its least relevant ones go (``order="least"``: near 0).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

__all__ = ["ORDERS", "rank_maps", "road_scores", "faithfulness_frame"]

#: ``most``: remove the most relevant pixels first (grad-cam's ROADMostRelevantFirst); ``least``: the
#: least relevant first (ROADLeastRelevantFirst).
ORDERS: tuple[str, ...] = ("most", "least")


def rank_maps(maps, seed: int = 0) -> np.ndarray:
    """Each map's pixels replaced by their rank, scaled to [0, 1] (0 = least, 1 = most relevant),
    ``(B, H, W)`` float32; ties are broken in a seeded random order.

    ROAD removes the pixels at or above a percentile of the map's values; on a map with ties (a
    thresholded CasCAM map is mostly exact zeros) that removes every tied pixel at once — ``least``
    at 10 % would remove the whole zero background — so methods with sparse maps would be judged on
    more pixels than dense ones. Ranks with random tie-breaking make every map remove the same share.
    """
    m = maps.detach().float().cpu().numpy() if isinstance(maps, torch.Tensor) else np.asarray(maps, dtype=np.float32)
    if m.ndim != 3:
        raise ValueError(f"maps: expected (B, H, W); got shape {m.shape}")
    if not np.isfinite(m).all():
        raise ValueError("maps: contain NaN or infinite values")
    b, n = m.shape[0], m.shape[1] * m.shape[2]
    rng = np.random.default_rng(seed)
    flat = m.reshape(b, n)
    out = np.empty((b, n), dtype=np.float32)
    for i in range(b):
        order = np.lexsort((rng.permutation(n), flat[i]))  # by value, ties by a random key
        out[i, order] = np.arange(n, dtype=np.float32) / max(n - 1, 1)
    return out.reshape(m.shape)


def road_scores(
    model: torch.nn.Module,
    images: torch.Tensor,
    maps,
    classes: torch.Tensor | Sequence[int],
    *,
    percents: Sequence[float] = (10, 20, 50),
    orders: Sequence[str] = ORDERS,
    seed: int = 0,
    batch_size: int = 32,
) -> dict[tuple[float, str], np.ndarray]:
    """ROAD score per image: p(class | x with x % of the pixels removed) − p(class | x), softmax.

    For each ``percent`` x and ``order``, grad-cam's ``ROADMostRelevantFirst`` / ``ROADLeastRelevantFirst``
    is called with ``percentile = 100 − x`` (its percentile is the share of pixels *kept*) on
    :func:`rank_maps`\\ (maps) and ``ClassifierOutputSoftmaxTarget(class)``, with the difference
    (``return_diff``) as the score. The imputer's noise is drawn from a torch generator seeded with
    ``seed`` (forked, so the global RNG is untouched); the model is run in eval mode and left in the
    mode it was in.

    Args:
        model: maps float images ``(B, 3, H, W)`` in [0, 1] to logits.
        images: uint8 or float [0, 1] ``(B, 3, H, W)``.
        maps: ``(B, H, W)`` relevance (any scale; only the order of the pixels matters).
        classes: the class of each image whose confidence is measured.
    Returns:
        ``{(percent, order): (B,) float64}``.
    """
    from pytorch_grad_cam.metrics.road import ROADLeastRelevantFirst, ROADMostRelevantFirst
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    x = images.float() / 255 if images.dtype == torch.uint8 else images.float()
    if x.ndim != 4:
        raise ValueError(f"images: expected (B, 3, H, W); got shape {tuple(x.shape)}")
    ranked = rank_maps(maps, seed)
    if ranked.shape != (x.shape[0], *x.shape[-2:]):
        raise ValueError(f"maps: shape {ranked.shape} does not match the images' {(x.shape[0], *x.shape[-2:])}")
    classes = [int(c) for c in (classes.tolist() if isinstance(classes, torch.Tensor) else classes)]
    if len(classes) != len(x):
        raise ValueError(f"classes: {len(classes)} for {len(x)} image(s)")
    for o in orders:
        if o not in ORDERS:
            raise ValueError(f"orders: unknown order {o!r}; choose from {', '.join(ORDERS)}")
    for p in percents:
        if not 0 < float(p) < 100:
            raise ValueError(f"percents: must lie in (0, 100); got {p!r}")
    device = next(model.parameters()).device
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    out: dict[tuple[float, str], np.ndarray] = {}
    try:
        for p in percents:
            for o in orders:
                metric_cls = ROADMostRelevantFirst if o == "most" else ROADLeastRelevantFirst
                metric = metric_cls(percentile=100 - float(p))
                parts = []
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(seed)
                    for start in range(0, len(x), batch_size):
                        xb = x[start : start + batch_size].to(device)
                        targets = [ClassifierOutputSoftmaxTarget(c) for c in classes[start : start + batch_size]]
                        parts.append(metric(xb, ranked[start : start + batch_size], targets, model))
                out[(p, o)] = np.concatenate(parts).astype(np.float64)
    finally:
        for m, training in modes:
            m.training = training
    return out


def faithfulness_frame(
    cascade,
    images: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    methods: Sequence[str] = ("cam", "fullgrad", "cascam"),
    percents: Sequence[float] = (10, 20, 50),
    orders: Sequence[str] = ORDERS,
    seed: int = 0,
    batch_size: int = 32,
) -> pd.DataFrame:
    """ROAD scores of CAM, FullGrad and CasCAM on a cascade, one row per image × method × percent × order.

    The class is ``labels`` or model 1's prediction, the same for every method. Methods and the model
    each is judged on:

    * ``cam``, ``fullgrad`` (or any name of :data:`cascam.explainers.EXPLAINER_NAMES`): model 1's
      map, judged on model 1;
    * ``cascam``: the combined CasCAM map (:class:`cascam.explainers.CasCAM`), judged on model 1 —
      the model the baselines explain; and ``cascam_stage`` rows, one per k: the stage-k map
      Norm(TH(CAM_k)), judged on model k, the model that produced it.

    Columns: ``method``, ``model`` (k), ``image`` (index into ``images``), ``percentile`` (the
    percent of pixels removed; grad-cam's own ``percentile`` argument is 100 − this), ``order``
    ("most" / "least"), ``score`` (change of the softmax probability of the class; negative = lost
    confidence). Images are taken at the cascade's ``image_size``. Pair rows by (image, percentile,
    order) to compare methods, e.g. with :func:`cascam.verdicts.compare_in_frame`.
    """
    from .cascade import to_float_images
    from .explainers import CasCAM, get_explainer

    x = to_float_images(images)
    if x.ndim != 4 or tuple(x.shape[-2:]) != (cascade.config.image_size,) * 2:
        raise ValueError(
            f"images: expected (B, 3, {cascade.config.image_size}, {cascade.config.image_size}); got {tuple(x.shape)}"
        )
    classes = labels.long() if labels is not None else cascade.predict_targets(x)
    rows = []

    def add(method: str, k: int, model, maps) -> None:
        scores = road_scores(model, x, maps, classes, percents=percents, orders=orders, seed=seed,
                             batch_size=batch_size)
        for (p, o), values in scores.items():
            rows.append(pd.DataFrame({"method": method, "model": k, "image": np.arange(len(x)),
                                      "percentile": float(p), "order": o, "score": values}))

    model1 = cascade.models[0]
    device = next(model1.parameters()).device
    for method in methods:
        if method == "cascam":
            cam = CasCAM(cascade, batch_size=batch_size)
            combined = cam(x, [int(c) for c in classes])
            add("cascam", 1, model1, combined)
            for k, (model, stage) in enumerate(zip(cascade.models, cam.last_stages, strict=True), start=1):
                add("cascam_stage", k, model, stage)
        else:
            explainer = get_explainer(method)
            maps = torch.cat([
                explainer(model1, x[s : s + batch_size].to(device), classes[s : s + batch_size].to(device)).cpu()
                for s in range(0, len(x), batch_size)
            ])
            add(method, 1, model1, maps)
    return pd.concat(rows, ignore_index=True)
