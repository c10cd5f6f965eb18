"""CasCAM with pytorch-grad-cam's calling convention, so grad-cam's tools take it unchanged.

``pytorch_grad_cam`` methods are used as ``with GradCAM(model, target_layers) as cam: maps =
cam(input_tensor=x, targets=[ClassifierOutputTarget(c), ...])`` and return ``(B, H, W)`` float32
numpy in [0, 1]. :class:`CasCAM` is built from a finished cascade instead of a model and a layer
and is called the same way, so ``show_cam_on_image``, the ROAD metrics
(``pytorch_grad_cam.metrics.road``) and code written for a grad-cam method accept its maps.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

if TYPE_CHECKING:  # cascam.cascade imports this package; the cascade is imported when needed
    from ..cascade import Cascade

__all__ = ["CasCAM"]


class CasCAM:
    """The CasCAM map of a trained cascade, called like a ``pytorch_grad_cam`` method.

    What a call does, exactly:

    1. ``input_tensor`` ``(B, 3, H, W)``: uint8 is divided by 255; float must already lie in [0, 1]
       (the cascade's models normalise inside ``forward``; an ImageNet-normalised tensor, as fed
       to grad-cam methods of torchvision models, is refused).
    2. When (H, W) differs from the cascade's ``image_size`` s, the images are resized to s × s with
       ``F.interpolate(mode="bilinear", align_corners=False, antialias=True)`` (the models were
       trained on s × s images; their CAM is defined on that grid).
    3. :meth:`cascam.cascade.Cascade.explain` with the targets' classes (``lam``/``combine`` of
       this object, or the run's): Norm(Σ_k ω_k Norm(TH(CAM_k))), each map in [0, 1].
    4. Only when step 2 resized: the maps are resized back to (H, W) with ``F.interpolate(mode=
       "bilinear", align_corners=False)`` and clamped to [0, 1] — normalise, then resize, the order
       of grad-cam's ``scale_cam_image`` — so a map's maximum can sit slightly below 1.

    At the cascade's own size the result is ``Cascade.explain(x, classes).numpy()`` exactly.

    Targets: a list of one ``ClassifierOutputTarget(c)`` (or a plain int c) per image — the class
    whose CasCAM is computed —, or None for model 1's prediction (grad-cam's default is its
    model's highest logit; here that model is f_1). Every stage explains that class, on the logit,
    which is what ``ClassifierOutputTarget`` means; other grad-cam targets (softmax, ReST, …)
    apply their own function to the output and are refused rather than silently treated as a class.

    ``model`` is f_1 (``cascade.models[0]``), the network grad-cam's metrics should perturb for the
    combined map (``ROADCombined()(x, maps, targets, cam.model)``); ``models`` holds f_1 … f_K.
    ``last_stages`` keeps the K maps Norm(TH(CAM_k)) of the last call, ``(K, B, H, W)`` numpy, at
    the size of the returned maps (resized like them).

    Args:
        cascade: a :class:`~cascam.cascade.Cascade` (``run_cascade`` / ``load_cascade``) or a
            finished run folder, loaded with :func:`~cascam.cascade.load_cascade`.
        lam, combine: override the run's combination (no retraining needed); None keeps the run's.
        batch_size: images per forward pass.
        device: for a run folder only, where its models are loaded ("auto", "cpu", "cuda", …).

    Example:
        >>> from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
        >>> with CasCAM("runs/3f2a…") as cam:
        ...     maps = cam(input_tensor=x, targets=[ClassifierOutputTarget(1)] * len(x))  # (B, H, W)
    """

    def __init__(
        self,
        cascade: Cascade | str | Path,
        *,
        lam: float | None = None,
        combine: str | None = None,
        batch_size: int = 128,
        device: str = "auto",
    ) -> None:
        from ..cascade import Cascade, load_cascade

        if isinstance(cascade, str | Path):
            cascade = load_cascade(cascade, device=device)
        elif not isinstance(cascade, Cascade):
            raise ValueError(f"cascade: expected a Cascade or a run folder; got {type(cascade).__name__}")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size: must be a positive integer; got {batch_size!r}")
        self.cascade = cascade
        self.lam = lam
        self.combine = combine
        self.batch_size = int(batch_size)
        self.last_stages: np.ndarray | None = None

    @property
    def model(self) -> torch.nn.Module:
        """f_1, the model whose prediction is the default target (grad-cam methods expose ``.model``)."""
        return self.cascade.models[0]

    @property
    def models(self) -> list[torch.nn.Module]:
        return list(self.cascade.models)

    @property
    def image_size(self) -> int:
        return int(self.cascade.config.image_size)

    def __repr__(self) -> str:
        return f"CasCAM(K={self.cascade.K}, image_size={self.image_size}, run={self.cascade.record.dir.name!r})"

    # grad-cam methods are context managers (they release their hooks on exit); CasCAM holds none.
    def __enter__(self) -> CasCAM:
        return self

    def __exit__(self, exc_type, exc_value, traceback) -> bool:
        return False

    def __call__(
        self,
        input_tensor: torch.Tensor,
        targets: list | None = None,
        aug_smooth: bool = False,
        eigen_smooth: bool = False,
    ) -> np.ndarray:
        """``(B, H, W)`` float32 numpy in [0, 1] for ``input_tensor`` ``(B, 3, H, W)``.

        ``aug_smooth`` / ``eigen_smooth`` exist for signature compatibility with grad-cam; CasCAM
        defines neither, so True raises ``ValueError``.
        """
        if aug_smooth or eigen_smooth:
            raise ValueError("aug_smooth/eigen_smooth: not defined for CasCAM; call it with both False")
        x = self._images(input_tensor)
        classes = self._classes(targets, len(x))
        h, w = x.shape[-2:]
        s = self.image_size
        resized = (h, w) != (s, s)
        if resized:
            x = F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False, antialias=True).clamp_(0, 1)
        if classes is None:
            classes = self.cascade.predict_targets(x)
        maps, stages = self.cascade.explain(
            x, classes, lam=self.lam, combine=self.combine, return_stages=True, batch_size=self.batch_size
        )
        from ..masking import normalize_maps

        stages = torch.stack([normalize_maps(t.float()) for t in stages])  # (K, B, s, s)
        if resized:
            maps = _resize(maps, (h, w))
            stages = _resize(stages.flatten(0, 1), (h, w)).view(len(stages), len(x), h, w)
        self.last_stages = stages.detach().cpu().numpy().astype(np.float32)
        return maps.detach().cpu().numpy().astype(np.float32)

    # ----------------------------------------------------------------------------------------------

    def _images(self, input_tensor) -> torch.Tensor:
        if isinstance(input_tensor, np.ndarray):
            input_tensor = torch.from_numpy(input_tensor)
        if not isinstance(input_tensor, torch.Tensor):
            raise ValueError(f"input_tensor: expected a torch tensor (B, 3, H, W); got {type(input_tensor).__name__}")
        if input_tensor.ndim != 4 or input_tensor.shape[1] != 3 or input_tensor.shape[0] == 0:
            raise ValueError(f"input_tensor: expected shape (B, 3, H, W) with B ≥ 1; got {tuple(input_tensor.shape)}")
        if input_tensor.dtype == torch.uint8:
            return input_tensor.detach().float() / 255
        if not input_tensor.is_floating_point():
            raise ValueError(f"input_tensor: expected uint8 or float images; got {input_tensor.dtype}")
        x = input_tensor.detach().float()
        lo, hi = float(x.min()), float(x.max())
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise ValueError("input_tensor: contains NaN or infinite values")
        if lo < 0 or hi > 1:
            raise ValueError(
                f"input_tensor: float images must lie in [0, 1] (the models normalise inside); got values in "
                f"[{lo:.3g}, {hi:.3g}] — pass the unnormalised image"
            )
        return x

    def _classes(self, targets, n: int) -> torch.Tensor | None:
        if targets is None:
            return None
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        if not isinstance(targets, list | tuple):
            raise ValueError(f"targets: expected a list of ClassifierOutputTarget or None; got {type(targets).__name__}")
        if len(targets) != n:
            raise ValueError(f"targets: {len(targets)} target(s) for {n} image(s); give one per image")
        n_classes = int(self.model.classifier.weight.shape[0])
        classes = []
        for t in targets:
            if type(t) is ClassifierOutputTarget:
                c = t.category
            elif isinstance(t, int | np.integer) and not isinstance(t, bool):
                c = t
            else:
                raise ValueError(
                    f"targets: CasCAM explains a class on the logit, i.e. ClassifierOutputTarget(c) or an int; "
                    f"got {type(t).__name__}"
                )
            if not isinstance(c, int | np.integer) or not 0 <= int(c) < n_classes:
                raise ValueError(f"targets: class {c!r} is not one of the model's classes 0…{n_classes - 1}")
            classes.append(int(c))
        return torch.tensor(classes, dtype=torch.long)


def _resize(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    out = F.interpolate(maps[:, None].float(), size=size, mode="bilinear", align_corners=False)[:, 0]
    return out.clamp_(0.0, 1.0)
