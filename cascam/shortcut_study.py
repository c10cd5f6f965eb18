"""When does a classifier take the label shortcut? Model 1 trained under several regimes (pretrained or
from scratch, frozen or fine-tuned, two image sizes) on photos with label boxes, and where its CAM points.

Each regime is an ordinary one-iteration run of the engine (:func:`~cascam.cascade.run_cascade` with K = 1,
cached in the run store under its configuration hash), measured by :func:`~cascam.evaluate.evaluate`
(plain CAM's box pointing and box energy per validation photo) and by the accuracies the engine records
(validation photos with their box, and their box-free originals).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import torch

from .config import CascadeConfig
from .metrics import artifact_energy, artifact_pointing
from .stats import bootstrap_mean_ci, wilson_interval

__all__ = [
    "Regime",
    "STUDY_REGIMES",
    "STUDY_SIZES",
    "RESNET18_SCRATCH",
    "STUDY_COLUMNS",
    "box_scores",
    "summarize_box",
    "study_configs",
    "measure_run",
    "run_study",
    "choose_shortcut_regime",
    "format_study_table",
    "read_recorded",
    "write_recorded",
    "regime_fields",
    "PAPER_EXAMPLES",
    "example_panels",
]


@dataclass(frozen=True)
class Regime:
    """One way of training model 1: architecture, initialisation and schedule.

    ``freeze_epochs = epochs`` with ``train_bn=False`` trains a linear head on fixed features (a linear
    probe); ``freeze_epochs = 1`` then unfrozen is fastai's ``fine_tune``; ``freeze_epochs = 0`` trains
    every layer from the first step.
    """

    name: str
    arch: str
    pretrained: bool
    epochs: int
    freeze_epochs: int = 0
    train_bn: bool = True
    lr: float = 5e-4
    min_epochs: int = 1
    patience: int = 1
    sizes: tuple[int, ...] | None = None  # None: every size of the study

    def config(self, base: CascadeConfig, image_size: int) -> CascadeConfig:
        """``base`` with this regime's training fields, ``image_size`` and K = 1 (only model 1 is needed)."""
        return base.replace(
            arch=self.arch, pretrained=self.pretrained, epochs=self.epochs, freeze_epochs=self.freeze_epochs,
            train_bn=self.train_bn, lr=self.lr, min_epochs=self.min_epochs, patience=self.patience,
            image_size=image_size, K=1,
        )


#: ResNet-18 without weights, trained from scratch (in the grid at 128 px only: 5.4 min of training on
#: one CPU thread with the 773 photos that have an original; its CAM has 4 × 4 cells there).
RESNET18_SCRATCH = Regime("from scratch: ResNet-18", "resnet18", False, epochs=5, lr=2e-3, min_epochs=3, patience=2,
                          sizes=(128,))
#: The study's grid, sized for one CPU thread shared with other work (about 45 minutes with the 773 photos
#: that have an original): every regime at 128 px, the cheaper ones at 96 px, and the linear probe at 224 px,
#: the prepared photos' own size. The fine-tuned EfficientNets, the small CNN and ResNet-18 at 224 px did not
#: fit that budget.
STUDY_REGIMES: tuple[Regime, ...] = (
    Regime("linear probe (ImageNet body frozen)", "efficientnet_lite0", True, epochs=3, freeze_epochs=3,
           train_bn=False, lr=2e-3),
    Regime("fine_tune (1 frozen + 1 unfrozen epoch)", "efficientnet_lite0", True, epochs=2, freeze_epochs=1,
           sizes=(128, 96)),
    Regime("fully fine-tuned (2 epochs)", "efficientnet_lite0", True, epochs=2, freeze_epochs=0, sizes=(128,)),
    Regime("from scratch: small CNN", "small_cnn", False, epochs=10, lr=2e-3, min_epochs=3, patience=2,
           sizes=(128, 96)),
    RESNET18_SCRATCH,
)
STUDY_SIZES: tuple[int, ...] = (128, 96, 224)

#: Columns of the study table (one row per regime × size), as :func:`run_study` returns and the book records.
STUDY_COLUMNS = (
    "regime", "arch", "pretrained", "image_size", "n_train", "n_valid", "n_original",
    "accuracy_box", "accuracy_box_low", "accuracy_box_high",
    "accuracy_original", "accuracy_original_low", "accuracy_original_high",
    "box_pointing", "box_pointing_low", "box_pointing_high",
    "box_energy", "box_energy_low", "box_energy_high",
    "box_area_share", "epochs_run", "train_seconds", "run",
)


def box_scores(maps: torch.Tensor | np.ndarray, boxes: torch.Tensor | np.ndarray) -> dict[str, np.ndarray]:
    r"""Per image, whether the map peaks on the box and the share of its mass there.

    $$ \mathrm{pointing} = \mathbb{1}[R(\arg\max S)], \qquad \mathrm{energy} = \frac{\sum S\,R}{\sum S} $$

    with S the map min-max normalised and resized (bilinear) to the box mask's size, as every metric of
    :mod:`cascam.metrics` does.

    Args:
        maps: ``(B, h, w)`` saliency maps (any scale).
        boxes: ``(B, H, W)`` bool box masks R.
    Returns:
        ``{"box_pointing": (B,) 0/1, "box_energy": (B,) in [0, 1]}``.
    """
    return {"box_pointing": artifact_pointing(maps, boxes), "box_energy": artifact_energy(maps, boxes)}


def summarize_box(
    pointing: Sequence[float] | np.ndarray,
    energy: Sequence[float] | np.ndarray,
    *,
    n_boot: int = 2000,
    seed: int = 0,
) -> dict[str, float]:
    """Box pointing rate and mean box energy over images, each with a 95 % percentile-bootstrap interval
    over images (:func:`~cascam.stats.bootstrap_mean_ci`); ``n`` = number of images."""
    p, e = np.asarray(pointing, dtype=float), np.asarray(energy, dtype=float)
    p_lo, p_hi = bootstrap_mean_ci(p, n_boot, seed)
    e_lo, e_hi = bootstrap_mean_ci(e, n_boot, seed + 1)
    return {
        "box_pointing": float(p.mean()) if p.size else math.nan, "box_pointing_low": p_lo, "box_pointing_high": p_hi,
        "box_energy": float(e.mean()) if e.size else math.nan, "box_energy_low": e_lo, "box_energy_high": e_hi,
        "n": int(p.size),
    }


def study_configs(
    base: CascadeConfig, regimes: Iterable[Regime] = STUDY_REGIMES, sizes: Sequence[int] = STUDY_SIZES
) -> list[tuple[Regime, CascadeConfig]]:
    """Every (regime, configuration) of the grid, size by size in the order given."""
    out = []
    for size in sizes:
        for regime in regimes:
            if regime.sizes is None or size in regime.sizes:
                out.append((regime, regime.config(base, size)))
    return out


def _accuracy_interval(acc: float | None, n: int) -> tuple[float, float, float]:
    if acc is None or n == 0 or (isinstance(acc, float) and math.isnan(acc)):
        return math.nan, math.nan, math.nan
    lo, hi = wilson_interval(int(round(acc * n)), n)
    return float(acc), lo, hi


def measure_run(cascade, regime: Regime | None = None, *, n_boot: int = 2000) -> dict:
    """One row of the study table for a run's model 1: plain CAM's box pointing and box energy over the
    validation photos (bootstrap intervals), accuracy with the box and on the box-free originals (Wilson
    intervals), and the box's mean share of the frame (the pointing rate of a map peaking at random)."""
    from .evaluate import evaluate

    frame = evaluate(cascade, methods=["cam"], split="valid")
    summary = summarize_box(frame["artifact_pointing"], frame["artifact_energy"], n_boot=n_boot)
    stats = cascade.record.stats(1)
    n_valid = len(cascade.valid_index)
    data = cascade.data
    idx = torch.as_tensor(cascade.valid_index)
    share = float(data.artifact_masks[idx].float().mean()) if data.artifact_masks is not None else math.nan
    n_original = n_valid if data.clean_images is not None else 0
    acc_box = _accuracy_interval(stats.get("valid_accuracy_original"), n_valid)
    acc_orig = _accuracy_interval(stats.get("valid_accuracy_clean"), n_original)
    c = cascade.config
    row = {
        "regime": regime.name if regime is not None else "", "arch": c.arch, "pretrained": c.pretrained,
        "image_size": c.image_size, "n_train": len(cascade.train_index), "n_valid": n_valid,
        "n_original": n_original,
        "accuracy_box": acc_box[0], "accuracy_box_low": acc_box[1], "accuracy_box_high": acc_box[2],
        "accuracy_original": acc_orig[0], "accuracy_original_low": acc_orig[1], "accuracy_original_high": acc_orig[2],
        **{k: v for k, v in summary.items() if k != "n"},
        "box_area_share": share, "epochs_run": stats.get("epochs_run"), "train_seconds": stats.get("train_seconds"),
        "run": cascade.record.dir.name,
    }
    return {k: row[k] for k in STUDY_COLUMNS}


def run_study(
    base: CascadeConfig,
    store=None,
    regimes: Iterable[Regime] = STUDY_REGIMES,
    sizes: Sequence[int] = STUDY_SIZES,
    *,
    on_row: Callable[[dict], None] | None = None,
    n_boot: int = 2000,
) -> pd.DataFrame:
    """Train (or load from the store) model 1 of every regime × size and measure it (:func:`measure_run`).

    ``base`` fixes the data (a folder with ``only_with_original=True``, so every validation photo has its
    box-free original), the split and the seed; the regimes set the training fields. A rerun finds each
    model and each evaluation in the store and trains nothing. ``on_row`` receives each row as it is
    measured (a script can save partial results).

    Example:
        >>> base = CascadeConfig(data="folder", data_path="/path/to/oxford-pets-artifact", n_images=0,
        ...                      only_with_original=True, device="cpu", progress=False)
        >>> table = run_study(base, "runs")              # one row per regime × size
    """
    from .cascade import run_cascade
    from .data import load_data
    from .store import RunStore

    store = store if isinstance(store, RunStore) else RunStore(store)
    rows, data_by_size = [], {}
    for regime, cfg in study_configs(base, regimes, sizes):
        if cfg.image_size not in data_by_size:  # the photos are read once per size
            data_by_size = {cfg.image_size: load_data(cfg)}
        cascade = run_cascade(cfg, store, data=data_by_size[cfg.image_size])
        row = measure_run(cascade, regime, n_boot=n_boot)
        rows.append(row)
        if on_row is not None:
            on_row(row)
    return pd.DataFrame(rows, columns=list(STUDY_COLUMNS))


def choose_shortcut_regime(table: pd.DataFrame) -> pd.Series | None:
    """The row whose CAM peaks on the box most often, provided it does so more often than a map peaking
    at random would (its interval's lower end above the box's share of the frame); None when no row does."""
    if not len(table):
        return None
    above = table[table["box_pointing_low"] > table["box_area_share"]]
    if not len(above):
        return None
    return above.sort_values(["box_pointing", "box_energy"], ascending=False).iloc[0]


def _pct(v: float) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}"


def _with_interval(row: pd.Series, key: str) -> str:
    if pd.isna(row[key]):
        return "—"
    return f"{_pct(row[key])} % [{_pct(row[key + '_low'])}, {_pct(row[key + '_high'])}]"


def format_study_table(table: pd.DataFrame) -> pd.DataFrame:
    """The study table for people: rates and shares (box energy too) in percent with one decimal and
    their intervals, as ``12.3 % [9.1, 15.8]``."""
    out = pd.DataFrame(
        {
            "regime": table["regime"],
            "image size": table["image_size"].map(lambda v: f"{int(v)} px"),
            "photos (train / valid)": [f"{int(a)} / {int(b)}" for a, b in zip(table["n_train"], table["n_valid"])],
            "accuracy with the box": [_with_interval(r, "accuracy_box") for _, r in table.iterrows()],
            "accuracy on box-free originals": [_with_interval(r, "accuracy_original") for _, r in table.iterrows()],
            "CAM peaks on the box": [_with_interval(r, "box_pointing") for _, r in table.iterrows()],
            "CAM mass on the box": [_with_interval(r, "box_energy") for _, r in table.iterrows()],
            "box ÷ frame": table["box_area_share"].map(lambda v: f"{100 * v:.1f} %"),
        }
    )
    return out.reset_index(drop=True)


def read_recorded(path) -> tuple[pd.DataFrame, dict[str, str]]:
    """A recorded study CSV and its provenance: the leading ``# key: value`` lines, then the table."""
    from pathlib import Path

    provenance, lines = {}, Path(path).read_text().splitlines()
    body = []
    for line in lines:
        if line.startswith("#"):
            key, _, value = line[1:].partition(":")
            provenance[key.strip()] = value.strip()
        else:
            body.append(line)
    from io import StringIO

    return pd.read_csv(StringIO("\n".join(body))), provenance


def write_recorded(path, table: pd.DataFrame, provenance: dict[str, str]) -> None:
    """Write ``table`` as CSV after ``# key: value`` provenance lines (read back by :func:`read_recorded`)."""
    from pathlib import Path

    from .store import atomic_write_text

    head = "".join(f"# {k}: {v}\n" for k, v in provenance.items())
    atomic_write_text(Path(path), head + table.to_csv(index=False))


def regime_fields(regime: Regime) -> dict:
    """The regime's fields as a plain dict (for a profile or a provenance line)."""
    return {k: v for k, v in asdict(regime).items() if k not in ("name", "sizes")}


#: The paper's example photos of Figures 2–3 (two cats, two dogs), named as in Oxford-IIIT Pet.
PAPER_EXAMPLES: tuple[str, ...] = ("Russian_Blue_61.jpg", "pug_5.jpg", "saint_bernard_16.jpg", "boxer_105.jpg")


def example_panels(cascade, data_path, names: Sequence[str] = PAPER_EXAMPLES, methods=None) -> dict[str, object]:
    """Figures 2–3's layout for named photos of a folder: the input, CasCAM and the ten other methods on
    model 1, one 3 × 4 figure per photo (:func:`~cascam.plotting.plot_methods`), keyed by file name.

    The photos are read at the run's image size with their box (cyan outline); they need not be in the run's
    data. Also returns, under ``"_peaks"``, a frame with each method's box pointing and box energy per photo.
    """
    from .data import load_artifact_folder
    from .evaluate import ALL_METHODS, METHOD_LABELS, method_maps
    from .plotting import plot_methods

    data = load_artifact_folder(data_path, size=cascade.config.image_size, names=list(names))
    maps = method_maps(cascade, data.images, data.labels, methods or ALL_METHODS)
    out: dict[str, object] = {}
    rows = []
    for j, name in enumerate(data.names):
        out[name] = plot_methods(data.images[j], {METHOD_LABELS[m]: v[j] for m, v in maps.items()},
                                 None, data.artifact_masks[j])
        for m, v in maps.items():
            s = box_scores(v[j : j + 1], data.artifact_masks[j : j + 1])
            rows.append({"image": name, "method": METHOD_LABELS[m], "box_pointing": float(s["box_pointing"][0]),
                         "box_energy": float(s["box_energy"][0])})
    out["_peaks"] = pd.DataFrame(rows)
    return out
