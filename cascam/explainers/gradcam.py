"""The paper's nine baselines, computed by the ``grad-cam`` package (pytorch-grad-cam ≥ 1.5) behind the
:class:`~cascam.explainers.base.Explainer` protocol, so any of them can also drive the cascade.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F
import tqdm
from pytorch_grad_cam import (
    AblationCAM,
    EigenGradCAM,
    FullGrad,
    GradCAM,
    GradCAMPlusPlus,
    HiResCAM,
    LayerCAM,
    ScoreCAM,
    XGradCAM,
)
from pytorch_grad_cam import ablation_cam as _ablation_cam_module
from pytorch_grad_cam import score_cam as _score_cam_module
from pytorch_grad_cam.ablation_layer import AblationLayer
from pytorch_grad_cam.activations_and_gradients import ActivationsAndGradients
from pytorch_grad_cam.base_cam import BaseCAM
from pytorch_grad_cam.utils.find_layers import replace_layer_recursive
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

__all__ = ["GradCamExplainer", "GRAD_CAM_METHODS", "GRADIENT_FREE_METHODS"]

#: Our name → the package's class, in the order of the paper's tables.
GRAD_CAM_METHODS: dict[str, type[BaseCAM]] = {
    "gradcam": GradCAM,
    "gradcam++": GradCAMPlusPlus,
    "scorecam": ScoreCAM,
    "xgradcam": XGradCAM,
    "layercam": LayerCAM,
    "hirescam": HiResCAM,
    "fullgrad": FullGrad,
    "eigengradcam": EigenGradCAM,
    "ablationcam": AblationCAM,
}

#: Methods the package runs without a backward pass (``uses_gradients=False``); we run them under
#: ``torch.no_grad()``. Every other method needs gradients (EigenGradCAM projects gradient ×
#: activation; only the plain EigenCAM, not a baseline here, is gradient-free).
GRADIENT_FREE_METHODS: frozenset[str] = frozenset({"scorecam", "ablationcam"})

_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")


class _RawMapsMixin:
    """Keep the package's map up to its ReLU; skip its per-image min-max and cv2 resize.

    ``BaseCAM.compute_cam_per_layer`` applies ``scale_cam_image`` (min-max to [0, 1] per image, then
    resize) and ``aggregate_multi_layers`` applies it again; everything method-specific lives in
    ``get_cam_weights`` / ``get_cam_image``, which this override calls unchanged. The result stays at
    the target layer's resolution and is upsampled on the device by the adapter, as CAM is.
    """

    def compute_cam_per_layer(self, input_tensor, targets, eigen_smooth):
        acts = [a.cpu().data.numpy() for a in self.activations_and_grads.activations]
        grads = [g.cpu().data.numpy() for g in self.activations_and_grads.gradients]
        cams = []
        for i, layer in enumerate(self.target_layers):
            a = acts[i] if i < len(acts) else None
            g = grads[i] if i < len(grads) else None
            cam = self.get_cam_image(input_tensor, layer, targets, a, g, eigen_smooth)
            cams.append(np.maximum(cam, 0)[:, None])
        return cams

    def aggregate_multi_layers(self, cam_per_target_layer):
        return np.mean(np.concatenate(cam_per_target_layer, axis=1), axis=1)


class _RawFullGrad(FullGrad):
    """FullGrad without the final min-max: the sum of the package's per-channel normalised terms.

    FullGrad's own post-processing (|bias × grad| per channel, min-max, resize, sum over channels and
    layers) is part of the method's definition, so it is kept; only the last rescale is skipped.
    """

    def aggregate_multi_layers(self, cam_per_target_layer):
        return np.sum(cam_per_target_layer, axis=1)


_RAW_METHODS: dict[str, type[BaseCAM]] = {
    name: _RawFullGrad if cls is FullGrad else type(f"Raw{cls.__name__}", (_RawMapsMixin, cls), {})
    for name, cls in GRAD_CAM_METHODS.items()
}


class GradCamExplainer:
    """One of the nine ``grad-cam`` baselines as an :class:`~cascam.explainers.base.Explainer`.

    The package does the method; this adapter wires the target and the layer, and leaves the model
    as it found it. For a CamNet (GAP + bias-free linear head, A = ``model.target_layer``, target
    logit :math:`f_y`):

    - gradcam: :math:`\\mathrm{ReLU}(\\sum_c \\alpha_c A_c)`, :math:`\\alpha_c = \\frac{1}{hw}\\sum_{ij}
      \\partial f_y / \\partial A_c[i,j] = W_{y,c}/(hw)`, so GradCAM = ReLU(CAM)/(hw) exactly; HiResCAM
      (:math:`\\sum_c \\partial f_y/\\partial A_c \\odot A_c`) and XGradCAM coincide with it here, which
      is why the paper's Table 5 rows for the three are identical.
    - gradcam++, layercam (:math:`\\sum_c \\mathrm{ReLU}(\\partial f_y/\\partial A_c) \\odot A_c`),
      eigengradcam (first principal component of :math:`\\partial f_y/\\partial A \\odot A`): gradients
      of the target layer.
    - scorecam, ablationcam: gradient-free; one forward pass per channel of A (batched by
      ``batch_size``), run under ``torch.no_grad()``.
    - fullgrad: input-gradient × input plus |bias × gradient| of every Conv2d/BatchNorm2d with a
      bias; it ignores the target layer (the package's design).

    The target layer is ``model.target_layer`` (the last conv block, chosen per architecture in one
    place, :class:`~cascam.models.base.CamNet`); the target is ``targets[b]`` for image ``b``
    (``ClassifierOutputTarget``, i.e. the logit, not the softmax).

    Raw versus normalised output. The package returns maps min-max normalised per image to [0, 1]
    and resized with cv2. The cascade masks with raw maps (θ acts on the map's scale: docs/method.md,
    § The classifier and its CAM), so by default (``normalized_output=False``) this adapter returns the package's map *before* that
    scaling — the method's own formula after its ReLU — at the target layer's resolution, upsampled
    bilinearly (``align_corners=False``) on the images' device like :class:`~cascam.explainers.cam.CAM`.
    The raw scale differs by method (GradCAM's is CAM's divided by hw, e.g. /256 for a 16 × 16
    layer; FullGrad's is a sum of per-channel [0, 1] terms), so a θ tuned for CAM does not transfer.
    ``normalized_output=True`` returns the package's output unchanged: values in [0, 1], the scale
    the paper's baseline figures and metrics used. Metrics min-max normalise anyway (docs/method.md,
    § Metrics), so both give the same AP / IoU / Pointing Game up to interpolation rounding.

    Side effects, none left behind: the package puts the model in eval mode (every module's own
    flag is restored afterwards); parameters are frozen during the call and the input is made to
    require grad instead, so the gradient methods work on frozen models and never touch ``.grad``
    (existing ``.grad`` tensors are restored after the package's ``zero_grad``); hooks are released
    in ``finally`` — not through the package's context manager, whose ``__exit__`` swallows
    ``IndexError`` — and any hook or AblationCAM layer swap the package failed to undo is undone.
    A fresh package object is built per call: construction is a few hook registrations, a cache
    would keep hooks on the model between calls, and FullGrad snapshots BatchNorm biases when it
    is constructed, which would go stale as the model trains.

    Args:
        name: one of :data:`GRAD_CAM_METHODS` (case-insensitive).
        batch_size: perturbed copies per forward pass for ScoreCAM and AblationCAM (the package's
            defaults are 16 and 32); ignored by the other methods.
        normalized_output: return the package's [0, 1] per-image normalised maps instead of raw ones.
        aug_smooth: the package's test-time augmentation smoothing (flip × brightness, 6 passes).
        eigen_smooth: the package's first-principal-component smoothing of the weighted activations.
        progress: show the tqdm bar ScoreCAM and AblationCAM open per image (silenced by default).

    Example:
        >>> explain = GradCamExplainer("gradcam")
        >>> maps = explain(model, images, labels)   # (B, H, W), raw, on images.device
    """

    def __init__(
        self,
        name: str,
        *,
        batch_size: int = 32,
        normalized_output: bool = False,
        aug_smooth: bool = False,
        eigen_smooth: bool = False,
        progress: bool = False,
    ) -> None:
        key = name.lower()
        if key not in GRAD_CAM_METHODS:
            raise ValueError(
                f"name: unknown grad-cam method {name!r}; choose one of {', '.join(GRAD_CAM_METHODS)}"
            )
        if int(batch_size) < 1:
            raise ValueError(f"batch_size: must be a positive integer; got {batch_size!r}")
        self.name = key
        self.batch_size = int(batch_size)
        self.normalized_output = bool(normalized_output)
        self.aug_smooth = bool(aug_smooth)
        self.eigen_smooth = bool(eigen_smooth)
        self.progress = bool(progress)

    @property
    def uses_gradients(self) -> bool:
        """Whether the method needs a backward pass (False for ScoreCAM and AblationCAM)."""
        return self.name not in GRADIENT_FREE_METHODS

    def __repr__(self) -> str:
        return (
            f"GradCamExplainer({self.name!r}, batch_size={self.batch_size}, "
            f"normalized_output={self.normalized_output}, aug_smooth={self.aug_smooth}, "
            f"eigen_smooth={self.eigen_smooth})"
        )

    def __call__(self, model: nn.Module, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Maps ``(B, H, W)`` float32 on ``images.device`` for images ``(B, 3, H, W)`` in [0, 1]."""
        if images.ndim != 4:
            raise ValueError(f"images: expected (B, 3, H, W); got shape {tuple(images.shape)}")
        if targets.shape != images.shape[:1]:
            raise ValueError(f"targets: expected shape ({images.shape[0]},); got {tuple(targets.shape)}")
        target_layer = model.target_layer
        labels = [int(t) for t in targets.tolist()]
        # ScoreCAM materialises every image × channel masked copy at once (B·C·3·H·W floats);
        # image by image it costs one extra small forward pass and bounds memory at C·3·H·W.
        step = 1 if self.name == "scorecam" else len(labels)
        state = _ModelState(model)
        parts = []
        try:
            for p in model.parameters():
                p.requires_grad_(False)
            grad_mode = torch.enable_grad() if self.uses_gradients else torch.no_grad()
            with grad_mode, _progress_bars(self.progress):
                for start in range(0, len(labels), step):
                    x = images[start : start + step].detach()
                    if self.uses_gradients and self.name != "fullgrad":  # FullGrad makes its own leaf
                        x.requires_grad_(True)  # a detached view: `images` itself is untouched
                    chunk = [ClassifierOutputTarget(t) for t in labels[start : start + step]]
                    parts.append(self._run_package(model, target_layer, x, chunk))
        finally:
            state.restore(model)
        maps = torch.from_numpy(np.concatenate(parts).astype(np.float32, copy=False)).to(images.device)
        if maps.shape[-2:] != images.shape[-2:]:
            maps = F.interpolate(maps[:, None], size=images.shape[-2:], mode="bilinear", align_corners=False)[
                :, 0
            ]
        return maps

    def _run_package(
        self,
        model: nn.Module,
        target_layer: nn.Module,
        x: torch.Tensor,
        targets: list[ClassifierOutputTarget],
    ) -> np.ndarray:
        cls = (GRAD_CAM_METHODS if self.normalized_output else _RAW_METHODS)[self.name]
        if self.name == "fullgrad":
            cam = cls(model, [])  # an empty list avoids the package's "target_layers is ignored" print
            _dedupe_fullgrad_layers(cam)
        elif self.name == "ablationcam":
            # A fresh AblationLayer: the package's default argument is one instance shared by all.
            cam = cls(model, [target_layer], ablation_layer=AblationLayer(), batch_size=self.batch_size)
        else:
            cam = cls(model, [target_layer])
            if self.name == "scorecam":
                cam.batch_size = self.batch_size  # ScoreCAM reads it with hasattr (default 16)
        try:
            return cam(
                input_tensor=x, targets=targets, aug_smooth=self.aug_smooth, eigen_smooth=self.eigen_smooth
            )
        finally:
            cam.activations_and_grads.release()
            if self.name == "ablationcam":  # undo the layer swap if the package raised mid-way
                replace_layer_recursive(model, cam.ablation_layer, target_layer)
            cam.outputs = None  # drops the autograd graph now rather than at garbage collection


def _dedupe_fullgrad_layers(cam: FullGrad) -> None:
    """Hook each bias layer once.

    FullGrad collects layers by walking ``_modules``, so a module registered twice (CamNet keeps
    ``target_layer`` as an attribute, i.e. a second path to the last block) would be hooked twice,
    counted twice in the sum and misalign the bias/gradient lists.
    """
    keep, seen = [], set()
    for layer, bias in zip(cam.target_layers, cam.bias_data):
        if id(layer) not in seen:
            seen.add(id(layer))
            keep.append((layer, bias))
    if len(keep) == len(cam.target_layers):
        return
    cam.activations_and_grads.release()
    cam.target_layers = [m for m, _ in keep]
    cam.bias_data = [b for _, b in keep]
    cam.activations_and_grads = ActivationsAndGradients(
        cam.model, cam.target_layers, cam.reshape_transform, cam.detach
    )


class _ModelState:
    """What the package may change on a model, captured before a call and put back after it."""

    def __init__(self, model: nn.Module) -> None:
        self.training = [(m, m.training) for m in model.modules()]
        self.params = [(p, p.requires_grad, p.grad) for p in model.parameters()]
        self.hooks = [(m, {d: set(getattr(m, d)) for d in _HOOK_DICTS}) for m in model.modules()]

    def restore(self, model: nn.Module) -> None:
        for m, flag in self.training:
            m.training = flag
        for p, requires_grad, grad in self.params:
            p.requires_grad_(requires_grad)
            p.grad = grad
        for m, before in self.hooks:
            for d, keys in before.items():
                hooks = getattr(m, d)
                for key in [k for k in hooks if k not in keys]:  # left by a package call that raised
                    del hooks[key]
                    for extra in ("_forward_hooks_with_kwargs", "_forward_hooks_always_called"):
                        getattr(m, extra, {}).pop(key, None)


@contextmanager
def _progress_bars(enabled: bool) -> Iterator[None]:
    """Silence the tqdm bars ScoreCAM and AblationCAM open per image (the package has no switch).

    Swaps the module-level ``tqdm`` name the two package modules look up; not thread-safe.
    """
    if enabled:
        yield
        return
    modules = (_score_cam_module, _ablation_cam_module)
    saved = [m.tqdm for m in modules]
    quiet = SimpleNamespace(tqdm=functools.partial(tqdm.tqdm, disable=True))
    try:
        for m in modules:
            m.tqdm = quiet
        yield
    finally:
        for m, original in zip(modules, saved):
            m.tqdm = original
