"""The book's figures: one panel per method on one shared colour scale, titles readable and in place."""

from __future__ import annotations

import numpy as np
import torch

from cascam.plotting import _unit, plot_methods, plot_panels, plot_stages


def _maps(names, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {n: torch.rand(8, 8, generator=g) * (i + 1) * 10 for i, n in enumerate(names)}  # different scales


def test_plot_methods_one_panel_per_method_shared_scale_and_colour_bar():
    names = ["CasCAM", "CAM", "GradCAM", "GradCAM++", "XGradCAM", "LayerCAM", "EigenCAM", "EigenGradCAM",
             "ScoreCAM", "AblationCAM", "FullGrad"]
    image = torch.randint(0, 255, (3, 48, 48), dtype=torch.uint8)
    fig = plot_methods(image, _maps(names))
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["input", *names]  # 3 × 4: input + 11 methods
    assert min(ax.title.get_fontsize() for ax in panels) >= 11
    heat = [ax.images[1] for ax in panels[1:]]  # the map drawn over each input
    assert {im.get_cmap().name for im in heat} == {"magma"}
    assert {im.get_clim() for im in heat} == {(0.0, 1.0)}
    for im in heat:  # each map min-max normalised before drawing, whatever its own scale
        arr = np.asarray(im.get_array())
        assert 0.0 <= arr.min() < 0.1 and 0.9 < arr.max() <= 1.0 and arr.shape == (48, 48)
    assert len(fig.axes) == 12 + 1  # the panels and one colour bar


def test_plot_stages_titles_do_not_overlap_the_row_above():
    image = torch.randint(0, 255, (3, 40, 40), dtype=torch.uint8)
    fig = plot_stages(image, list(_maps(["a", "b", "c"]).values()), {f"λ = {v}": m for v, m in zip((0, 0.1, 1), _maps("xyz").values())})
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    top = [ax for ax in fig.axes[:3]]
    bottom = [ax for ax in fig.axes[3:6]]
    assert [ax.get_title() for ax in bottom] == ["λ = 0", "λ = 0.1", "λ = 1"]
    for upper, lower in zip(top, bottom):
        title_box = lower.title.get_window_extent(renderer)
        assert title_box.y1 < upper.get_window_extent(renderer).y0  # the label sits below the image above


def test_unit_normalises_and_resizes():
    m = _unit(torch.tensor([[1.0, 3.0], [5.0, 9.0]]), (4, 4))
    assert m.shape == (4, 4) and m.min() == 0.0 and m.max() == 1.0
    assert not _unit(torch.full((3, 3), 2.0), (3, 3)).any()  # a constant map is all zeros


def test_plot_panels_lays_images_side_by_side_in_reading_order():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 255, (3, 3, 16, 16), dtype=torch.uint8, generator=g)
    maps = {"CasCAM": torch.rand(3, 4, 4, generator=g), "CAM": torch.rand(3, 4, 4, generator=g)}
    fig = plot_panels(images, maps, titles=["a", "b", "c"], per_row=2)
    axes = np.array(fig.axes).reshape(2, 6)  # 2 rows × (2 images × (input + 2 methods))
    assert [ax.get_ylabel() for ax in axes[:, [0, 3]].flat] == ["a", "b", "c", ""]
    assert [ax.get_title() for ax in axes[0]] == ["input", "CasCAM", "CAM"] * 2
    np.testing.assert_allclose(axes[1, 0].images[0].get_array(), images[2].permute(1, 2, 0).numpy() / 255, atol=1e-6)
    assert all(ax.get_visible() for ax in axes[1, :3]) and not any(ax.get_visible() for ax in axes[1, 3:])
    one = plot_panels(images, maps, titles=["a", "b", "c"])  # the default: one image per row
    assert np.array(one.axes).size == 9 and [ax.get_ylabel() for ax in one.axes[::3]] == ["a", "b", "c"]
