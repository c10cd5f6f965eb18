"""What storing x^(k) as float16 (or uint8) costs against the float32 in-memory path, on one small run.

Trains the same configuration four times on CPU (``stream=False``; streamed float32, float16, uint8)
and reports, for each streamed dtype against the in-memory run:

- the masks: with the in-memory run's models, x^(2) rounded to the dtype and M_2 = TH(CAM_2(x^(2)))
  recomputed from it: the largest change of x^(2) and the share of pixels whose Top-k membership
  in M_2 changes (the rounding alone, same model);
- the models: the largest absolute difference of any parameter of model k (model 1 is trained on
  the uint8 data in every path, so it is equal);
- CasCAM's maps on the validation images (max and mean absolute difference) and the means of its
  metrics (:func:`cascam.evaluate.evaluate`).

Usage: python benchmarks/bench_stream_rounding.py [--n 480] [--size 64] [--K 3] [--epochs 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile

import torch

from cascam import CascadeConfig, run_cascade
from cascam.cascade import cascade_step
from cascam.data import load_data
from cascam.evaluate import evaluate
from cascam.explainers import get_explainer


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=480)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--K", type=int, default=3)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--json")
    args = p.parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    base = CascadeConfig(n_images=args.n, image_size=args.size, K=args.K, epochs=args.epochs, min_epochs=1,
                         device="cpu", progress=False)
    data = load_data(base)
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        runs["memory"] = run_cascade(base.replace(stream=False), f"{tmp}/memory", data=data)
        for dt in ("float32", "float16", "uint8"):
            runs[dt] = run_cascade(base.replace(stream_dtype=dt), f"{tmp}/{dt}", data=data)
    ref = runs["memory"]
    idx = torch.as_tensor(ref.valid_index)
    images, labels = data.images[idx], data.labels[idx]
    # x^(2) and model 2's Top-k map as the in-memory run computes them, and with x^(2) rounded
    x1 = images.float() / 255
    _, _, x2 = cascade_step(ref.models[0], get_explainer("cam"), x1, labels, base, mask=True, keep_maps=False)
    _, th_ref, _ = cascade_step(ref.models[1], get_explainer("cam"), x2, labels, base, mask=False)
    rounded = {"float32": x2, "float16": x2.half().float(), "uint8": (x2 * 255).round() / 255}
    maps_ref = ref.explain(images, labels)
    metrics_ref = evaluate(ref, ["cascam"]).select_dtypes("number").mean()
    report: dict = {"config": base.to_dict(), "n_valid": len(idx), "paths": {}}
    print(f"n={args.n}, {args.size} px, K={args.K}, epochs={args.epochs}, {len(idx)} validation images; "
          "against the float32 in-memory run:")
    for dt in ("float32", "float16", "uint8"):
        run = runs[dt]
        xr = rounded[dt]
        _, th, _ = cascade_step(ref.models[1], get_explainer("cam"), xr, labels, base, mask=False)
        topk_changed = float(((th > 0) != (th_ref > 0)).float().mean())
        params = [max(float((a - b).abs().max()) for a, b in zip(m.state_dict().values(), r.state_dict().values())
                      if a.is_floating_point()) for m, r in zip(run.models, ref.models)]
        maps = run.explain(images, labels)
        metrics = evaluate(run, ["cascam"]).select_dtypes("number").mean()
        diff = (metrics - metrics_ref).abs().drop(labels=["image", "label", "seconds_per_image"], errors="ignore")
        row = {
            "x2_max_abs": float((xr - x2).abs().max()),
            "topk_pixels_changed_same_model": topk_changed,
            "model_param_max_abs": params,
            "cascam_map_max_abs": float((maps - maps_ref).abs().max()),
            "cascam_map_mean_abs": float((maps - maps_ref).abs().mean()),
            "metric_mean_max_abs": float(diff.max()),
            "metric_mean_worst": diff.idxmax(),
            "metric_means": {k: (float(metrics_ref[k]), float(metrics[k])) for k in diff.index},
        }
        report["paths"][dt] = row
        print(f"  {dt:>8}: |Δx^(2)| ≤ {row['x2_max_abs']:.2e}; Top-k pixels of M_2 changed (same model) "
              f"{100 * topk_changed:.3f} %; max |Δparam| per model {', '.join(f'{v:.2e}' for v in params)}; "
              f"CasCAM map |Δ| max {row['cascam_map_max_abs']:.3f} mean {row['cascam_map_mean_abs']:.4f}; "
              f"metric means |Δ| ≤ {row['metric_mean_max_abs']:.4f} ({row['metric_mean_worst']})")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=2, default=str)
    return report


if __name__ == "__main__":
    main()
