"""The cascade's arithmetic on maps: the counterfactual step x^(k+1) = MinMax(fill(x^(k), M_k)) and the
combination CasCAM = Norm(Σ ω_k S_k), with the names of the fills and combinations they accept.

All functions work on batches of tensors on the model's device; nothing is re-encoded to an image file.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "FILLS",
    "COMBINES",
    "attenuation",
    "minmax_images",
    "normalize_maps",
    "mask_images",
    "fit_masks",
    "fill_multiply",
    "fill_mean",
    "fill_blur",
    "fill_inpaint",
    "combination_weights",
    "combine_maps",
]


def minmax_images(x: torch.Tensor) -> torch.Tensor:
    """Rescale each image tensor (all channels together) to [0, 1]: (x − min) / (max − min).

    A constant image has no range; it becomes all zeros (never NaN).

    Args:
        x: ``(B, C, H, W)``.
    """
    b = x.shape[0]
    flat = x.reshape(b, -1)
    lo = flat.min(dim=1, keepdim=True).values
    hi = flat.max(dim=1, keepdim=True).values
    rng = hi - lo
    out = torch.where(rng > 0, (flat - lo) / torch.where(rng > 0, rng, torch.ones_like(rng)), torch.zeros_like(flat))
    return out.reshape(x.shape)


def normalize_maps(maps: torch.Tensor) -> torch.Tensor:
    """Norm: min-max each map ``(B, H, W)`` to [0, 1]; a constant map becomes all zeros."""
    return minmax_images(maps.unsqueeze(1)).squeeze(1)


def attenuation(masks: torch.Tensor, theta: float) -> torch.Tensor:
    """exp(−θ · M), elementwise, any shape: the share of each pixel that every fill keeps (1 = untouched)."""
    return torch.exp(-theta * masks)


def _attenuation(masks: torch.Tensor, theta: float) -> torch.Tensor:
    return attenuation(masks, theta).unsqueeze(1)  # (B, 1, H, W), broadcast over channels


def fill_multiply(x: torch.Tensor, masks: torch.Tensor, theta: float) -> torch.Tensor:
    """The paper's darkening: x · exp(−θ · M), per pixel over all channels."""
    return x * _attenuation(masks, theta)


def fill_mean(x: torch.Tensor, masks: torch.Tensor, theta: float) -> torch.Tensor:
    """Blend toward the image's mean colour: a·x + (1 − a)·x̄, a = exp(−θ·M), x̄ per image and channel."""
    a = _attenuation(masks, theta)
    return a * x + (1 - a) * x.mean(dim=(2, 3), keepdim=True)


def fill_blur(x: torch.Tensor, masks: torch.Tensor, theta: float, sigma_fraction: float = 0.1) -> torch.Tensor:
    """Blend toward a heavily blurred copy: a·x + (1 − a)·G_σ(x), σ = ``sigma_fraction`` × image side."""
    from torchvision.transforms.functional import gaussian_blur

    side = min(x.shape[-2:])
    sigma = max(1.0, sigma_fraction * side)
    ksize = min(2 * math.ceil(3 * sigma) + 1, 2 * (side // 2) - 1)
    a = _attenuation(masks, theta)
    return a * x + (1 - a) * gaussian_blur(x, [ksize, ksize], [sigma, sigma])


def fill_inpaint(x: torch.Tensor, masks: torch.Tensor, theta: float, radius: int = 3) -> torch.Tensor:
    """Blend toward OpenCV's Telea inpainting of the region M > 0: a·x + (1 − a)·inpaint(x, M > 0).

    Runs on the CPU (OpenCV), one image at a time, on an 8-bit copy of the image.
    """
    import cv2

    a = _attenuation(masks, theta)
    x_cpu = x.detach().float().clamp(0, 1).cpu()
    region = (masks > 0).cpu().numpy().astype(np.uint8)
    filled = []
    for img, reg in zip(x_cpu, region, strict=True):
        u8 = (img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        out = cv2.inpaint(np.ascontiguousarray(u8), reg, radius, cv2.INPAINT_TELEA)
        filled.append(torch.from_numpy(out).permute(2, 0, 1).float() / 255)
    fill = torch.stack(filled).to(x.device, x.dtype)
    return a * x + (1 - a) * fill


_FILLS = {"multiply": fill_multiply, "mean": fill_mean, "blur": fill_blur, "inpaint": fill_inpaint}
#: The names :func:`mask_images` takes as ``fill`` (``multiply`` is the paper's).
FILLS: tuple[str, ...] = tuple(_FILLS)
#: The names :func:`combine_maps` takes as ``variant`` (``paper`` normalises each stage, ``code`` does not).
COMBINES: tuple[str, ...] = ("paper", "code")


def fit_masks(masks: torch.Tensor, size: tuple[int, int], dilate: float = 0.0) -> torch.Tensor:
    r"""The maps M ``(B, h, w)`` as the fill applies them: bilinearly upsampled to the image ``size``
    and, when ``dilate`` > 0, grown by a grey-scale dilation (a moving maximum over a square window)
    of radius r = round(dilate × min(size)) pixels:

    .. math:: M'(i, j) = \max_{|u| \le r,\, |v| \le r} M(i + u, j + v)

    Dilation keeps every masked value and turns the region's outline (a word's letters, an
    animal's silhouette) into a blob, so the shape of the hole tells less about the class.
    """
    masks = masks.float()
    if masks.shape[-2:] != tuple(size):
        masks = F.interpolate(masks.unsqueeze(1), size=tuple(size), mode="bilinear", align_corners=False)[:, 0]
    r = round(dilate * min(size))
    if r > 0:
        masks = F.max_pool2d(masks.unsqueeze(1), kernel_size=2 * r + 1, stride=1, padding=r)[:, 0]
    return masks


def mask_images(
    x: torch.Tensor, masks: torch.Tensor, theta: float, fill: str = "multiply", dilate: float = 0.0
) -> torch.Tensor:
    """The counterfactual step x^(k+1) = MinMax(fill(x^(k), M_k)).

    .. math:: x^{(k+1)} = \\mathrm{MinMax}\\big(x^{(k)} \\odot e^{-\\theta M_k}\\big)  \\quad (\\text{fill}=\\text{multiply})

    Args:
        x: ``(B, 3, H, W)`` images in [0, 1].
        masks: ``(B, H, W)`` thresholded raw CAMs M_k ≥ 0 (not normalised: θ acts on the raw scale).
        theta: masking strength θ > 0.
        fill: ``multiply`` (paper), ``mean``, ``blur`` or ``inpaint``.
        dilate: grow the maps first (:func:`fit_masks`); 0 = the paper.
    Returns:
        ``(B, 3, H, W)`` in [0, 1].
    """
    if fill not in _FILLS:
        raise ValueError(f"fill: unknown strategy {fill!r}; choose one of {', '.join(FILLS)}")
    masks = fit_masks(masks, tuple(x.shape[-2:]), dilate)
    return minmax_images(_FILLS[fill](x, masks.to(x.dtype), theta))


def combination_weights(K: int, lam: float) -> torch.Tensor:
    """ω_k = exp(−λ(k−1)) / Σ_j exp(−λ(j−1)), k = 1..K (λ = 0 gives uniform weights)."""
    w = torch.exp(-lam * torch.arange(K, dtype=torch.float64))
    return (w / w.sum()).float()


def combine_maps(thresholded: list[torch.Tensor] | torch.Tensor, lam: float, variant: str = "paper") -> torch.Tensor:
    """CasCAM from the K thresholded maps TH(CAM_k), each ``(B, H, W)``.

    ``paper``: Norm(Σ_k ω_k Norm(TH(CAM_k))) — each stage normalised before weighting.
    ``code``: Norm(Σ_k ω_k TH(CAM_k)) — the authors' code sums raw thresholded maps.
    Returns ``(B, H, W)`` in [0, 1].
    """
    maps = torch.stack(list(thresholded)) if isinstance(thresholded, list) else thresholded  # (K, B, H, W)
    K = maps.shape[0]
    w = combination_weights(K, lam).to(maps.device, maps.dtype).view(K, 1, 1, 1)
    if variant not in COMBINES:
        raise ValueError(f"combine: unknown variant {variant!r}; choose one of {', '.join(COMBINES)}")
    if variant == "paper":
        maps = torch.stack([normalize_maps(m) for m in maps])
    return normalize_maps((w * maps).sum(dim=0))
