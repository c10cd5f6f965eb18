"""Faithfulness by ROAD (Rong et al. 2022, grad-cam's ``pytorch_grad_cam.metrics.road``): how much a
model's confidence in its class changes when the most / least relevant x % of the pixels, by a map, are
removed (imputed from their neighbours by grad-cam's noisy linear imputer).

A faithful map loses confidence fast when its most relevant pixels go (``order="most"``: a large
drop, a negative score) and little when its least relevant ones go (``order="least"``: near 0).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

__all__ = [
    "ORDERS", "TABLE5_METHODS", "RANDOM", "rank_maps", "road_scores", "faithfulness_frame",
    "faithfulness_summary", "faithfulness_table", "faithfulness_grid", "interval_text",
]

#: ``most``: remove the most relevant pixels first (grad-cam's ROADMostRelevantFirst); ``least``: the
#: least relevant first (ROADLeastRelevantFirst).
ORDERS: tuple[str, ...] = ("most", "least")

#: Every method of the paper's Table 5 (CAM, the nine grad-cam baselines, CasCAM), in the table's order.
TABLE5_METHODS: tuple[str, ...] = (
    "cam", "gradcam", "hirescam", "gradcam++", "scorecam", "ablationcam", "xgradcam", "fullgrad",
    "eigengradcam", "layercam", "cascam",
)

#: The name of the reference "map" that ranks pixels at random (seeded): the score of a map that
#: knows nothing about the model, beside which every other score is read.
RANDOM = "random"


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
    methods: Sequence[str] = (*TABLE5_METHODS, RANDOM),
    percents: Sequence[float] = (10, 20, 50),
    orders: Sequence[str] = ORDERS,
    stages: bool = True,
    cascam_on_every_model: bool = False,
    seed: int = 0,
    batch_size: int = 32,
) -> pd.DataFrame:
    """ROAD scores of each method's map on a cascade, one row per image × method × model × percent × order.

    The class is ``labels`` or model 1's prediction, the same for every method. Methods and the model
    each is judged on:

    * ``cam`` and every other name of :data:`cascam.explainers.EXPLAINER_NAMES` (by default the ten
      baselines of Table 5, :data:`TABLE5_METHODS`): model 1's map, judged on model 1;
    * ``cascam``: the combined CasCAM map (:class:`cascam.explainers.CasCAM`), judged on model 1 —
      the model the baselines explain — and, with ``cascam_on_every_model``, on every model k too;
      with ``stages``, ``cascam_stage`` rows, one per k: the stage-k map Norm(TH(CAM_k)), judged on
      model k, the model that produced it;
    * ``random`` (:data:`RANDOM`): a uniform random map (seeded by ``seed``), judged on model 1 — the
      score of a ranking that carries no information about the model.

    Columns: ``method``, ``model`` (k), ``image`` (index into ``images``), ``percentile`` (the
    percent of pixels removed; grad-cam's own ``percentile`` argument is 100 − this), ``order``
    ("most" / "least"), ``score`` (change of the softmax probability of the class; negative = lost
    confidence). Images are taken at the cascade's ``image_size``. Pair rows by (image, model,
    percentile, order) to compare methods (:func:`faithfulness_summary` does).

    Cost: ROAD's imputation solves one sparse system per image, map, percent and order (about 15 ms
    per image at 64 px and 20 %, 45 ms at 50 %, one CPU thread); ScoreCAM and AblationCAM's maps cost
    about 0.15 and 0.1 s per image with the small CNN.
    """
    from .cascade import to_float_images
    from .explainers import EXPLAINER_NAMES, CasCAM, get_explainer

    for method in methods:
        if method not in (*EXPLAINER_NAMES, "cascam", RANDOM):
            raise ValueError(f"methods: unknown method {method!r}; choose from "
                             f"{', '.join((*EXPLAINER_NAMES, 'cascam', RANDOM))}")
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
            for k, model in enumerate(cascade.models if cascam_on_every_model else cascade.models[:1], start=1):
                add("cascam", k, model, combined)
            if stages:
                for k, (model, stage) in enumerate(zip(cascade.models, cam.last_stages, strict=True), start=1):
                    add("cascam_stage", k, model, stage)
        elif method == RANDOM:
            noise = np.random.default_rng([int(seed), 7]).random((len(x), *x.shape[-2:]), dtype=np.float32)
            add(RANDOM, 1, model1, noise)
        else:
            explainer = get_explainer(method)
            maps = torch.cat([
                explainer(model1, x[s : s + batch_size].to(device), classes[s : s + batch_size].to(device)).cpu()
                for s in range(0, len(x), batch_size)
            ])
            add(method, 1, model1, maps)
    return pd.concat(rows, ignore_index=True)


def faithfulness_summary(
    frame: pd.DataFrame,
    *,
    reference: str = "cascam",
    level: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    r"""Mean ROAD score per method × model × percentile × order with its bootstrap interval, and the
    paired difference to ``reference`` on the same model and images.

    $$ \bar s = \frac1n \sum_i s_i, \qquad \bar\delta = \frac1n \sum_i (s^{\text{ref}}_i - s_i) $$

    Intervals are percentile bootstraps over images (:func:`cascam.stats.bootstrap_mean_ci`, seeded
    per row; the difference by :func:`cascam.verdicts.paired_interval`, images paired). A difference
    below 0 under ``order="most"`` says the reference's most relevant pixels cost more confidence than
    this method's. Rows of a model the reference is not judged on have NaN differences.

    Args:
        frame: :func:`faithfulness_frame`'s rows (a ``seed`` column, if present, is ignored: one run).
    Returns:
        Columns ``method``, ``model``, ``order``, ``percentile``, ``n_images``, ``mean``, ``ci_low``,
        ``ci_high``, ``diff``, ``diff_low``, ``diff_high`` (reference − method), one row per group, in
        the order the groups first appear in ``frame``.
    """
    import zlib

    from .stats import bootstrap_mean_ci
    from .verdicts import paired_interval

    keys = ["method", "model", "order", "percentile"]
    ref = frame[frame["method"] == reference].set_index(["model", "order", "percentile", "image"])["score"]
    out = []
    for (method, model, order, percentile), group in frame.groupby(keys, sort=False):
        values = group["score"].to_numpy(np.float64)
        rng_seed = [int(seed), zlib.crc32(repr((method, int(model), order, float(percentile))).encode())]
        low, high = bootstrap_mean_ci(values, n_boot, np.random.default_rng(rng_seed), level)
        diff = d_low = d_high = math.nan
        index = pd.MultiIndex.from_arrays([[model] * len(group), [order] * len(group), [percentile] * len(group),
                                           group["image"].to_numpy()])
        paired = ref.reindex(index).to_numpy(np.float64)
        if method != reference and not np.isnan(paired).all():
            diff, d_low, d_high, _, _ = paired_interval(paired, values, n_boot=n_boot, level=level, seed=seed)
        out.append({"method": method, "model": int(model), "order": order, "percentile": float(percentile),
                    "n_images": int(np.isfinite(values).sum()), "mean": float(np.nanmean(values)),
                    "ci_low": low, "ci_high": high, "diff": diff, "diff_low": d_low, "diff_high": d_high})
    return pd.DataFrame(out)


def interval_text(mean: float, low: float, high: float, digits: int = 3) -> str:
    """``"−0.420 [−0.470, −0.370]"``: a mean and its interval, with a true minus sign; ``—`` when missing.

    Example:
        >>> interval_text(-0.42, -0.47, -0.37, digits=2)
        '−0.42 [−0.47, −0.37]'
    """
    if not all(math.isfinite(v) for v in (mean, low, high)):
        return "—"

    def f(v: float) -> str:
        text = f"{v:.{digits}f}"
        return ("0" + text[2:] if text.startswith("-0") and float(text) == 0 else text).replace("-", "−")

    return f"{f(mean)} [{f(low)}, {f(high)}]"


def _map_rows(at: pd.DataFrame, labels: Mapping[str, str], reference: str):
    """(row name, rows of one map) in the tables' order: methods on model 1 as they first appear, then
    the reference on models 2…K, then each stage map on its own model."""
    ref_name = labels.get(reference, reference)
    order_of = {m: i for i, m in enumerate(at["method"].drop_duplicates())}
    ranked = at.assign(_stage=at["method"].eq("cascam_stage"), _o=at["method"].map(order_of))
    ranked = ranked.sort_values(["_stage", "model", "_o"], kind="stable")
    for (method, model), group in ranked.groupby(["method", "model"], sort=False):
        model = int(model)
        if method == "cascam_stage":
            name = f"{ref_name} stage {model} (model {model})"
        else:
            name = labels.get(method, method) if model == 1 else f"{labels.get(method, method)} on model {model}"
        yield name, group


def faithfulness_table(
    summary: pd.DataFrame,
    percentile: float,
    *,
    labels: Mapping[str, str] | None = None,
    reference: str = "cascam",
    digits: int = 3,
) -> pd.DataFrame:
    """One row per map (method on model 1, then CasCAM's combined map on models 2…K, then each stage map
    on its own model), text cells "mean [95 % interval]" at one ``percentile``: the columns
    "most relevant x % removed", "least relevant x % removed" and, for rows judged on the same model as
    the reference, the paired difference "<reference> − method, most relevant" (reference first).

    Args:
        summary: :func:`faithfulness_summary`'s rows.
        labels: display names of the methods (e.g. :data:`cascam.evaluate.METHOD_LABELS`).
    """
    labels = dict(labels or {})
    at = summary[np.isclose(summary["percentile"], float(percentile))]
    if at.empty:
        raise ValueError(f"percentile: no rows at {percentile!r}; have {sorted(summary['percentile'].unique())}")
    p = f"{float(percentile):g} %"
    ref_name = labels.get(reference, reference)
    rows = {}
    for name, group in _map_rows(at, labels, reference):
        cells = {}
        for order in ORDERS:
            hit = group[group["order"] == order]
            if not hit.empty:
                r = hit.iloc[0]
                cells[f"{order} relevant {p} removed"] = interval_text(r["mean"], r["ci_low"], r["ci_high"], digits)
        most = group[group["order"] == "most"]
        if not most.empty:
            r = most.iloc[0]
            cells[f"{ref_name} − method, most relevant {p} (paired)"] = interval_text(
                r["diff"], r["diff_low"], r["diff_high"], digits)
        rows[name] = cells
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "map (judged on)"
    return table


def faithfulness_grid(
    summary: pd.DataFrame,
    order: str,
    *,
    labels: Mapping[str, str] | None = None,
    reference: str = "cascam",
    digits: int = 3,
) -> pd.DataFrame:
    """One row per map (as :func:`faithfulness_table`), one column per percentile ("x % removed"), text
    cells "mean [95 % interval]" for one ``order`` ("most" / "least")."""
    if order not in ORDERS:
        raise ValueError(f"order: unknown order {order!r}; choose from {', '.join(ORDERS)}")
    at = summary[summary["order"] == order]
    rows = {name: {f"{r['percentile']:g} % removed": interval_text(r["mean"], r["ci_low"], r["ci_high"], digits)
                   for _, r in group.sort_values("percentile").iterrows()}
            for name, group in _map_rows(at, dict(labels or {}), reference)}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "map (judged on)"
    return table
