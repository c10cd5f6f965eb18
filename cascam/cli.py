"""The ``cascam`` command line: run a cascade, explain images, write the synthetic benchmark, build the book.

Every user error (bad parameter, missing file) prints one line and exits with status 2.
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
from dataclasses import fields
from pathlib import Path

from .config import CascadeConfig, ConfigError
from .data.synthetic import BENCHMARK_VERSIONS, DEFAULT_BENCHMARK_VERSION, SYNTHETIC_VARIANTS

__all__ = ["main"]

def _value_text(value) -> str:
    """A default as it is written in YAML or after --set: null, true, 0.002, [cam,gradcam]."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple | list):
        return "[" + ",".join(map(str, value)) + "]"
    return str(value)


def _allowed_values(name: str) -> str | None:
    """The names a choice parameter accepts, as CascadeConfig's validator lists them (None for others)."""
    try:
        CascadeConfig(**{name: "?"})
    except ConfigError as exc:
        found = re.search(r"choose one of (.+)$", str(exc))
        return found.group(1).replace(", ", "|") if found else None
    return None


def _wrap(items: list[str], indent: str = "  ", width: int = 100) -> list[str]:
    lines, line = [], ""
    for item in items:
        if line and len(indent + line + "  " + item) > width:
            lines.append(indent + line)
            line = ""
        line = f"{line}  {item}" if line else item
    return [*lines, indent + line] if line else lines


def config_help() -> str:
    """The parameters' help of ``cascam run``, generated from :class:`~cascam.config.CascadeConfig`:
    every field with its default (and the values a choice accepts, as the validator lists them),
    under the heading of the class's documentation that names it, followed by that documentation.
    Nothing is written twice, so the help cannot drift from the code."""
    doc = inspect.cleandoc(CascadeConfig.__doc__ or "").split("\n")
    sections: list[tuple[str, list[str]]] = []
    for line in doc[doc.index("") + 1 :] if "" in doc else []:
        if line and not line[0].isspace():
            sections.append((line, []))
        elif sections:
            sections[-1][1].append(line)
    defaults = CascadeConfig()
    placed: set[str] = set()
    out = ["Configuration parameters (a YAML file of name: value and/or --set name=value), the fields of",
           "cascam.config.CascadeConfig with their defaults:"]
    for heading, body in [*sections, ("Other", [])]:
        text = "\n".join(body)
        names = [f.name for f in fields(CascadeConfig)
                 if f.name not in placed and (heading == "Other" or re.search(rf"\b{f.name}\b", text))]
        if not names:
            continue
        placed.update(names)
        items = []
        for name in names:
            allowed = _allowed_values(name)
            items.append(f"{name}={_value_text(getattr(defaults, name))}" + (f" ({allowed})" if allowed else ""))
        out += ["", heading, *_wrap(items), *body]
    return "\n".join(out) + "\n"


def _config_from_args(args) -> CascadeConfig:
    from .config import load_config, parse_overrides

    return load_config(args.config, parse_overrides(args.set or []))


def _cmd_run(args) -> int:
    from .cascade import run_cascade
    from .report import benchmark_validity, format_report, headline
    from .store import RunStore, atomic_write_text

    cfg = _config_from_args(args)
    store = RunStore(args.store)
    cascade = run_cascade(cfg, store)
    table = headline(cascade)
    validity = None
    if cfg.data == "synthetic" and cfg.artifact and not args.no_validity:
        validity = benchmark_validity(cascade, store)
    text = format_report(cascade, table, validity)
    print(text)
    atomic_write_text(cascade.record.dir / "report.txt", text + "\n")
    print(f"\nresults: {cascade.record.dir.resolve()}")
    return 0


def _explain_paths(items: list[str]) -> list[Path]:
    """The image files named on the command line: files as given, folders expanded to their image files
    (sorted, not recursive; a file whose suffix Pillow does not register as an image format is skipped)."""
    from PIL import Image

    suffixes = {s.lower() for s in Image.registered_extensions()}
    paths: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in suffixes)
            if not found:
                raise ValueError(f"images: no image files in folder {p}")
            paths += found
        elif p.is_file():
            paths.append(p)
        elif p.suffix:
            raise FileNotFoundError(f"image: file not found: {p}")
        else:
            raise FileNotFoundError(f"images: no such file or folder: {p}")
    stems: dict[str, Path] = {}
    for p in paths:
        if p.stem in stems and stems[p.stem] != p:
            raise ValueError(f"images: {stems[p.stem]} and {p} would write the same <name>_cascam files; rename one")
        stems[p.stem] = p
    return list(dict.fromkeys(paths))


def _cmd_explain(args) -> int:
    import numpy as np
    import pandas as pd
    import torch
    from PIL import Image
    from pytorch_grad_cam.utils.image import show_cam_on_image
    from tqdm import tqdm

    from .cascade import load_cascade
    from .data import CLASS_NAMES
    from .data.images import read_image
    from .explainers.cascam_cam import _resize
    from .store import atomic_write_text
    from .training import predict_logits

    cascade = load_cascade(args.run)
    size = cascade.config.image_size
    paths = _explain_paths(args.images)
    # every file is decoded (at the model's size) before anything is written, so a bad one stops the run cleanly
    images = torch.from_numpy(np.stack([read_image(p, size) for p in paths])).permute(0, 3, 1, 2).contiguous()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    step = max(1, int(args.batch_size))
    with tqdm(total=len(paths), desc="cascam explain", unit="img", disable=None) as bar:
        for start in range(0, len(paths), step):
            x = images[start : start + step]
            probs = torch.softmax(predict_logits(cascade.models[0], x), dim=1)
            predicted = probs.argmax(1)
            targets = predicted if args.label is None else torch.full_like(predicted, CLASS_NAMES.index(args.label))
            maps = cascade.explain(x, targets)
            for i, path in enumerate(paths[start : start + step]):
                m = maps[i].float().cpu()
                np.save(out / f"{path.stem}_cascam.npy", m.numpy().astype(np.float32))
                photo = read_image(path)  # the original resolution, for the overlay only
                h, w = photo.shape[:2]
                big = _resize(m[None], (h, w))[0].numpy()
                overlay = show_cam_on_image(photo.astype(np.float32) / 255, big, use_rgb=True)
                Image.fromarray(overlay).save(out / f"{path.stem}_cascam.png")
                peak = int(m.argmax())
                rows.append({
                    "image": str(path),
                    "predicted": CLASS_NAMES[int(predicted[i])],
                    "probability": float(probs[i, predicted[i]]),
                    "explained": CLASS_NAMES[int(targets[i])],
                    "peak_row": peak // m.shape[1],
                    "peak_col": peak % m.shape[1],
                    "map": f"{path.stem}_cascam.npy",
                    "overlay": f"{path.stem}_cascam.png",
                })
                bar.update(1)
    atomic_write_text(out / "explain.csv", pd.DataFrame(rows).to_csv(index=False))
    print(f"explained {len(rows)} image(s): {(out / 'explain.csv').resolve()}")
    return 0


def _cmd_data_synthetic(args) -> int:
    from .data.synthetic import generate_synthetic, write_synthetic

    data = generate_synthetic(args.n, size=args.size, variant=args.variant, seed=args.seed,
                              artifact=not args.no_artifact, version=args.benchmark_version)
    out = write_synthetic(data, args.out)
    print(f"wrote {len(data)} images with masks to {Path(out).resolve()}")
    return 0


def _cmd_book(args) -> int:
    from .book import build_book

    site = build_book(profile=args.profile, overrides=args.set or [], only=args.only, build=not args.no_build,
                      solutions=not args.no_solutions)
    print(f"site: {site}")
    return 0


_SWEEP_HELP = """\
Grid file (YAML):
  name: paper-oxford               # optional; the sweep's folder <store>/_sweeps/<name> (default: file stem)
  base:                            # parameters every configuration starts from
    profile: paper                 #   optional: profiles/paper.yaml's parameters
    lam: 0.1
  grid:                            # Cartesian product, in this order
    K: [3, 5, 10]
    theta: [0.1, 0.3]
    threshold_spec: ["topk:10", "topk:20", "none", "ebayes"]   # sets threshold (and topk)
  extra:                           # explicit configurations on top of base
    - {K: 10, theta: 0.3, threshold_spec: ebayes}

K is not hashed, so K = 3, 5, 10 of one setting are one run of K = 10 (each K is done once the
run holds K iterations). Runs already complete in the store are skipped; a run is claimed with
<run>/claim.lock, so concurrent sweeps never train it twice. Named grids: smoke, paper-oxford, paper-coco.
"""


def _executor_params(items: list[str]) -> dict:
    from .config import parse_overrides

    try:
        return parse_overrides(items)
    except ConfigError as exc:
        raise ConfigError(str(exc).replace("--set", "--executor-param", 1)) from None


def _cmd_sweep(args) -> int:
    from .config import parse_overrides
    from .store import RunStore
    from .sweep import format_status, grid_status, load_grid, run_sweep

    grid = load_grid(args.grid, parse_overrides(args.set or []))
    store = RunStore(args.store)
    if args.status:
        print(format_status(grid, grid_status(grid, store, metrics=not args.no_metrics)))
        return 0
    report = run_sweep(
        grid,
        store,
        executor=args.executor,
        max_parallel=args.max_parallel,
        gpus_per_job=args.gpus_per_job,
        timeout_min=args.timeout_min,
        slurm_partition=args.slurm_partition,
        executor_params=_executor_params(args.executor_param or []),
        wait=False if args.no_wait else None,
        dry_run=args.dry_run,
    )
    for line in report["failed"]:
        print(f"failed: {line}", file=sys.stderr)
    return 1 if report["failed"] else 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cascam",
        description="CasCAM: cascading class activation mapping (Choi, Kim & Choi, CMES 2026).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser(
        "run",
        help="train (or load from the run store) a cascade and report where CAM and CasCAM point",
        description="Train the K models of a cascade, or load them when the run store already holds them; "
        "a killed run resumes at the first unfinished iteration. Prints per-iteration accuracies, pointing "
        "rates on the object and on the artifact for CAM vs CasCAM, and (synthetic data) the benchmark's validity.",
        epilog=config_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    r.add_argument("config", nargs="?", help="YAML file of parameters (optional; defaults otherwise)")
    r.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one parameter (repeatable)")
    r.add_argument("--store", default=None, help="run store folder (default: $CASCAM_STORE or ./runs)")
    r.add_argument("--no-validity", action="store_true", help="skip the synthetic benchmark's validity checks")
    r.set_defaults(func=_cmd_run)

    e = sub.add_parser(
        "explain",
        help="explain image files or folders with a finished run: maps, overlays and explain.csv",
        description="Explain images with the K models of a finished run (CasCAM, docs/method.md). Each image is "
        "read at the run's image size with the reader used in training; for each one the folder --out gets "
        "<name>_cascam.npy (the map, float32 in [0, 1], at the run's image size) and <name>_cascam.png (the map "
        "upsampled bilinearly onto the image at its own size, with pytorch-grad-cam's show_cam_on_image: jet, "
        "image weight 0.5), and explain.csv one row per image: model 1's predicted class and its softmax "
        "probability, the class explained, and the map's peak (row, col) on the map's grid.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    e.add_argument("--run", required=True, help="a run folder (runs/<hash>)")
    e.add_argument("images", nargs="+",
                   help="image files (any format Pillow reads) and/or folders (their image files, not recursive)")
    e.add_argument("--out", default="cascam-overlays", help="output folder (default: cascam-overlays)")
    e.add_argument("--label", choices=["cat", "dog"], help="explain this class (default: model 1's prediction)")
    e.add_argument("--batch-size", type=int, default=32, help="images explained at once (default 32)")
    e.set_defaults(func=_cmd_explain)

    d = sub.add_parser("data", help="data sets")
    dsub = d.add_subparsers(dest="data_command", required=True)
    s = dsub.add_parser("synthetic", help="write the synthetic benchmark as PNG images with masks")
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--n", type=int, default=64, help="number of images (default 64)")
    s.add_argument("--size", type=int, default=64, help="image side in pixels (default 64)")
    s.add_argument("--variant", default="single", choices=SYNTHETIC_VARIANTS)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--no-artifact", action="store_true", help="draw no label box (the box-free control)")
    s.add_argument("--benchmark-version", type=int, default=DEFAULT_BENCHMARK_VERSION, choices=BENCHMARK_VERSIONS,
                   help=f"drawing version (default {DEFAULT_BENCHMARK_VERSION}; 1 = heads, 2 = whole animals)")
    s.set_defaults(func=_cmd_data_synthetic)

    w = sub.add_parser(
        "sweep",
        help="train a grid of configurations here or on a SLURM cluster (submitit), sharing one run store",
        description="Expand a grid file into validated configurations and train every run the store does "
        "not hold yet: one after another in this process (local), as local subprocesses through submitit "
        "(debug), or as a SLURM job array (slurm). Rerunning reports and skips what is done, running or queued; "
        "--status prints a table of states and headline metrics.",
        epilog=_SWEEP_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    w.add_argument("grid", help="grid file (YAML), or the name of one in grids/ (smoke, paper-oxford, paper-coco)")
    w.add_argument("--executor", choices=["local", "debug", "slurm"], default="local",
                   help="local: here, one after another (default); debug: submitit local subprocesses; slurm: sbatch")
    w.add_argument("--max-parallel", type=int, default=4, help="jobs running at once (slurm array parallelism; debug waves)")
    w.add_argument("--slurm-partition", default=None, help="SLURM partition")
    w.add_argument("--gpus-per-job", type=int, default=1, help="GPUs per job (default 1)")
    w.add_argument("--timeout-min", type=int, default=720,
                   help="job time limit in minutes; a job that reaches it requeues itself and resumes (default 720)")
    w.add_argument("--executor-param", action="append", metavar="KEY=VALUE",
                   help="any submitit AutoExecutor parameter (cpus_per_task=8, mem_gb=64, slurm_account=…)")
    w.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a base parameter (data_path=…)")
    w.add_argument("--store", default=None, help="run store folder (default: $CASCAM_STORE or ./runs)")
    w.add_argument("--status", action="store_true", help="print each configuration's state and metrics; run nothing")
    w.add_argument("--no-metrics", action="store_true", help="with --status: show cached metrics only")
    w.add_argument("--no-wait", action="store_true", help="debug executor: return after submitting")
    w.add_argument("--dry-run", action="store_true", help="list what would run; run nothing")
    w.set_defaults(func=_cmd_sweep)

    b = sub.add_parser("book", help="execute the notebooks with papermill and build the Jupyter Book site")
    b.add_argument("--profile", default="default", help="profiles/<name>.yaml (smoke, default, pets-cpu, paper)")
    b.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a notebook parameter")
    b.add_argument("--only", action="append", metavar="NOTEBOOK", help="run only this notebook (repeatable)")
    b.add_argument("--no-build", action="store_true", help="execute notebooks but skip `jupyter-book build`")
    b.add_argument("--no-solutions", action="store_true",
                   help="build the course pages without their solutions (the questions to hand out)")
    b.set_defaults(func=_cmd_book)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ConfigError, ValueError, FileNotFoundError) as exc:
        print(f"cascam {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cascam: interrupted; finished iterations are saved and a rerun resumes from them", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
