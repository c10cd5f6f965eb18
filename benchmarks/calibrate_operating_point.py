"""Where plain CAM (model 1) points on the synthetic benchmark under different training regimes: the
calibration behind the default profile's schedule (page 02, "Validity and the baseline's operating point").

Only model 1 is trained (K = 1), so nothing here looks at a CasCAM result. For each regime it prints the
share of the validation images whose CAM maximum lies on the animal's silhouette, on the label box, on
neither, and model 1's accuracy on the originals and on box-free images.

Usage: python benchmarks/calibrate_operating_point.py [--seed 0] [--store /tmp/calib] [REGIME_JSON ...]
  e.g. '{"pretrain": "clean", "freeze_epochs": 1, "epochs": 6, "min_epochs": 3, "patience": 1, "body_lr_mult": 1.0}'
With no regime, the from-scratch schedule and the default profile's are measured.
"""

from __future__ import annotations

import argparse
import json
import time

from cascam import run_cascade
from cascam.config import CascadeConfig
from cascam.store import RunStore

DEFAULT_REGIMES = [
    {},  # from scratch, early-stopped (benchmark v1's schedule)
    {"pretrain": "clean", "freeze_epochs": 1, "epochs": 6, "min_epochs": 3, "patience": 1, "body_lr_mult": 1.0},
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("regimes", nargs="*", help="JSON objects of configuration changes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--store", default="/tmp/cascam-calibration")
    args = parser.parse_args()
    store = RunStore(args.store)
    base = CascadeConfig(n_images=2400, image_size=64, K=1, epochs=15, min_epochs=5, patience=3, batch_size=64,
                         device="cpu", progress=False, seed=args.seed)
    for change in [json.loads(r) for r in args.regimes] or DEFAULT_REGIMES:
        t0 = time.time()
        casc = run_cascade(base.replace(**change), store)
        idx, d = casc.valid_index, casc.data
        cam = casc.explain(d.images[idx], d.labels[idx], return_stages=True)[1][0]
        peak = cam.reshape(len(cam), -1).argmax(1)[:, None]
        animal = d.object_masks[idx].reshape(len(idx), -1).gather(1, peak)[:, 0]
        box = d.artifact_masks[idx].reshape(len(idx), -1).gather(1, peak)[:, 0]
        st = casc.record.stats(1)
        print(json.dumps({"change": change, "seed": args.seed, "on_animal": round(float(animal.float().mean()), 3),
                          "on_box": round(float(box.float().mean()), 3),
                          "neither": round(float((~animal & ~box).float().mean()), 3),
                          "acc_original": round(st["valid_accuracy_original"], 3),
                          "acc_box_free": round(st["valid_accuracy_clean"], 3), "epochs_run": st["epochs_run"],
                          "seconds": round(time.time() - t0)}), flush=True)


if __name__ == "__main__":
    main()
