# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The synthetic benchmark: shortcut pets with exact ground truth
#
# The paper's data are Oxford-IIIT Pet photos with an inserted "Cat"/"Dog" label box: a perfect
# shortcut. To run the whole book on a laptop CPU — and to measure what the paper could only show —
# the default profile uses a procedurally drawn analogue (drawing **version 2**): a whole cat or dog
# (head with ears and face, body, four legs, tail) that fills a third to two thirds of the frame like
# the pets in the photos, with random colour and pose on a varied background, plus a label box at
# the paper's proportions (86/512 of the side) reading "Cat" (white box) or "Dog" (black box),
# placed anywhere, so that it often lies over the animal. The parts tell the class to different
# degrees: the head (ears, nose, muzzle) clearly, the tail moderately, the body weakly, the legs
# barely — so a cascade has several pieces of evidence to peel one after another. Every image has
# the animal's whole silhouette (pixels under the box included, as in a trimap), a mask per part,
# and a box-free twin. Version 1 (small heads only) stays available as `benchmark_version=1`.
#
# The benchmark is *valid* when (a) the box alone predicts the class, (b) the animal alone predicts
# it (a model trained on box-free images reaches ≥ 95 % validation accuracy), and (c) with boxes,
# plain CAM takes the shortcut on part of the images. The paper's plain CAM points at the animal on
# 42.3 % of its images (Table 5), a partial shortcut; this page measures where ours points.

# %% tags=["parameters"]
profile = "default"
data = "synthetic"
data_path = None
variant = "single"
n_images = 2400
image_size = 64
K = 5
theta = 0.3
threshold = "topk"
topk = 10.0
lam = 0.1
explainer = "cam"
arch = "small_cnn"
pretrained = False
epochs = 15
min_epochs = 5
patience = 3
batch_size = 64
lr = 0.002
device = "auto"
seed = 0

# %%
import pandas as pd
from IPython.display import Markdown, display

from cascam import run_cascade
from cascam.bookkit import config_from_params, record_finding, show_figure, show_table, store
from cascam.data.synthetic import generate_synthetic, preview_grid
from cascam.report import benchmark_validity

cfg = config_from_params(**{k: v for k, v in globals().items() if not k.startswith("_")}, progress=False)

# %% [markdown]
# ## What the images look like
#
# Green outlines mark the animals (object masks), cyan the artifacts.

# %%
for number, var in (("S1", "single"), ("S2", "multi_artifact"), ("S3", "multi_object")):
    sample = generate_synthetic(16, size=max(image_size, 64), variant=var, seed=seed, version=cfg.benchmark_version)
    show_figure(preview_grid(sample, n=16, columns=8), number,
                f"The `{var}` variant of the synthetic benchmark (first 16 images, seed {seed}).",
                name=f"benchmark_{var}")

# %% [markdown]
# ## Geometry against the paper's data
#
# How much of the frame the animal fills, and how the box sits on it, in this build's images; the
# paper's photos are the target (pets fill roughly a third to two thirds of the frame; the box is
# 86/512 of the side, 2.8 % of the frame, pasted without regard to the pet).

# %%
if cfg.data == "synthetic":
    from cascam.data.synthetic import benchmark_geometry
    from cascam.plotting import plot_area_share

    n_geo = min(cfg.n_images, 1000)
    from cascam.data.cache import cached_synthetic

    geo = {f"version {v}": benchmark_geometry(cached_synthetic(store().root / "_data", n=n_geo, size=image_size,
                                                               variant=variant, seed=seed, artifact=True, version=v))
           for v in (1, 2)}
    show_figure(plot_area_share(geo), "S4", f"The animal's share of the frame in the first {n_geo} images of each "
                "drawing version; shaded: a third to two thirds, the share pets take in the paper's photos.",
                name="benchmark_area_share")
    rows = {}
    for title, g in geo.items():
        q = g["animal_share"].quantile([0.25, 0.5, 0.75])
        rows[title] = {
            "animal ÷ frame, median [IQR]": f"{q[0.5]:.2f} [{q[0.25]:.2f}, {q[0.75]:.2f}]",
            "box ÷ frame": f"{100 * g['box_share'].mean():.1f} %",
            "images where the box lies on the animal": f"{100 * (g['box_over_animal'] > 0).mean():.1f} %",
            "animal hidden by the box (mean)": f"{100 * g['animal_hidden'].mean():.1f} %",
        }
    rows["target (the paper's photos)"] = {"animal ÷ frame, median [IQR]": "between 0.33 and 0.67",
                                           "box ÷ frame": "2.8 %", "images where the box lies on the animal": "often",
                                           "animal hidden by the box (mean)": "a few %"}
    show_table(pd.DataFrame(rows).T, "S1", "Geometry of both drawing versions beside the target. Version 1's object "
               "mask excludes the box, so the box never lies on it by construction.", name="benchmark_geometry")
    mine = geo[f"version {cfg.benchmark_version}"]
    q = mine["animal_share"].quantile([0.25, 0.5, 0.75])
    inside = float(((mine["animal_share"] >= 1 / 3) & (mine["animal_share"] <= 2 / 3)).mean())
    record_finding("02_benchmark", "geometry",
                   f"**Geometry** (version {cfg.benchmark_version}, {n_geo:,} images): the animal fills a median "
                   f"{q[0.5]:.2f} of the frame (IQR {q[0.25]:.2f}–{q[0.75]:.2f}; {100 * inside:.0f} % of images between a "
                   f"third and two thirds, the paper's photos' range); the box is {100 * mine['box_share'].mean():.1f} % "
                   f"of the frame (paper: 2.8 %) and lies on the animal in {100 * (mine['box_over_animal'] > 0).mean():.1f} % "
                   "of images.")

# %% [markdown]
# ## Validity and the baseline's operating point

# %%
if cfg.data == "synthetic" and cfg.artifact:
    cascade = run_cascade(cfg, store())
    validity = benchmark_validity(cascade, store())
    n_valid = len(cascade.valid_index)
    pct = lambda v: f"{100 * v:.1f} %"  # noqa: E731
    ci = lambda key: " [{:.1f}, {:.1f}]".format(*(100 * c for c in validity[key])) if key in validity else ""  # noqa: E731
    v2 = cfg.benchmark_version >= 2
    table = pd.DataFrame(
        {
            "condition": ["(a) box alone predicts the class", "(b) animal alone: box-free validation accuracy",
                          "(c) plain CAM peaks on the animal", "(c) plain CAM peaks on the box",
                          "plain CAM peaks within 3 px of the box", "plain CAM peaks on neither",
                          "reference: a map always peaking at the box's centre, on the animal"],
            "measured": [pct(validity["box_only_accuracy"]), pct(validity["boxfree_valid_accuracy"]),
                         pct(validity.get("cam_on_animal_rate", float("nan"))) + ci("cam_on_animal_ci"),
                         pct(validity["cam_on_box_rate"]) + ci("cam_on_box_ci"),
                         pct(validity["cam_near_box_rate"]), pct(validity.get("cam_elsewhere_rate", float("nan"))),
                         pct(validity.get("box_shortcut_pointing", float("nan")))],
            "target": ["100 %", "≥ 95 %", "30–55 % (paper's CAM: 42.3 %)" if v2 else "—",
                       "most of the rest" if v2 else "most images (> 50 %)", "—", "few", "—"],
        }
    ).set_index("condition")
    show_table(table, "S2", f"Validity and plain CAM's operating point, measured on this build's {n_valid} validation "
               "images (model 1 of the main run). A peak on a box lying over the animal counts for both rows, as it "
               "would with the paper's trimaps.", name="benchmark_validity")
    on_animal = validity.get("cam_on_animal_rate", float("nan"))
    ok_ab = validity["box_only_accuracy"] == 1.0 and validity["boxfree_valid_accuracy"] >= 0.95
    if v2:
        where = ("inside the target band" if 0.30 <= on_animal <= 0.55 else
                 "below the target band" if on_animal < 0.30 else "above the target band")
        record_finding("02_benchmark", "operating_point",
                       f"**Plain CAM's operating point** (model 1, seed {cfg.seed}, {n_valid} validation images): peaks on "
                       f"the animal on {pct(on_animal)}{ci('cam_on_animal_ci')} ({where} of 30–55 % around the paper's "
                       f"42.3 %) and on the box on {pct(validity['cam_on_box_rate'])}{ci('cam_on_box_ci')}; a map that "
                       f"always peaks at the box's centre would score {pct(validity['box_shortcut_pointing'])} on the animal.")
        record_finding("02_benchmark", "validity",
                       f"**Validity:** the box alone predicts the class on {pct(validity['box_only_accuracy'])} of images "
                       f"(target 100 %); box-free validation accuracy {pct(validity['boxfree_valid_accuracy'])} (target "
                       f"≥ 95 %): conditions (a) and (b) {'hold' if ok_ab else 'do not both hold'}.")
        display(Markdown(f"Conditions (a) and (b) {'hold' if ok_ab else '**do not both hold**'}. Plain CAM points at "
                         f"the animal on **{pct(on_animal)}**{ci('cam_on_animal_ci')} of {n_valid} validation images and at the box on "
                         f"{pct(validity['cam_on_box_rate'])}: {where}."))
        display(Markdown(
            f"How to read this: the box lies on the animal in most images, so a peak on the box is often also a "
            f"peak on the animal's silhouette. A map that *always* peaks at the box's centre would point at the "
            f"animal on {pct(validity['box_shortcut_pointing'])} of these images: a complete shortcut does not score "
            "zero, and a pointing game near this reference says little about the animal. The box-excluded "
            "pointing game (Table 5) separates the two. The paper's 42.3 % for plain CAM on photos where the box "
            "was pasted anywhere may well be this reference on its own data, which it did not report."
            + (" Here the reference itself lies above the 30–55 % band, so no CAM that follows the box on most images "
               "can land inside the band on this geometry: the band was set from the paper's number before this "
               "reference was measured, and the baseline is calibrated only as far as the geometry allows (the box pointing "
               "rate above and Table 5's box-excluded pointing game are the quantities to compare)."
               if validity["box_shortcut_pointing"] > 0.55 else "")))
    else:
        ok = ok_ab and validity["cam_on_box_rate"] > 0.5
        display(Markdown(f"All three conditions {'hold' if ok else '**do not all hold**'} in this build."))
else:
    display(Markdown("The validity checks apply to the synthetic benchmark with label boxes only."))

# %% [markdown]
# ## Does each model of the cascade use the animal?
#
# The clearest test of whether model k looks at the animal is its accuracy on images without the
# box. Below, per iteration: validation accuracy on its own (masked) training distribution, on the
# original images with boxes, and on box-free images.

# %%
if cfg.data == "synthetic":
    it = cascade.iteration_table()
    cols = ["iteration", "epochs_run", "stopped_early", "valid_accuracy_own", "valid_accuracy_original",
            "valid_accuracy_clean"]
    show_table(it[[c for c in cols if c in it.columns]].set_index("iteration"), "S3",
               "Validation accuracy of each model of the cascade on its own masked images, on the originals and on "
               "box-free images.", name="benchmark_iterations", floatfmt="{:.3f}")
