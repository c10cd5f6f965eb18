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
# # Limitations (Figure 8)
#
# The paper's Figure 8 shows failures under sub-optimal parameters: a second animal that CasCAM
# misses, and maps that become too local. With exact masks we can find such failures systematically
# instead of picking them: below, the validation images on which CasCAM misses the smaller second
# animal (`multi_object` variant), and the images on which CasCAM still peaks on the label box
# under weak masking (θ = 0.1).

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
n_eval = 200
variant_n_images = 1200
grid_n_images = 800
grid_K = 5

# %%
import torch
from IPython.display import Markdown, display

from cascam import run_cascade
from cascam.bookkit import config_from_params, record_result, show_figure, store
from cascam.evaluate import detection_table
from cascam.plotting import plot_panels
from cascam.verdicts import paired_verdict

cfg = config_from_params(**{k: v for k, v in globals().items() if not k.startswith("_")}, progress=False)
synthetic = cfg.data == "synthetic"

# %%
if synthetic:
    multi = run_cascade(cfg.replace(variant="multi_object", n_images=variant_n_images), store())
    d = multi.data
    idx = torch.as_tensor(multi.valid_index[: n_eval or None])
    cas = multi.explain(d.images[idx], d.labels[idx])
    det = detection_table({"cascam": cas[:, None].squeeze(1)}, {"object2": d.parts["object2"][idx]})
    # per image: did CasCAM detect object2? (same rule, one image at a time)
    missed = [j for j in range(len(idx)) if d.parts["object2"][idx[j]].any()
              and detection_table({"cascam": cas[j : j + 1]}, {"object2": d.parts["object2"][idx[j : j + 1]]}).iloc[0, 0] == 0]
    rate = len(missed) / max(1, int(d.parts["object2"][idx].flatten(1).any(1).sum()))
    show_idx = idx[torch.as_tensor(missed[:n_show])] if missed else idx[:0]
    weak = run_cascade(cfg.replace(theta=0.1, n_images=grid_n_images, K=grid_K), store())
    dw = weak.data
    widx = torch.as_tensor(weak.valid_index[: n_eval or None])
    wmaps = weak.explain(dw.images[widx], dw.labels[widx])
    peak = wmaps.flatten(1).argmax(1)
    on_box = dw.artifact_masks[widx].flatten(1).gather(1, peak[:, None])[:, 0]
    box_idx = widx[on_box.nonzero().flatten()[:n_show]]
    rows_img, rows_map, titles = [], [], []
    if len(show_idx):
        rows_img.append(d.images[show_idx])
        rows_map.append(multi.explain(d.images[show_idx], d.labels[show_idx]))
    if len(box_idx):
        rows_img.append(dw.images[box_idx])
        rows_map.append(weak.explain(dw.images[box_idx], dw.labels[box_idx]))
    if rows_img:
        imgs = torch.cat(rows_img)
        maps = torch.cat(rows_map)
        titles = ["missed 2nd animal"] * len(show_idx) + ["θ = 0.1: on the box"] * len(box_idx)
        objm = torch.cat([d.object_masks[show_idx], dw.object_masks[box_idx]])
        artm = torch.cat([d.artifact_masks[show_idx], dw.artifact_masks[box_idx]])
        fig = plot_panels(imgs, {"CasCAM": maps}, objm, artm, titles=titles, per_row=2)
        show_figure(fig, 8, f"Failures found automatically: CasCAM misses the second animal on {100 * rate:.0f} % of the "
                    f"multi-object validation images (labelled “missed 2nd animal”), and under weak masking (θ = 0.1) still peaks on the "
                    f"label box for {100 * float(on_box.float().mean()):.0f} % of images (labelled “θ = 0.1: on the box”). Green outlines: the animals; cyan: the label box.", name="figure8")
    else:
        display(Markdown("No failures of either kind on these validation images."))
    # The claim, tested: the sub-optimal θ = 0.1 peaks on the label box more often than the page's θ on
    # the same validation images (same data, split and model 1).
    ref_theta = cfg.theta if cfg.theta != 0.1 else 0.3
    ref = run_cascade(cfg.replace(theta=ref_theta, n_images=grid_n_images, K=grid_K), store())
    ref_peak = ref.explain(dw.images[widx], dw.labels[widx]).flatten(1).argmax(1)
    ref_on_box = dw.artifact_masks[widx].flatten(1).gather(1, ref_peak[:, None])[:, 0]
    verdict = paired_verdict(on_box.float().numpy(), ref_on_box.float().numpy(), metric="box pointing",
                             compared=f"θ = 0.1 − θ = {ref_theta}")
    display(Markdown(
        f"Under θ = 0.1 CasCAM peaks on the label box for {100 * float(on_box.float().mean()):.0f} % of these "
        f"{len(widx)} images; under θ = {ref_theta} (the page's setting) for {100 * float(ref_on_box.float().mean()):.0f} %. "
        f"The claim that the weaker masking leaves the map on the shortcut more often: **{verdict.verdict}** "
        f"({verdict.text(scale=100, unit=' pp')})."))
    record_result("Figure 8", profile=profile, ours=f"2nd animal missed on {100 * rate:.0f} %; box peaks θ=0.1: "
                  f"{100 * float(on_box.float().mean()):.0f} %, θ={ref_theta}: {100 * float(ref_on_box.float().mean()):.0f} %",
                  paper="failures exist under sub-optimal parameters",
                  claim="sub-optimal parameters (θ = 0.1) leave the map on the shortcut more often", verdict=verdict,
                  page="07_limitations", anchor="figure-8")
else:
    display(Markdown("This page needs the synthetic benchmark's per-element masks."))

# %% [markdown]
# ## What this means for a reader
#
# CasCAM's maps depend on the raw CAM scale through θ (a CAM whose maxima are near 20 is blacked out
# completely at θ = 0.3, barely dimmed at θ = 0.1), on the threshold, and on whether later models
# still learn the object rather than the holes left by earlier masks (see the leakage diagnostic on
# the parameter-effects page). Check those before trusting a map.
