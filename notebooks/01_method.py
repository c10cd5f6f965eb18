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
# # The method, step by step (Figure 1) and the thresholding schemes (Table 2)
#
# For k = 1..K, CasCAM trains a classifier f_k on the images x^(k) (x^(1) = the data), takes its
# class activation map of the true class,
#
# $$\mathrm{CAM}_k(x)[i,j] = \sum_c W^{(k)}_{y,c} A^{(k)}_c(x)[i,j],$$
#
# thresholds it, M_k = TH(CAM_k(x^(k))), and suppresses the salient region in every image:
#
# $$x^{(k+1)} = \mathrm{MinMax}\big(x^{(k)} \odot e^{-\theta M_k}\big).$$
#
# The explanation of an image combines the K thresholded maps with weights that decay with λ:
#
# $$\mathrm{CasCAM}(x) = \mathrm{Norm}\Big(\sum_{k=1}^K \omega_k\,\mathrm{Norm}\big(\mathrm{TH}(\mathrm{CAM}_k(x))\big)\Big),
# \qquad \omega_k = \frac{e^{-\lambda(k-1)}}{\sum_j e^{-\lambda(j-1)}}.$$
#
# The paper's Figure 1 shows the process on one image with EbayesThresh as TH; so does this page.

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
n_show = 4
grid_n_images = 800
grid_K = 5

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display

from cascam import run_cascade
from cascam.bookkit import config_from_params, record_result, show_figure, show_table, store
from cascam.cascade import to_float_images
from cascam.explainers import get_explainer
from cascam.plotting import overlay, to_numpy_image
from cascam.threshold import apply_threshold
from cascam.threshold.ebayesthresh import ebayesthresh
from cascam.verdicts import not_testable

cfg = config_from_params(**{k: v for k, v in globals().items() if not k.startswith("_")}, progress=False)
# Figure 1 uses EbayesThresh, like the paper; this is the (θ, EbayesThresh) cascade of the parameter grid.
cfg = cfg.replace(threshold="ebayes", n_images=grid_n_images or cfg.n_images, K=grid_K)
cascade = run_cascade(cfg, store())
data = cascade.data
i = int(cascade.valid_index[0])
image, label = data.images[i : i + 1], data.labels[i : i + 1]
trace = cascade.trace(image, label)
combined = cascade.explain(image, label)

# %% [markdown]
# ## Figure 1: the cascade on one image

# %%
fig, axes = plt.subplots(cascade.K, 4, figsize=(6.4, 1.6 * cascade.K), squeeze=False)
titles = ["input x^(k)", "CAM_k", "TH(CAM_k)", "CasCAM (final)"]
for k in range(cascade.K):
    x_k = trace["x"][k][0]
    axes[k, 0].imshow(to_numpy_image(x_k))
    axes[k, 1].imshow(overlay(x_k, trace["cams"][k][0].clamp_min(0)))
    axes[k, 2].imshow(overlay(x_k, trace["thresholded"][k][0]))
    if k == 0:
        axes[k, 3].imshow(overlay(data.images[i], combined[0]))
    for j in range(4):
        axes[k, j].set_xticks([])
        axes[k, j].set_yticks([])
        if k == 0:
            axes[k, j].set_title(titles[j], fontsize=8)
    axes[k, 0].set_ylabel(f"k = {k + 1}", fontsize=8)
    if k > 0:
        axes[k, 3].axis("off")
fig.tight_layout(pad=0.2)
show_figure(fig, 1, f"The cascade on one validation image ({data.class_names[int(label)]}): the masked inputs x^(k), "
            f"their CAMs, the EbayesThresh-thresholded maps that are masked out, and the final CasCAM "
            f"(K = {cfg.K}, θ = {cfg.theta}, λ = {cfg.lam}).", name="figure1")

obj = data.object_masks[i : i + 1] if data.object_masks is not None else None
art = data.artifact_masks[i : i + 1] if data.artifact_masks is not None else None
where = []
for name, m in (("CAM_1", trace["cams"][0]), ("CasCAM", combined)):
    flat = int(m[0].flatten().argmax())
    r, c = divmod(flat, m.shape[-1])
    target = "on the box" if art is not None and art[0, r, c] else ("on the animal" if obj is not None and obj[0, r, c] else "elsewhere")
    where.append(f"{name} peaks {target}")
display(Markdown("On this image: " + "; ".join(where) + "."))
record_result("Figure 1", profile=profile, ours="; ".join(where), paper="CAM_1 on the label, later maps on the animal",
              claim="the cascade moves from the shortcut to the animal",
              verdict=not_testable("one illustrative image; tested on all validation images with Figures 2–3"),
              page="01_method", anchor="figure-1")

# %% [markdown]
# ## Table 2: the thresholding schemes
#
# - **none**: the CAM itself (its negative part clipped: masking may only darken);
# - **Top-k**: keep the values at or above the one ranked k % from the top, zero the rest;
# - **EbayesThresh**: empirical Bayes thresholding (Johnstone & Silverman 2005). The flattened map,
#   divided by its maximum, is modelled as sparse means in Gaussian noise with a Laplace prior
#   mixture; the mixing weight w is estimated by marginal maximum likelihood, the noise sd by the
#   MAD, and each value is replaced by its posterior median, which is exactly zero below a
#   data-driven threshold. `cascam` ships a port of the R package checked against the R outputs.
#
# How much of each map the schemes keep, on the validation images of this run (model 1's CAMs):

# %%
val = torch.as_tensor(cascade.valid_index[:200])
cams = get_explainer("cam")(cascade.models[0], to_float_images(data.images[val]), data.labels[val])
rows = {}
for name, kw in (("none", {}), ("Top-k 10 %", {"topk": 10}), ("Top-k 20 %", {"topk": 20}), ("EbayesThresh", {})):
    scheme = {"none": "none", "EbayesThresh": "ebayes"}.get(name, "topk")
    th = apply_threshold(cams, scheme, **kw)
    kept = (th > 0).float().mean(dim=(1, 2))
    mass = th.sum(dim=(1, 2)) / cams.clamp_min(0).sum(dim=(1, 2)).clamp_min(1e-12)
    rows[name] = {"share of pixels kept": float(kept.mean()), "share of positive CAM mass kept": float(mass.mean())}
show_table(pd.DataFrame(rows).T, 2, "The thresholding schemes on model 1's CAMs of 200 validation images: mean share of "
           "pixels kept and of the CAM's positive mass kept.", name="table2", floatfmt="{:.3f}")

# %% [markdown]
# ## EbayesThresh on one CAM
#
# The estimated mixing weight w, the threshold, and the thresholded map for the image of Figure 1.

# %%
cam = get_explainer("cam")(cascade.models[0], to_float_images(image), label)[0]
x = (cam / cam.abs().max()).double().flatten().numpy()
res = ebayesthresh(x, prior="laplace", a=None, sdev=None, verbose=True)
info = pd.DataFrame(
    {"value": [res["w"], res["a"], res["sdev"], res["threshold.sdevscale"], res["threshold.origscale"],
               float((np.asarray(res["muhat"]) > 0).mean())]},
    index=["w (mixing weight)", "a (Laplace scale, estimated)", "noise sd (MAD)", "threshold (sd units)",
           "threshold (map units)", "share of pixels kept"],
)
show_table(info, "2b", "EbayesThresh estimates for the CAM of Figure 1's image (map divided by its maximum, a estimated).",
           name="ebayes_one_map")
th_map = torch.from_numpy(np.clip(np.asarray(res["muhat"]), 0, None)).view_as(cam)
fig, axes = plt.subplots(1, 3, figsize=(6, 2.2))
for ax, (t, m) in zip(axes, (("image", None), ("raw CAM", cam.clamp_min(0)), ("EbayesThresh", th_map))):
    ax.imshow(to_numpy_image(data.images[i]) if m is None else overlay(data.images[i], m))
    ax.set_title(t, fontsize=8)
    ax.axis("off")
fig.tight_layout()
show_figure(fig, "1b", "EbayesThresh on one CAM: the raw map and the posterior-median map (zero below the threshold).",
            name="ebayes_one_map")
