"""CasCAM: train, explain, threshold, mask, repeat — and combine the K maps (docs/method.md, § The cascade).

``run_cascade`` trains (or loads from the run store) the K classifiers; ``Cascade.explain`` is the
inference-only explanation with the trained models.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from .config import CascadeConfig
from .data import ImageData, load_data
from .explainers import Explainer, get_explainer
from .hooks import pause_after_iteration
from .masking import combine_maps, mask_images, normalize_maps
from .models import CamNet, build_model
from .pretrain import pretrained_body
from .store import RunRecord, RunStore
from .streaming import DiskImages, ImageWriter, TensorImages, open_x, remove_x, take, x_path
from .threshold import apply_threshold
from .training import accuracy, resolve_device, split_indices, to_device, train_classifier

__all__ = ["Cascade", "run_cascade", "load_cascade", "threshold_maps", "cascade_step", "to_float_images"]


def to_float_images(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``(N, 3, H, W)`` → float32 in [0, 1]; float input is returned as float32 unchanged."""
    return images.float() / 255 if images.dtype == torch.uint8 else images.float()


def threshold_maps(cams: torch.Tensor, config: CascadeConfig) -> torch.Tensor:
    """TH(CAM) with the configuration's scheme and parameters (negative part clipped first)."""
    return apply_threshold(
        cams,
        config.threshold,
        topk=config.topk,
        prior=config.ebayes_prior,
        a=config.ebayes_a,
        threshrule=config.ebayes_threshrule,
        standardize=config.ebayes_standardize,
    )


def cascade_step(
    model: nn.Module,
    explainer: Explainer,
    x: torch.Tensor,
    targets: torch.Tensor,
    config: CascadeConfig,
    *,
    batch_size: int = 256,
    mask: bool = True,
    keep_maps: bool = True,
    timings: dict | None = None,
    out=None,
) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """One iteration's explanation and counterfactual step on images ``x`` (float, [0, 1]).

    Returns ``(cams, M, x_next)``: raw maps CAM_k(x) ``(N, H, W)``, thresholded maps M_k = TH(CAM_k),
    and x^(k+1) = MinMax(fill(x, M_k)) (None when ``mask`` is False; the maps are None when
    ``keep_maps`` is False, which training uses since it needs only x^(k+1)). Work is done in
    batches on the model's device; results are written batch by batch into tensors allocated once on
    the device of ``x``, so peak memory is the outputs plus one batch.

    ``x`` may also be a streamed source (:class:`~cascam.streaming.DiskImages`,
    :class:`~cascam.streaming.TensorImages`), read one batch at a time; ``out`` (e.g. an
    :class:`~cascam.streaming.ImageWriter`) receives x^(k+1) batch by batch instead of a tensor, and
    is returned as the third element.
    """
    timings = timings if timings is not None else {}
    device = next(model.parameters()).device
    n, (h, w) = len(x), x.shape[-2:]
    cams_out = torch.empty(n, h, w, device=x.device) if keep_maps else None
    th_out = torch.empty(n, h, w, device=x.device) if keep_maps else None
    next_out = (out if out is not None else torch.empty(n, 3, h, w, device=x.device)) if mask else None
    t_explain = t_threshold = t_mask = 0.0
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        xb = to_device(to_float_images(x[start:stop]), device)
        tb = targets[start:stop].to(device)
        t0 = time.perf_counter()
        cams = explainer(model, xb, tb).float()
        t1 = time.perf_counter()
        th = threshold_maps(cams, config)
        t2 = time.perf_counter()
        if mask:
            next_out[start:stop] = mask_images(xb, th, config.theta, config.fill, config.mask_dilate)
        t3 = time.perf_counter()
        t_explain += t1 - t0
        t_threshold += t2 - t1
        t_mask += t3 - t2
        if keep_maps:
            cams_out[start:stop] = cams
            th_out[start:stop] = th
    timings.update(explain_seconds=t_explain, threshold_seconds=t_threshold, mask_seconds=t_mask)
    return cams_out, th_out, next_out


@dataclass
class Cascade:
    """A trained cascade: its configuration, run record, data, split and the K models."""

    config: CascadeConfig
    record: RunRecord
    data: ImageData | None
    train_index: np.ndarray
    valid_index: np.ndarray
    models: list[CamNet] = field(default_factory=list)
    device: torch.device = torch.device("cpu")

    @property
    def K(self) -> int:
        return len(self.models)

    def explainers(self) -> list[Explainer]:
        return [get_explainer(self.config.explainer_for(k)) for k in range(1, self.K + 1)]

    def predict_targets(self, images: torch.Tensor) -> torch.Tensor:
        """Model 1's predicted class, the target used when no labels are given."""
        from .training import predict_logits

        return predict_logits(self.models[0], images).argmax(1)  # converted to float batch by batch

    def trace(self, images: torch.Tensor, labels: torch.Tensor | None = None, batch_size: int = 128) -> dict:
        """Everything the cascade does to ``images``: per iteration k the input x^(k), the raw map
        CAM_k(x^(k)) and its thresholded M_k (lists of K tensors; x has K entries, x^(1) = the input).

        This recomputes, with the trained models, the masked images used in training: exactly for a
        run with ``stream=False`` or ``stream_dtype="float32"``; a streamed float16 run trained on
        these values rounded to float16 (:mod:`cascam.streaming`).
        """
        targets = labels if labels is not None else self.predict_targets(images)
        x = to_float_images(images)
        xs, cams, ths = [], [], []
        for k, (model, explainer) in enumerate(zip(self.models, self.explainers(), strict=True), start=1):
            xs.append(x)
            cam, th, x_next = cascade_step(model, explainer, x, targets, self.config, batch_size=batch_size, mask=k < self.K)
            cams.append(cam)
            ths.append(th)
            if x_next is not None:
                x = x_next
        return {"x": xs, "cams": cams, "thresholded": ths, "targets": targets}

    def explain(
        self,
        images: torch.Tensor,
        labels: torch.Tensor | None = None,
        *,
        lam: float | None = None,
        combine: str | None = None,
        return_stages: bool = False,
        batch_size: int = 128,
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """CasCAM maps for ``images`` (uint8 or float [0, 1], ``(B, 3, H, W)``), inference only.

        .. math:: \\mathrm{CasCAM}(x) = \\mathrm{Norm}\\Big(\\sum_k \\omega_k\\, \\mathrm{Norm}(\\mathrm{TH}(\\mathrm{CAM}_k(x)))\\Big),
                  \\quad \\omega_k \\propto e^{-\\lambda (k-1)}

        Each f_k explains the original image (``explain_on="original"``, the authors' choice) or its
        own masked input x^(k) (``explain_on="masked"``). Targets are ``labels`` or, if None, model
        1's prediction. ``lam``/``combine`` override the configuration (no retraining needed).

        Returns ``(B, H, W)`` in [0, 1], and with ``return_stages`` also the K thresholded maps.
        """
        lam = self.config.lam if lam is None else lam
        combine = self.config.combine if combine is None else combine
        targets = labels if labels is not None else self.predict_targets(images)
        if self.config.explain_on == "masked":
            # one batch at a time through all K iterations: the masked images of one batch only
            parts = [
                self.trace(images[s : s + batch_size], targets[s : s + batch_size], batch_size)["thresholded"]
                for s in range(0, len(images), batch_size)
            ]
            ths = [torch.cat([p[k] for p in parts]) for k in range(self.K)]
        else:  # cascade_step converts the images to float batch by batch
            ths = [
                cascade_step(m, e, images, targets, self.config, batch_size=batch_size, mask=False)[1]
                for m, e in zip(self.models, self.explainers(), strict=True)
            ]
        combined = combine_maps(ths, lam, combine)
        return (combined, ths) if return_stages else combined

    def stage_maps(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Norm(TH(CAM_k(x))) for k = 1..K, each ``(B, H, W)`` in [0, 1]."""
        _, ths = self.explain(images, labels, return_stages=True)
        return [normalize_maps(t) for t in ths]

    def truncated(self, K: int) -> Cascade:
        """The cascade of the first ``K`` models — exactly the run a configuration with this K would train,
        since iteration k depends only on iterations 1..k−1."""
        if not 1 <= K <= self.K:
            raise ValueError(f"K: must be in [1, {self.K}] for this run; got {K!r}")
        if isinstance(self.config.explainer, tuple):
            cfg = self.config.replace(K=K, explainer=self.config.explainer[:K])
        else:
            cfg = self.config.replace(K=K)
        return Cascade(cfg, self.record, self.data, self.train_index, self.valid_index, self.models[:K], self.device)

    def iteration_table(self):
        """Per-iteration stats (training time, epochs, early stopping, accuracies) as a DataFrame."""
        return self.record.iteration_table()


def _load_model(record: RunRecord, k: int, config: CascadeConfig, device: torch.device) -> CamNet:
    model = build_model(config.arch, num_classes=2, pretrained=False)
    try:
        model.load_state_dict(record.load_state(k))
    except (RuntimeError, OSError, EOFError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise ValueError(
            f"run: the checkpoint of iteration {k} in {record.iteration_dir(k)} does not load into arch="
            f"{config.arch!r} ({first}); it was written by another version of cascam — delete that run folder "
            "to retrain it"
        ) from None
    return model.to(device).eval()


def load_cascade(run_dir, *, device: str = "auto", **explanation) -> Cascade:
    """The trained models of a finished run folder, for explanation only (no data is loaded).

    ``explanation`` may set ``lam``, ``combine``, ``explain_on`` or a smaller ``K``. The returned
    cascade has ``data=None`` and empty split indices.
    """
    from .store import load_record

    record = load_record(run_dir, **explanation)
    if not record.iterations_done() or len(record.iterations_done()) < record.config.K:
        raise ValueError(f"--run: {run_dir} holds {len(record.iterations_done())} finished iteration(s), "
                         f"fewer than K={record.config.K}; rerun `cascam run` to finish it")
    dev = resolve_device(device)
    models = [_load_model(record, k, record.config, dev) for k in range(1, record.config.K + 1)]
    empty = np.array([], dtype=int)
    return Cascade(record.config, record, None, empty, empty, models, dev)


def run_cascade(
    config: CascadeConfig,
    store: RunStore | str | None = None,
    data: ImageData | None = None,
    *,
    progress: bool | None = None,
) -> Cascade:
    """Train the K classifiers of CasCAM, or load them from the run store.

    For k = 1..K: train f_k on x^(k) (early stopping on the fixed validation split), compute
    M_k = TH(CAM_k(x^(k))) for every image and x^(k+1) = MinMax(x^(k) ⊙ exp(−θ M_k)). Iterations
    already in the store are loaded, not retrained, so a run killed after iteration k resumes at
    k + 1, and a finished run only loads. Model 1 of another run that trained the same network
    (:meth:`RunStore.first_model_for`) is taken instead of training it again.

    With ``config.stream`` (the default) x^(k) for k ≥ 2 lives in the run folder as a file
    (``stream/x_KK.npy``, ``config.stream_dtype``; :mod:`cascam.streaming`), written batch by batch
    by the masking step and read batch by batch by training, so memory does not grow with the
    number of images beyond the uint8 data set itself; only the newest file is kept (all of them
    with ``keep_stream``), and the folder is deleted when the run is complete. A resumed run reads the
    newest complete x^(k) it needs from that folder; where there is none, it recomputes the masks
    from the saved models (which on CPU reproduces them exactly). With ``stream=False`` x^(k) is a
    float32 tensor in memory, as before.

    Per iteration the store records the history, timings (training, explanation, thresholding,
    masking) and the leakage diagnostic: validation accuracy of f_k on its own masked images, on
    the original images and, where the data has them, on artifact-free images.
    """
    store = store if isinstance(store, RunStore) else RunStore(store)
    progress = config.progress if progress is None else progress
    device = resolve_device(config.device)
    record = store.open(config)
    data, load_seconds = _check_data(config, data, cache_dir=store.root / "_data")
    train_index, valid_index = _fix_split(config, data, record)
    run = _Run(config, store, record, data, train_index, valid_index, device, progress, load_seconds)
    x, start = _first_input(run)
    models: list[CamNet] = []
    bar = tqdm(range(1, config.K + 1), desc="CasCAM", unit="iter", disable=not progress)
    for k in bar:
        fitted = _train_or_load(run, k, x)
        bar.set_postfix(iteration=k, state=fitted.source)
        models.append(fitted.model)
        if k < start:  # model k is loaded and x^(k+1) is not needed, or was read from the run folder
            continue
        step = _recompute_step if fitted.source == "loaded" else _step
        x_next, timings = step(run, k, fitted.model, x)
        if not record.has_iteration(k):  # trained or shared here, and saved by nobody meanwhile
            _save(record, k, fitted, timings, n_images=len(x))
            pause_after_iteration(k)
        if x_next is not None:
            _release(run, k, x)
            x = x_next
    bar.close()
    if not record.is_complete:
        record.mark_complete(keep_stream=config.keep_stream)
    return Cascade(config, record, data, train_index, valid_index, models, device)


def _first_input(run: _Run):
    """The images the loop starts from and the first iteration whose masking step must run.

    Steps are needed only to reach x^(j+1), the input of the first iteration j + 1 not in the store;
    when all K are stored, none (start = K + 1). Streamed, the newest complete x^(m), m ≤ j + 1, in
    the run folder is the starting point (start = m); else x^(1), the data set (start = 1)."""
    config, data = run.config, run.data
    done = len(run.record.iterations_done())
    first = TensorImages(data.images, num_workers=config.num_workers)
    if done >= config.K:
        return first, config.K + 1
    if not config.stream:
        return to_float_images(data.images), 1
    for m in range(min(done + 1, config.K), 1, -1):
        found = open_x(run.record.dir, m, config.stream_dtype, tuple(data.images.shape), num_workers=config.num_workers)
        if found is not None:
            return found, m
    return first, 1


def _release(run: _Run, k: int, x) -> None:
    """Streamed: delete x^(k)'s file once x^(k+1) is complete and model k saved (unless ``keep_stream``)."""
    if isinstance(x, DiskImages) and not run.config.keep_stream:
        x.close()
        remove_x(run.record.dir, k)


@dataclass
class _Run:
    """What every iteration of one :func:`run_cascade` call shares: the run, its data and its split."""

    config: CascadeConfig
    store: RunStore
    record: RunRecord
    data: ImageData
    train_index: np.ndarray
    valid_index: np.ndarray
    device: torch.device
    progress: bool
    load_seconds: float

    @cached_property
    def original_valid(self) -> torch.Tensor | TensorImages:
        """The validation images as they are, x^(1) (each model's accuracy on them is recorded);
        streamed, a view of the uint8 images read batch by batch."""
        return self._valid(self.data.images)

    @cached_property
    def clean_valid(self) -> torch.Tensor | TensorImages | None:
        """The validation images without their artifact, where the data has them."""
        clean = self.data.clean_images
        return self._valid(clean) if clean is not None else None

    def _valid(self, images: torch.Tensor) -> torch.Tensor | TensorImages:
        if self.config.stream:
            return TensorImages(images, self.valid_index, num_workers=self.config.num_workers)
        return to_float_images(images[torch.as_tensor(self.valid_index)])

    @cached_property
    def pretrained(self) -> tuple[dict, dict] | None:
        """The pre-trained body every model starts from and its stats (``pretrain``), or None."""
        if self.config.pretrain == "none":
            return None
        return pretrained_body(self.config, self.store, self.device, progress=self.progress)


@dataclass
class _Fitted:
    """Model k with its training history and stats; ``source`` says whence: trained, loaded or shared."""

    model: CamNet
    history: list[dict] | None
    stats: dict
    source: str


def _check_data(config: CascadeConfig, data: ImageData | None, cache_dir=None) -> tuple[ImageData, float]:
    """The data (loaded unless given; synthetic sets through the store's cache) and the seconds its
    loading took, once it fits the configuration: images of the configured size and at least two of
    each class."""
    t0 = time.perf_counter()
    data = data if data is not None else load_data(config, cache_dir=cache_dir)
    load_seconds = time.perf_counter() - t0
    if data.image_size != (config.image_size, config.image_size):
        raise ValueError(
            f"image_size: data has images of {data.image_size[0]}×{data.image_size[1]} px but the "
            f"configuration says {config.image_size}"
        )
    labels = data.labels
    for c in range(len(data.class_names)):
        if int((labels == c).sum()) < 2:
            raise ValueError(
                f"data: class {data.class_names[c]!r} has {int((labels == c).sum())} image(s); "
                "each class needs at least 2 (one to train, one to validate)"
            )
    return data, load_seconds


def _fix_split(config: CascadeConfig, data: ImageData, record: RunRecord) -> tuple[np.ndarray, np.ndarray]:
    """The seeded, stratified train/validation split of every iteration, written to ``split.json``."""
    train_idx, valid_idx = split_indices(data.labels, config.valid_fraction, config.seed)
    record.write_json(
        "split.json", {"train": train_idx.tolist(), "valid": valid_idx.tolist(), "data_meta": data.meta}
    )
    return train_idx, valid_idx


def _train_or_load(run: _Run, k: int, x) -> _Fitted:
    """Model k: loaded when the run folder holds it, model 1 of a run that trained the same network
    when there is one, else trained on ``x`` = x^(k)."""
    config, record = run.config, run.record
    if record.has_iteration(k):
        return _Fitted(_load_model(record, k, config, run.device), None, record.stats(k), "loaded")
    donor = run.store.first_model_for(config) if k == 1 else None
    if donor is not None:
        # Same data, seed and training settings: model 1 is the network another run trained.
        stats = {key: v for key, v in donor.stats(1).items() if key in _TRAINING_STATS}
        stats.update(iteration=1, explainer=config.explainer_for(1), shared_from=donor.dir.name)
        return _Fitted(_load_model(donor, 1, config, run.device), donor.history(1).to_dict("records"), stats, "shared")
    return _train(run, k, x)


def _train(run: _Run, k: int, x) -> _Fitted:
    """Train model k on x^(k) (a float tensor, or a streamed source read batch by batch) with early
    stopping, and measure it on the validation split."""
    config, labels, valid = run.config, run.data.labels, run.valid_index
    t_train, v_train = torch.as_tensor(run.train_index), torch.as_tensor(valid)
    pretrained = run.pretrained
    torch.manual_seed(config.seed * 1000 + k)
    model = build_model(config.arch, num_classes=2, pretrained=config.pretrained)
    if pretrained is not None:  # the pre-trained body, a fresh head
        model.features.load_state_dict(pretrained[0])
    result = train_classifier(
        model,
        take(x, t_train),
        labels[t_train],
        take(x, v_train),
        labels[v_train],
        epochs=config.epochs,
        min_epochs=config.min_epochs,
        patience=config.patience,
        batch_size=config.batch_size,
        lr=config.lr,
        weight_decay=config.weight_decay,
        seed=config.seed * 1000 + k,
        device=run.device,
        progress=run.progress,
        desc=f"model {k}/{config.K}",
        freeze_epochs=config.freeze_epochs,
        body_lr_mult=config.body_lr_mult,
        train_bn=config.train_bn,
    )
    model = result.model
    stats = {
        "iteration": k,
        "explainer": config.explainer_for(k),
        "train_seconds": result.seconds,
        "epochs_run": len(result.history),
        "best_epoch": result.best_epoch,
        "stopped_early": result.stopped_early,
        "valid_accuracy_own": accuracy(model, take(x, valid), labels[valid]),
        "valid_accuracy_original": accuracy(model, run.original_valid, labels[valid]),
        "valid_accuracy_clean": (
            accuracy(model, run.clean_valid, labels[valid]) if run.clean_valid is not None else None
        ),
        "data_load_seconds": run.load_seconds if k == 1 else 0.0,
        "device": _describe(run.device),
    }
    if pretrained is not None:
        stats.update(pretrain_key=pretrained[1]["key"], pretrain_valid_accuracy=pretrained[1]["valid_accuracy"])
    return _Fitted(model, result.history, stats, "trained")


def _step(run: _Run, k: int, model: CamNet, x) -> tuple[torch.Tensor | DiskImages | None, dict]:
    """x^(k+1) from model k's thresholded maps (None after the last iteration), with the step's timings.

    Streamed, x^(k+1) is written batch by batch to the run folder and marked complete after its last
    batch; the returned :class:`~cascam.streaming.DiskImages` reads it."""
    config, timings = run.config, {}
    explainer = get_explainer(config.explainer_for(k))
    mask = k < config.K
    out = ImageWriter(x_path(run.record.dir, k + 1), tuple(run.data.images.shape), config.stream_dtype) if (
        mask and config.stream) else None
    try:
        _, _, x_next = cascade_step(
            model, explainer, x, run.data.labels, config, mask=mask, keep_maps=False, timings=timings, out=out
        )
    except BaseException:
        if out is not None:
            out.abort()
        raise
    if out is not None:
        x_next = out.finish(iteration=k + 1, run=run.record.dir.name)
        x_next.num_workers = config.num_workers
    return x_next, timings


def _recompute_step(run: _Run, k: int, model: CamNet, x) -> tuple[torch.Tensor | DiskImages | None, dict]:
    """The step of a model loaded from the store: x^(k+1) recomputed from it (the fallback of a resumed
    run when the run folder holds no complete x^(k+1))."""
    return _step(run, k, model, x)


def _save(record: RunRecord, k: int, fitted: _Fitted, timings: dict, *, n_images: int) -> None:
    """Commit iteration k to the run folder: model, history and stats with the step's timings."""
    stats = {**fitted.stats, **timings, "n_images": n_images}
    record.save_iteration(k, fitted.model, fitted.history, stats)


#: The stats of an iteration that belong to training model k (copied when model 1 is shared).
_TRAINING_STATS = (
    "train_seconds", "epochs_run", "best_epoch", "stopped_early", "valid_accuracy_own",
    "valid_accuracy_original", "valid_accuracy_clean", "data_load_seconds", "device",
    "pretrain_key", "pretrain_valid_accuracy",
)


def _describe(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"
