"""The shortcut study on real photos (page 09): model 1 under every regime of cascam.shortcut_study, then
the pets-cpu cascade of the regime whose CAM peaks on the box most often; both recorded under book/records/.

Needs a photo folder in the artifacts.csv format with box-free originals (has_original). One CPU thread:
about 45 minutes for the study with the 773 photos that have an original, plus the cascade. ``--add NAME@SIZE``
trains one regime (e.g. ResNet-18 at 128 px, 5.4 min) and merges its row into the recorded table.

Usage: OMP_NUM_THREADS=1 python benchmarks/shortcut_study.py --data /path/to/oxford-pets-artifact
           [--store runs] [--records book/records] [--no-cascade] [--baselines gradcam,hirescam,...]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import subprocess
import sys
from pathlib import Path

import pandas as pd
import torch
from PIL import Image

from cascam import run_cascade
from cascam.book import load_profile
from cascam.bookkit import config_from_params
from cascam.evaluate import METHOD_LABELS, evaluate
from cascam.shortcut_study import (
    RESNET18_SCRATCH,
    STUDY_REGIMES,
    STUDY_SIZES,
    choose_shortcut_regime,
    run_study,
    summarize_box,
    write_recorded,
)
from cascam.stats import wilson_interval
from cascam.store import RunStore


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


#: Regimes that ``--add`` can run alone, at any size, by short name.
EXTRA_REGIMES = {"resnet18": RESNET18_SCRATCH}


def add_regimes(spec: str, base, store, path: Path, provenance: dict) -> None:
    """Train and measure each ``NAME@SIZE`` of ``spec`` and merge its row into the recorded table at ``path``."""
    from cascam.shortcut_study import read_recorded

    table, recorded = read_recorded(path) if path.exists() else (pd.DataFrame(), dict(provenance))
    for item in spec.split(","):
        name, _, size = item.strip().partition("@")
        if name not in EXTRA_REGIMES or not size.isdigit():
            raise SystemExit(f"--add: expected NAME@SIZE with NAME one of {', '.join(EXTRA_REGIMES)}; got {item!r}")
        regime = dataclasses.replace(EXTRA_REGIMES[name], sizes=None)  # at any size asked for
        row = run_study(base, store, [regime], [int(size)]).iloc[0]
        print(f"{regime.name} @ {size}: pointing {row['box_pointing']:.3f} energy {row['box_energy']:.3f} "
              f"acc box {row['accuracy_box']:.3f} acc orig {row['accuracy_original']:.3f} "
              f"({row['train_seconds']:.0f} s)", flush=True)
        if len(table):
            table = table[~((table["regime"] == regime.name) & (table["image_size"] == int(size)))]
        table = pd.concat([table, row.to_frame().T], ignore_index=True)
        recorded[f"added {name}@{size}"] = (
            f"{regime.name} at {size} px on {provenance['date']}, commit {provenance['commit']}, {provenance['machine']}, "
            f"python benchmarks/shortcut_study.py --data <oxford-pets-artifact> --add {item.strip()}")
        write_recorded(path, table, recorded)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the photo folder (artifacts.csv, with_artifact/, original/)")
    parser.add_argument("--store", default="runs")
    parser.add_argument("--records", default="book/records")
    parser.add_argument("--no-cascade", action="store_true", help="only the study, not the pets-cpu cascade")
    parser.add_argument("--baselines", default="gradcam,hirescam,gradcam++,xgradcam,layercam,eigengradcam,fullgrad",
                        help="baselines measured on the cascade's model 1 (comma-separated; '' for none)")
    parser.add_argument("--regime", default=None,
                        help="run the cascade of this regime instead of the chosen one: 'NAME@SIZE'")
    parser.add_argument("--examples", default=None,
                        help="methods for the paper's example photos (Figures 2-3 layout), comma-separated, "
                             "or 'all'; saved under <records>/figures/")
    parser.add_argument("--add", default=None,
                        help="run only these regimes outside the default grid, 'NAME@SIZE' comma-separated "
                             f"(NAME one of {', '.join(EXTRA_REGIMES)}), and merge their rows into the recorded "
                             "study table (rows of the same regime and size are replaced)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    store, records = RunStore(args.store), Path(args.records)
    records.mkdir(parents=True, exist_ok=True)
    profile = load_profile("pets-cpu")["parameters"]
    base = config_from_params(**{**profile, "data_path": args.data, "n_images": 0, "only_with_original": True,
                                 "device": "cpu", "progress": False})
    provenance = {
        "what": "shortcut study (page 09): model 1 per regime x image size, plain CAM on the validation photos",
        "command": "OMP_NUM_THREADS=1 python benchmarks/shortcut_study.py "
                   + " ".join("<oxford-pets-artifact>" if a == args.data else a for a in sys.argv[1:]),
        "commit": _commit(),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "photos": "the photos of artifacts.csv with has_original = 1 (box-free original kept); split 5/6 train, "
                  "1/6 validation, seed 0",
        "machine": f"CPU, {torch.get_num_threads()} thread",
    }
    rows: list[dict] = []

    def save(row: dict) -> None:
        rows.append(row)
        print(f"{row['regime']} @ {row['image_size']}: pointing {row['box_pointing']:.3f} "
              f"energy {row['box_energy']:.3f} acc box {row['accuracy_box']:.3f} "
              f"acc orig {row['accuracy_original']:.3f} ({row['train_seconds']:.0f} s)", flush=True)
        write_recorded(records / "shortcut_study.csv", pd.DataFrame(rows), provenance)

    if args.add:
        add_regimes(args.add, base, store, records / "shortcut_study.csv", provenance)
        return
    table = run_study(base, store, STUDY_REGIMES, STUDY_SIZES, on_row=save)
    if args.no_cascade:
        return
    chosen = choose_shortcut_regime(table)
    if args.regime:
        name, _, size = args.regime.rpartition("@")
        chosen = table[(table["regime"] == name) & (table["image_size"] == int(size))].iloc[0]
    if chosen is None:
        print("no regime's CAM peaks on the box more often than chance; the pets-cpu profile is kept", flush=True)
        return
    regime = next(r for r in STUDY_REGIMES if r.name == chosen["regime"])
    cfg = regime.config(base, int(chosen["image_size"])).replace(K=int(profile["K"]))
    print(f"pets-cpu: {regime.name} at {cfg.image_size} px, K={cfg.K}; run {cfg.key()}", flush=True)
    cascade = run_cascade(cfg, store)
    it = cascade.iteration_table()
    n_valid = len(cascade.valid_index)
    acc_rows = []
    for _, r in it.iterrows():
        row = {"model": int(r["iteration"]), "n_valid": n_valid}
        for key in ("valid_accuracy_own", "valid_accuracy_original", "valid_accuracy_clean"):
            lo, hi = wilson_interval(int(round(r[key] * n_valid)), n_valid)
            row.update({key: r[key], key + "_low": lo, key + "_high": hi})
        acc_rows.append(row)
    cascade_prov = {**provenance, "what": f"pets-cpu cascade ({regime.name}, {cfg.image_size} px, K={cfg.K}, "
                    f"theta={cfg.theta}, top-k {cfg.topk:g} %, lambda={cfg.lam}); run {cfg.key()}"}
    write_recorded(records / "pets_cpu_models.csv", pd.DataFrame(acc_rows), cascade_prov)
    methods = ["cascam", "cam"] + [m for m in args.baselines.split(",") if m]
    method_rows = []
    for m in methods:
        frame = evaluate(cascade, methods=[m], split="valid")
        s = summarize_box(frame["artifact_pointing"], frame["artifact_energy"])
        method_rows.append({"method": METHOD_LABELS[m], "n": s.pop("n"), **s,
                            "seconds_per_image": float(frame["seconds_per_image"].iloc[0])})
        print(f"{METHOD_LABELS[m]}: pointing {s['box_pointing']:.3f} energy {s['box_energy']:.3f}", flush=True)
        write_recorded(records / "pets_cpu_methods.csv", pd.DataFrame(method_rows), cascade_prov)
    if args.examples:
        from cascam.evaluate import ALL_METHODS
        from cascam.shortcut_study import PAPER_EXAMPLES, example_panels

        chosen_methods = list(ALL_METHODS) if args.examples == "all" else args.examples.split(",")
        panels = example_panels(cascade, args.data, PAPER_EXAMPLES, chosen_methods)
        (records / "figures").mkdir(exist_ok=True)
        for name in PAPER_EXAMPLES:
            png = records / "figures" / f"example_{Path(name).stem}.png"
            panels[name].savefig(png, dpi=72, bbox_inches="tight")
            with Image.open(png) as im:  # a 256-colour palette: a third of the bytes, for a file kept in git
                small = im.convert("RGB").quantize(256)
            small.save(png, optimize=True)
        write_recorded(records / "pets_cpu_examples.csv", panels["_peaks"], cascade_prov)


if __name__ == "__main__":
    sys.exit(main())
