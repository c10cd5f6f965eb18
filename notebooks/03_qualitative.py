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
# # Qualitative comparisons (Figures 2–5) and the detection tables (Tables 3–4, measured)
#
# The paper shows, for a few images, CasCAM beside CAM and the nine `grad-cam` baselines: with a
# label box on a cat (Figure 2, EbayesThresh) and on a dog (Figure 3, Top-k 10 %), with two artifacts
# (Figure 4) and with two animals (Figure 5). Its Tables 3 and 4 are check marks saying which
# elements each method finds. With the synthetic benchmark's masks we can *measure* those tables.
#
# Every baseline explains model 1 of the cascade (the classifier trained on the images with
# artifacts); CasCAM combines all K models. Green outlines: animals; cyan: artifacts.

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
grid_n_images = 800
grid_K = 5
variant_n_images = 1200

# %%
import torch
from IPython.display import Markdown, display

from cascam import run_cascade
from cascam.bookkit import config_from_params, record_result, show_figure, show_table, store
from cascam.evaluate import ALL_METHODS, DETECTION_RULE, METHOD_LABELS, detection_frame, method_maps
from cascam.plotting import plot_methods
from cascam.report import headline_scores
from cascam.verdicts import compare_in_frame, not_testable

params = {k: v for k, v in globals().items() if not k.startswith("_")}
cfg = config_from_params(**params, progress=False)
synthetic = cfg.data == "synthetic"


def panels(cascade, class_index=None, n=None, number=None, caption=""):
    """Figure ``number`` (and ``number``b, …): one validation image per figure (of one class if
    given), the input and the eleven methods' maps, one panel each (plotting.plot_methods)."""
    n = min(n_show, 2) if n is None else n
    d = cascade.data
    idx = cascade.valid_index
    if class_index is not None:
        idx = idx[(d.labels[idx] == class_index).numpy()]
    idx = torch.as_tensor(idx[:n])
    maps = method_maps(cascade, d.images[idx], d.labels[idx], ALL_METHODS)
    for j, i in enumerate(idx.tolist()):
        fig = plot_methods(
            d.images[i],
            {METHOD_LABELS[m]: v[j] for m, v in maps.items()},
            d.object_masks[i] if d.object_masks is not None else None,
            d.artifact_masks[i] if d.artifact_masks is not None else None,
        )
        label = number if j == 0 else f"{number}{'bcdefgh'[j - 1]}"
        show_figure(fig, label, caption + f" Validation image {i} ({j + 1} of {len(idx)}); green: the animal, cyan: the "
                    "label box.", name=f"figure{label}")


# %% [markdown]
# ## Figure 2: cats with a "Cat" label (EbayesThresh)

# %%
cfg_eb = cfg.replace(threshold="ebayes", n_images=grid_n_images or cfg.n_images, K=grid_K)
cascade_eb = run_cascade(cfg_eb, store())
panels(cascade_eb, 0, number=2, caption=f"Cat images with a white \"Cat\" box: input, CasCAM (EbayesThresh, K = "
       f"{cfg_eb.K}, θ = {cfg_eb.theta}) and the ten other methods on model 1.")

# %% [markdown]
# ## Figure 3: dogs with a "Dog" label (Top-k 10 %)

# %%
cascade = run_cascade(cfg, store())
panels(cascade, 1, number=3, caption=f"Dog images with a black \"Dog\" box: input, CasCAM (Top-k {cfg.topk:g} %, "
       f"K = {cfg.K}, θ = {cfg.theta}) and the ten other methods.")
for item, casc in (("Figure 2", cascade_eb), ("Figure 3", cascade)):
    scores = headline_scores(casc)
    h = scores.drop(columns="image").groupby("method").mean()
    if "pointing_game" in h.columns:
        ours = f"object pointing CasCAM {100 * h.loc['CasCAM', 'pointing_game']:.0f} % vs CAM {100 * h.loc['CAM', 'pointing_game']:.0f} %"
        verdict = compare_in_frame(scores, "CasCAM", "CAM", "pointing_game", label="object pointing")
    else:
        ours = f"artifact pointing CasCAM {100 * h.loc['CasCAM', 'artifact_pointing']:.0f} % vs CAM {100 * h.loc['CAM', 'artifact_pointing']:.0f} %"
        verdict = compare_in_frame(scores, "CasCAM", "CAM", "artifact_pointing", claimed="less", label="box pointing")
    record_result(item, profile=profile, ours=ours, paper="baselines on the label; CasCAM on the animal (qualitative)",
                  claim="CasCAM highlights the animal where the baselines highlight the label", verdict=verdict,
                  page="03_qualitative", anchor=item.lower().replace(" ", "-"))

# %% [markdown]
# ## Figures 4 and 5, Tables 3 and 4: several artifacts, several animals

# %%
display(Markdown(f"**Detection rule.** {DETECTION_RULE}."))
if synthetic:
    for number, table_number, var, elements in (
        (4, 3, "multi_artifact", ["artifact1", "artifact2", "object1"]),
        (5, 4, "multi_object", ["artifact1", "object1", "object2"]),
    ):
        cfg_v = cfg.replace(variant=var, n_images=variant_n_images)
        casc = run_cascade(cfg_v, store())
        panels(casc, None, number=number,
               caption=f"The `{var}` variant: " + ("a label box and a class-coloured corner stamp" if var == "multi_artifact"
                                                   else "one label box and two animals of the class, one smaller")
               + f"; CasCAM (K = {cfg_v.K}) and the ten other methods.")
        d = casc.data
        idx = torch.as_tensor(casc.valid_index[:n_eval or None])
        maps = method_maps(casc, d.images[idx], d.labels[idx], ALL_METHODS)
        # Elements are disjoint here: on benchmark v2 the animal's pixels under the box belong to the box.
        parts = {e: d.parts.get(f"{e}_visible", d.parts[e])[idx] for e in elements}
        detected = detection_frame(maps, parts)
        det = detected.drop(columns="image").groupby("method", sort=False).mean()
        names = {"artifact1": "label box", "artifact2": "stamp", "object1": "animal", "object2": "second animal"}
        det.columns = [names[c] for c in det.columns]
        show_table(det, table_number, f"Detection rate of each element on {len(idx)} validation images of the `{var}` "
                   f"variant (the paper's check marks, measured); one seed (seed {cfg_v.seed}), {cfg_v.n_images} images.", name=f"table{table_number}", floatfmt="{:.2f}")
        key = "animal" if var == "multi_artifact" else "second animal"
        part = {v: k for k, v in names.items()}[key]
        cas, best_name = det.loc["CasCAM", key], det.drop(index="CasCAM")[key].idxmax()
        best_base = det.loc[best_name, key]
        record_result(f"Figure {number}", profile=profile, ours=f"see Table {table_number}", paper="qualitative panels",
                      claim="CasCAM shows all elements", verdict=not_testable(f"qualitative panels; measured in Table {table_number}"),
                      page="03_qualitative", anchor=f"figure-{number}")
        record_result(f"Table {table_number}", profile=profile,
                      ours=f"{key} detected: CasCAM {cas:.2f} vs best baseline ({best_name}) {best_base:.2f}",
                      paper="CasCAM ✓ on every element; baselines miss the " + ("animal" if var == "multi_artifact" else "second animal"),
                      claim=f"CasCAM detects the {key} more often than any baseline",
                      verdict=compare_in_frame(detected, "CasCAM", best_name, part, label=f"{key} detected"),
                      page="03_qualitative", anchor=f"table-{table_number}")
else:
    display(Markdown("Figures 4–5 and Tables 3–4 need the synthetic benchmark's multi-artifact and multi-object "
                     "variants (per-element masks); they are skipped for this data source."))

# %% [markdown]
# ## Agreement and differences
#
# The paper's figures are hand-picked photos; these panels are the first validation images of the
# run, unpicked. The measured tables replace the check marks with rates, under a rule stated once.
