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
# # CasCAM, reproduced
#
# This book rebuilds the figures 1–8 and tables 5–13 of *Cascading Class Activation Mapping: A
# Counterfactual Reasoning-Based Explainable Method for Comprehensive Feature Discovery* (Choi, Kim &
# Choi, CMES 146(2), 2026) with the `cascam` package, and shows our numbers beside the published ones.
#
# CasCAM explains an image classifier by counterfactual masking: train a model, take its class
# activation map (CAM), suppress the most salient region of every image, train again on the masked
# images, repeat K times, and combine the K maps with weights that decay with λ. When the classifier
# learned a shortcut — here an inserted "Cat"/"Dog" label box — the first CAM sits on the shortcut
# and the later ones find the evidence behind it (the animal).
#
# Every number on these pages comes from a run made when the page was built; the paper's values
# are labelled as the paper's. The profile says which data and model the pages were run with: the
# default profile uses a built-in synthetic benchmark of "shortcut pets" on a CPU, so the numbers
# are *analogues* of the paper's (same protocol, different data and network), not the same numbers.

# %% tags=["parameters"]
profile = "default"

# %% tags=["remove-input"]
from IPython.display import HTML, Markdown, display

from cascam.bookkit import evidence_brief, load_results, verdict_summary

results = load_results()

# %% [markdown]
# ## Reproduction status
#
# One line per figure and table: the headline number(s) of this build against the paper's, and the
# verdict on the paper's claim. A verdict comes from one rule: the 95 %
# interval of the paired difference (the same images measured both ways; across seeds where a page
# runs several) lies on the claimed side of zero (**held**), on the other side (**contradicted**), or
# contains zero (**inconclusive**); a claim the data cannot measure is **not testable**. The evidence
# column gives the difference, its interval and the number of images and seeds.

# %% tags=["remove-input"]
if len(results):
    profiles = ", ".join(sorted(set(results["profile"])))
    display(Markdown(f"**Summary of this build** (profile {profiles}): {verdict_summary(results)}."))
    links = [f'<a href="{p}.html' + (f'#{a}' if isinstance(a, str) and a else "") + f'">{i}</a>'
             for i, p, a in zip(results["item"], results["page"], results["anchor"])]
    evidence = [evidence_brief(ev, e, r) for ev, e, r in zip(results["evidence"], results["evidence_text"], results["reason"])]
    shown = results.assign(item=links, evidence=evidence, verdict=[f"<strong>{v}</strong>" for v in results["verdict"]])
    shown = shown[["item", "ours", "paper", "claim", "verdict", "evidence"]]
    shown.columns = ["figure / table", "this build", "paper", "paper's claim", "verdict", "evidence (difference [95 % interval]; sample)"]
    display(Markdown("**Table 0.** Reproduction status of this build."))
    display(HTML(shown.to_html(index=False, escape=False, border=0, classes="cascam-table cascam-status")))
else:
    display(Markdown("No results recorded yet: run `cascam book` to execute the pages."))

# %% [markdown]
# ## Reading guide
#
# - **The method** — the algorithm step by step on one image (Figure 1), the thresholding schemes
#   including a faithful port of EbayesThresh, and the synthetic benchmark with its validity checks.
# - **Results** — qualitative comparisons with the ten baselines (Figures 2–5, Tables 3–4 measured),
#   the localisation table (Table 5) with intervals and effect sizes, parameter effects (Tables 6–8,
#   Figures 6–7) with a diagnostic of whether masking creates new shortcuts, computational cost
#   (Tables 9–13) from recorded timings, and limitations (Figure 8).
# - **Using cascam** — rerunning pages with new parameters, plugging in your own model and data.
