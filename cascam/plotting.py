"""Figures: saliency overlays, method-comparison panels, masked-iteration grids, per-iteration maps.

Functions return matplotlib Figures (the book saves them as PNG); tensors are converted once, here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

__all__ = [
    "to_numpy_image", "overlay", "save_overlays", "plot_panels", "plot_methods", "plot_stages", "plot_grid", "outline",
    "plot_area_share", "plot_box_pointing",
]


def to_numpy_image(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """``(3, H, W)`` uint8 or float [0, 1] → float ``(H, W, 3)`` in [0, 1]."""
    t = torch.as_tensor(image).detach().cpu()
    if t.dtype == torch.uint8:
        t = t.float() / 255
    if t.ndim == 3 and t.shape[0] in (1, 3):
        t = t.permute(1, 2, 0)
    return t.float().clamp(0, 1).numpy()


def overlay(image, saliency, alpha: float = 0.5, cmap: str = "jet") -> np.ndarray:
    """Blend a saliency map (any scale, ``(h, w)``; resized to the image) over an image → ``(H, W, 3)``."""
    img = to_numpy_image(image)
    s = torch.as_tensor(saliency).detach().float().cpu()
    if s.shape != img.shape[:2]:
        s = torch.nn.functional.interpolate(s[None, None], size=img.shape[:2], mode="bilinear", align_corners=False)[0, 0]
    s = s.numpy()
    rng = s.max() - s.min()
    s = (s - s.min()) / rng if rng > 0 else np.zeros_like(s)
    heat = matplotlib.colormaps[cmap](s)[..., :3]
    return (1 - alpha) * img + alpha * heat


def outline(ax, mask, color: str = "lime", linewidth: float = 1.0) -> None:
    """Draw the outline of a boolean mask ``(H, W)`` on ``ax``."""
    m = torch.as_tensor(mask).detach().cpu().float().numpy()
    if m.any():
        ax.contour(m, levels=[0.5], colors=[color], linewidths=linewidth)


def save_overlays(images: torch.Tensor, maps: torch.Tensor, names: Sequence[str], out_dir: str | Path) -> list[Path]:
    """Write ``<name>_cascam.png`` (image | overlay side by side) for each image; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for img, m, name in zip(images, maps, names, strict=True):
        fig, axes = plt.subplots(1, 2, figsize=(6, 3))
        axes[0].imshow(to_numpy_image(img))
        axes[0].set_title("input")
        axes[1].imshow(overlay(img, m))
        axes[1].set_title("CasCAM")
        for ax in axes:
            ax.axis("off")
        fig.tight_layout()
        path = out / f"{name}_cascam.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths


def plot_panels(
    images: torch.Tensor,
    maps: Mapping[str, torch.Tensor],
    object_masks: torch.Tensor | None = None,
    artifact_masks: torch.Tensor | None = None,
    titles: Sequence[str] | None = None,
    panel_size: float = 1.6,
    per_row: int = 1,
) -> plt.Figure:
    """One group of panels per image: the input, then one overlay per method (the paper's Figures 2–5
    layout), ``per_row`` groups side by side (1: one image per row).

    ``maps`` maps a method name to ``(B, h, w)`` saliency. Object masks are outlined in green and
    artifact masks in cyan on the input panel; ``titles[i]`` labels image i's input panel. Laying
    several small images side by side keeps a figure of many images about as tall as it is wide.
    """
    n = len(images)
    per_row = max(1, min(int(per_row), n))
    group = 1 + len(maps)
    rows = -(-n // per_row)
    fig, axes = plt.subplots(rows, group * per_row, figsize=(panel_size * group * per_row, panel_size * rows),
                             squeeze=False)
    for i in range(n):
        r, c0 = divmod(i, per_row)
        c0 *= group
        ax = axes[r, c0]
        ax.imshow(to_numpy_image(images[i]))
        if object_masks is not None:
            outline(ax, object_masks[i], "lime")
        if artifact_masks is not None:
            outline(ax, artifact_masks[i], "cyan")
        if r == 0:
            ax.set_title("input", fontsize=9)
        if titles is not None:
            ax.set_ylabel(titles[i], fontsize=9)
        for j, (name, m) in enumerate(maps.items(), start=1):
            axes[r, c0 + j].imshow(overlay(images[i], m[i]))
            if r == 0:
                axes[r, c0 + j].set_title(name, fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for k in range(n, rows * per_row):  # groups past the last image stay empty
        r, c0 = divmod(k, per_row)
        for j in range(group):
            axes[r, c0 * group + j].set_visible(False)
    fig.tight_layout(pad=0.2)
    return fig


def plot_grid(
    cells: Sequence[Sequence[torch.Tensor]],
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    base_images: Sequence[Sequence[torch.Tensor]] | None = None,
    panel_size: float = 1.4,
) -> plt.Figure:
    """A grid of images (``(3, H, W)``) or saliency overlays: ``cells[r][c]``.

    When ``base_images`` is given, ``cells`` hold maps overlaid on ``base_images[r][c]``.
    """
    nr, nc = len(cells), len(cells[0])
    fig, axes = plt.subplots(nr, nc, figsize=(panel_size * nc, panel_size * nr), squeeze=False)
    for r in range(nr):
        for c in range(nc):
            ax = axes[r, c]
            if base_images is not None:
                ax.imshow(overlay(base_images[r][c], cells[r][c]))
            else:
                ax.imshow(to_numpy_image(cells[r][c]))
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(col_labels[c], fontsize=8)
            if c == 0:
                ax.set_ylabel(row_labels[r], fontsize=8)
    fig.tight_layout(pad=0.2)
    return fig


def _unit(saliency, size: tuple[int, int]) -> np.ndarray:
    """Min-max normalise a map to [0, 1] and resize it bilinearly to ``size`` (the metrics' order)."""
    s = torch.as_tensor(saliency).detach().float().cpu()
    lo, hi = s.min(), s.max()
    s = (s - lo) / (hi - lo) if hi > lo else torch.zeros_like(s)
    if tuple(s.shape) != tuple(size):
        s = torch.nn.functional.interpolate(s[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]
    return s.clamp(0, 1).numpy()


def plot_methods(
    image: torch.Tensor,
    maps: Mapping[str, torch.Tensor],
    object_mask: torch.Tensor | None = None,
    artifact_mask: torch.Tensor | None = None,
    *,
    ncols: int = 4,
    cmap: str = "magma",
    alpha: float = 0.6,
    panel_size: float = 2.3,
    suptitle: str | None = None,
) -> plt.Figure:
    """One image explained by every method, one panel per method (the paper's Figures 2–5 layout):
    the input first (object outlined in green, label box in cyan), then each method's map over the
    image, in a grid of ``ncols`` columns. Every map is min-max normalised to [0, 1] and drawn with
    the same colour map on one shared scale, shown by one colour bar.

    ``maps`` maps a method name to a ``(h, w)`` map (any scale; resized to the image).
    """
    img = to_numpy_image(image)
    size = img.shape[:2]
    n = 1 + len(maps)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel_size * ncols + 0.6, panel_size * nrows + 0.3), squeeze=False)
    ax = axes.flat[0]
    ax.imshow(img)
    if object_mask is not None:
        outline(ax, object_mask, "lime", 1.5)
    if artifact_mask is not None:
        outline(ax, artifact_mask, "cyan", 1.5)
    ax.set_title("input", fontsize=12)
    colours = matplotlib.colormaps[cmap]
    for ax, (name, m) in zip(axes.flat[1:], maps.items(), strict=False):
        ax.imshow(img)
        ax.imshow(_unit(m, size), cmap=colours, vmin=0, vmax=1, alpha=alpha)
        ax.set_title(name, fontsize=12)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes.flat[n:]:
        ax.axis("off")
    if suptitle:
        fig.suptitle(suptitle, fontsize=12)
    fig.tight_layout(pad=0.3, rect=(0, 0, 0.93, 1))
    bar = fig.add_axes((0.945, 0.15, 0.015, 0.7))
    fig.colorbar(matplotlib.cm.ScalarMappable(norm=matplotlib.colors.Normalize(0, 1), cmap=colours), cax=bar)
    bar.set_ylabel("saliency (min-max per map)", fontsize=10)
    bar.tick_params(labelsize=9)
    return fig


def plot_stages(
    image: torch.Tensor,
    stages: Sequence[torch.Tensor],
    combined: Mapping[str, torch.Tensor],
    *,
    cmap: str = "magma",
    alpha: float = 0.6,
    panel_size: float = 2.0,
) -> plt.Figure:
    """The paper's Figure 7 layout: top row, the thresholded map of each iteration k over the image;
    bottom row, CasCAM for each setting in ``combined`` (e.g. ``{"λ = 0.1": map}``). Every map is
    min-max normalised and drawn on one shared scale with one colour bar; titles sit above their own
    panel, clear of the row above."""
    img = to_numpy_image(image)
    size = img.shape[:2]
    n = max(len(stages), len(combined))
    fig, axes = plt.subplots(2, n, figsize=(panel_size * n + 0.7, 2 * panel_size + 0.9), squeeze=False)
    colours = matplotlib.colormaps[cmap]
    rows = ([(f"k = {k + 1}", m) for k, m in enumerate(stages)], list(combined.items()))
    for r, row in enumerate(rows):
        for c in range(n):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(row):
                ax.axis("off")
                continue
            name, m = row[c]
            ax.imshow(img)
            ax.imshow(_unit(m, size), cmap=colours, vmin=0, vmax=1, alpha=alpha)
            ax.set_title(name, fontsize=11, pad=4)
    axes[0, 0].set_ylabel("each iteration", fontsize=11)
    axes[1, 0].set_ylabel("CasCAM", fontsize=11)
    fig.tight_layout(pad=0.4, h_pad=1.2, rect=(0, 0, 0.93, 1))
    bar = fig.add_axes((0.945, 0.15, 0.015, 0.7))
    fig.colorbar(matplotlib.cm.ScalarMappable(norm=matplotlib.colors.Normalize(0, 1), cmap=colours), cax=bar)
    bar.tick_params(labelsize=9)
    return fig


def plot_area_share(
    geometry: Mapping[str, object] | object,
    band: tuple[float, float] = (1 / 3, 2 / 3),
    bins: int = 40,
) -> plt.Figure:
    """Histogram of the animal's share of the frame, the target band shaded.

    ``geometry`` is one :func:`~cascam.data.synthetic.benchmark_geometry` frame, or a mapping of
    titles to frames (e.g. ``{"version 1": g1, "version 2": g2}``) drawn side by side on a shared
    axis. Each panel gives the median and the 10–90 % range in its title; 10 × 4 inches, readable at
    1,400 px wide.
    """
    frames = dict(geometry) if isinstance(geometry, Mapping) else {"": geometry}
    fig, axes = plt.subplots(1, len(frames), figsize=(10, 4), sharex=True, sharey=True, squeeze=False,
                             layout="constrained")
    edges = np.linspace(0.0, 1.0, bins + 1)
    for ax, (title, frame) in zip(axes[0], frames.items(), strict=True):
        share = np.asarray(frame["animal_share"], dtype=float)
        ax.axvspan(*band, color="tab:green", alpha=0.15, label=f"target {band[0]:.2f}–{band[1]:.2f}")
        ax.hist(share, bins=edges, color="tab:blue", edgecolor="white")
        lo, med, hi = np.quantile(share, [0.1, 0.5, 0.9]) if len(share) else (np.nan,) * 3
        head = f"{title}: " if title else ""
        ax.set_title(f"{head}median {med:.2f}, 10–90 % {lo:.2f}–{hi:.2f} (n = {len(share)})", fontsize=12)
        ax.set_xlabel("animal area ÷ frame area", fontsize=12)
        ax.tick_params(labelsize=11)
        ax.legend(fontsize=10, loc="upper right")
    axes[0, 0].set_ylabel("images", fontsize=12)
    return fig


def plot_box_pointing(table, title: str = "Where model 1's CAM peaks") -> plt.Figure:
    """The shortcut study's figure: per regime and image size, the share of validation photos whose CAM
    peaks on the label box with its 95 % interval, beside the box's share of the frame (the rate of a
    map peaking at a random pixel). ``table`` has the columns of :data:`cascam.shortcut_study.STUDY_COLUMNS`."""
    rows = table.reset_index(drop=True)
    labels = [f"{r.regime}, {int(r.image_size)} px" for r in rows.itertuples()]  # one row per regime × size
    y = np.arange(len(rows))[::-1]
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(rows) + 1.4))
    rate = 100 * rows["box_pointing"].to_numpy(float)
    err = np.vstack([rate - 100 * rows["box_pointing_low"].to_numpy(float),
                     100 * rows["box_pointing_high"].to_numpy(float) - rate])
    ax.errorbar(rate, y, xerr=err, fmt="none", ecolor="0.3", capsize=3, zorder=1)
    sizes = rows["image_size"].to_numpy(int)
    for colour, size in zip(("tab:blue", "tab:orange", "tab:red", "tab:green", "tab:purple"), sorted(set(sizes))):
        at = sizes == size
        ax.scatter(rate[at], y[at], c=colour, zorder=2, label=f"{size} px")
    share = 100 * rows["box_area_share"].to_numpy(float)
    ax.scatter(share, y, marker="|", s=120, c="k", zorder=3, label="box ÷ frame (a random peak)")
    ax.set_yticks(y, labels)
    ax.set_xlabel("validation photos whose CAM peaks on the box (%), 95 % interval")
    ax.set_xlim(-2, 102)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)  # beside the axes: no point hidden
    ax.set_title(title)
    fig.tight_layout()
    return fig
