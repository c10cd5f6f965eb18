"""The cascade's configuration: one frozen, validated dataclass whose hash names the run.

Every field is checked on construction, so a bad parameter fails with one line naming it before
any data is generated or any model is trained.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from .data.synthetic import BENCHMARK_VERSIONS, DEFAULT_BENCHMARK_VERSION
from .data.synthetic import SYNTHETIC_VARIANTS as VARIANTS
from .masking import COMBINES, FILLS
from .threshold.ebayesthresh import PRIORS as EBAYES_PRIORS
from .threshold.maps import MAP_THRESHRULES as EBAYES_THRESHRULES
from .threshold.maps import STANDARDIZE as EBAYES_STANDARDIZE

__all__ = [
    "CascadeConfig",
    "ConfigError",
    "ARCHITECTURES",
    "THRESHOLDS",
    "FILLS",
    "DATA_SOURCES",
    "load_config",
    "parse_overrides",
]

ARCHITECTURES = ("small_cnn", "resnet18", "resnet34", "resnet50", "efficientnet_lite0")
THRESHOLDS = ("none", "topk", "ebayes")
DATA_SOURCES = ("synthetic", "folder", "oxford")
EXPLAIN_ON = ("original", "masked")
DEVICES = ("auto", "cpu", "cuda", "mps")
#: Pre-training of the body before the cascade: ``none``, or ``clean`` (box-free synthetic images).
PRETRAIN = ("none", "clean")
#: Fields that say where/how a run executes, not what it computes; they do not enter the hash.
EXECUTION_FIELDS = ("device", "num_workers", "progress", "stream", "stream_dtype", "keep_stream")
#: Fields that change only how the trained models explain, not what is trained; they do not enter
#: the hash either, so changing λ or the combination variant never retrains. K is left out too when
#: one explainer drives every iteration: iteration k depends only on iterations 1..k−1, so a run of
#: K = 10 holds the runs of K = 1..9 as prefixes, and K = 10 after K = 5 trains only 6..10.
EXPLANATION_FIELDS = ("lam", "combine", "explain_on")
#: Bumped whenever an architecture, the training loop or the masking changes, so that stored runs of
#: an older engine are never loaded as if they were current.
ENGINE_VERSION = 2
#: Fields that change only what happens *after* model 1 is trained (how its map masks the images,
#: and what later iterations do). Model 1 is trained on the original images, so two runs that differ
#: only in these share model 1: the run store hands the first one's model to the second
#: (:func:`first_model_key`) instead of training the same network again.
MASKING_FIELDS = (
    "theta", "threshold", "topk", "ebayes_prior", "ebayes_a", "ebayes_threshrule", "ebayes_standardize",
    "fill", "mask_dilate", "explainer", "K",
)
#: Fields added after engine version 2 whose default reproduces the earlier engine: they enter a run's
#: hash only when set to something else, so the runs stored before they existed keep their names.
#: ``benchmark_version`` defaults to 2 but is optional at 1 (the drawing every earlier run used): runs
#: of drawing 1 keep their names, runs of drawing 2 get new ones. A stored ``config.yaml`` without it
#: is therefore read as drawing 1 (:meth:`CascadeConfig.from_dict`). It enters the hash of synthetic
#: runs only (other data sources do not draw anything).
OPTIONAL_FIELDS = {
    "mask_dilate": 0.0,
    "benchmark_version": 1,
    "freeze_epochs": 0,
    "body_lr_mult": 1.0,
    "pretrain": "none",
    "pretrain_epochs": 5,
    "pretrain_n_images": 2000,
    "train_bn": True,
    "only_with_original": False,
}
#: Fields that matter only when ``pretrain`` is not ``none`` (left out of the hash otherwise).
PRETRAIN_FIELDS = ("pretrain_epochs", "pretrain_n_images")
#: Smallest input side per architecture (the network's total stride times 2).
MIN_IMAGE_SIZE = {"small_cnn": 16, "resnet18": 64, "resnet34": 64, "resnet50": 64, "efficientnet_lite0": 64}


class ConfigError(ValueError):
    """A configuration value is out of range; the message names the parameter and the allowed values."""


def _finite(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name}: must be a finite number; got {value!r}")
    return float(value)


def _integer(name: str, value: Any, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ConfigError(f"{name}: must be an integer ≥ {low}; got {value!r}")
    if value < low or (high is not None and value > high):
        rng = f"≥ {low}" if high is None else f"in [{low}, {high}]"
        raise ConfigError(f"{name}: must be an integer {rng}; got {value!r}")
    return value


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value.lower() not in allowed:
        raise ConfigError(f"{name}: unknown value {value!r}; choose one of {', '.join(allowed)}")
    return value.lower()


@dataclass(frozen=True)
class CascadeConfig:
    """Everything that determines a CasCAM run (docs/method.md, § The cascade).

    Data
        data: ``synthetic`` (built-in, default), ``folder`` (a folder of with-artifact images plus
            ``artifacts.csv``) or ``oxford`` (torchvision's Oxford-IIIT Pet with inserted artifacts).
        data_path: folder for ``folder``/``oxford``; never defaulted.
        variant: synthetic variant (``single``, ``multi_artifact``, ``multi_object``).
        benchmark_version: synthetic drawing (1 or 2, default 2): 1 = heads covering 10–25 % of the
            frame with a 22 % box placed to avoid hiding them; 2 = whole animals (head, body, legs,
            tail) covering about a third to two thirds of the frame with the paper's box (86/512 of the
            side) anywhere, and object masks that include the animal under the box.
        n_images: number of images (synthetic: generated; folder: a seeded stratified subset, 0 = all).
        image_size: side in pixels the model sees.
        valid_fraction: share of images held out for validation (fixed seeded stratified split,
            the same in every iteration).
        artifact: insert the label artifact (False gives the box-free control).
        only_with_original: ``folder`` only: keep just the photos whose box-free original exists
            (``has_original = 1``), so that every validation photo has one and each model's accuracy on
            the box-free originals is recorded (``valid_accuracy_clean``).
    Cascade
        K: iterations (≥ 1). theta: masking strength θ > 0.
        threshold: ``none``, ``topk`` or ``ebayes``; topk: percent kept, in (0, 100].
        ebayes_prior, ebayes_a (None = estimate), ebayes_threshrule, ebayes_standardize: EbayesThresh options.
        lam: decay λ ≥ 0 of the weights ω_k = exp(−λ(k−1)) / Σ_j exp(−λ(j−1)).
        explainer: one method name, or a tuple of K names (one per iteration).
        combine: ``paper`` (Norm(Σ ω_k Norm(TH(CAM_k))) ) or ``code`` (Norm(Σ ω_k TH(CAM_k)), the
            authors' code).
        explain_on: ``original`` (each f_k explains x; authors' code) or ``masked`` (f_k explains x^(k)).
        fill: counterfactual fill (``multiply`` = the paper's x·exp(−θ·M)).
        mask_dilate: grow each thresholded map before the fill by a grey-scale dilation of radius
            ``round(mask_dilate × image side)`` pixels (0 = the paper: no dilation); blurs the mask's
            shape into a blob so that the shape of the hole carries less of the class.
    Model and training
        arch, pretrained, epochs (max), min_epochs, patience, batch_size, lr, weight_decay, seed.
        freeze_epochs: each model's first epochs train only the head (and the body's batch norm), then
            every layer trains (0 = one phase; counted in epochs). body_lr_mult: the body's learning rate
            is lr × body_lr_mult (docs/method.md, § The training schedule: fastai's fine_tune).
        train_bn: while the body is frozen its batch-norm layers still train (fastai's default, True);
            False freezes them too, so ``freeze_epochs = epochs`` trains a linear head on fixed features.
        pretrain: ``none``, or ``clean``: every model starts from a small_cnn body trained on
            pretrain_n_images box-free synthetic images (not the run's) for pretrain_epochs epochs, cached in
            the run store — the synthetic stand-in for ImageNet weights (synthetic data, small_cnn only).
    Execution (not hashed)
        device (``auto`` picks CUDA when available), num_workers (processes that read training
        batches of a streamed x^(k); 0 = read them in the training process), progress.
        stream: keep x^(k) in the run folder as a file read batch by batch (memory flat in the
            number of images; :mod:`cascam.streaming`) instead of as float32 tensors in memory
            (``false``, the earlier path: about 9 bytes per pixel and channel).
        stream_dtype: element type of the streamed x^(k): ``float16`` (default; the fill rounded to
            about 3 significant digits), ``float32`` (exactly the in-memory values, twice the disk)
            or ``uint8`` (rounded to 1/255).
        keep_stream: keep every iteration's x^(k) file, also after the run is complete (default:
            only the current one, deleted when the run is complete).
    """

    # data
    data: str = "synthetic"
    data_path: str | None = None
    variant: str = "single"
    benchmark_version: int = DEFAULT_BENCHMARK_VERSION
    n_images: int = 2400
    image_size: int = 64
    valid_fraction: float = 1 / 6
    artifact: bool = True
    only_with_original: bool = False
    # cascade
    K: int = 5
    theta: float = 0.3
    threshold: str = "topk"
    topk: float = 10.0
    ebayes_prior: str = "laplace"
    ebayes_a: float | None = 0.5
    ebayes_threshrule: str = "median"
    ebayes_standardize: str = "max"
    lam: float = 0.1
    explainer: str | tuple[str, ...] = "cam"
    combine: str = "paper"
    explain_on: str = "original"
    fill: str = "multiply"
    mask_dilate: float = 0.0
    # model and training
    arch: str = "small_cnn"
    pretrained: bool = False
    epochs: int = 15
    min_epochs: int = 5
    patience: int = 3
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.0
    seed: int = 0
    freeze_epochs: int = 0
    body_lr_mult: float = 1.0
    pretrain: str = "none"
    pretrain_epochs: int = 5
    pretrain_n_images: int = 2000
    train_bn: bool = True
    # execution
    device: str = "auto"
    num_workers: int = 0
    progress: bool = field(default=True, compare=False)
    stream: bool = True
    stream_dtype: str = "float16"
    keep_stream: bool = False

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "data", _choice("data", self.data, DATA_SOURCES))
        if self.data in ("folder", "oxford") and not self.data_path:
            raise ConfigError(f"data_path: required when data={self.data!r} (a folder path); got None")
        if self.data_path is not None:
            set_(self, "data_path", str(self.data_path))
        set_(self, "variant", _choice("variant", self.variant, VARIANTS))
        if isinstance(self.benchmark_version, bool) or self.benchmark_version not in BENCHMARK_VERSIONS:
            allowed = ", ".join(map(str, BENCHMARK_VERSIONS))
            raise ConfigError(f"benchmark_version: synthetic drawing; choose one of {allowed}; got {self.benchmark_version!r}")
        set_(self, "benchmark_version", int(self.benchmark_version))
        set_(self, "n_images", _integer("n_images", self.n_images, 0))
        if self.data == "synthetic" and self.n_images < 8:
            raise ConfigError(f"n_images: the synthetic benchmark needs at least 8 images; got {self.n_images}")
        set_(self, "arch", _choice("arch", self.arch, ARCHITECTURES))
        set_(self, "image_size", _integer("image_size", self.image_size, 1))
        if self.image_size < MIN_IMAGE_SIZE[self.arch]:
            raise ConfigError(
                f"image_size: {self.image_size} px is too small for arch={self.arch!r} "
                f"(its stride needs ≥ {MIN_IMAGE_SIZE[self.arch]} px)"
            )
        vf = _finite("valid_fraction", self.valid_fraction)
        if not 0 < vf < 1:
            raise ConfigError(f"valid_fraction: must be in (0, 1); got {self.valid_fraction!r}")
        set_(self, "valid_fraction", vf)
        set_(self, "K", _integer("K", self.K, 1, 100))
        theta = _finite("theta", self.theta)
        if theta <= 0:
            raise ConfigError(f"theta: masking strength must be > 0; got {self.theta!r}")
        set_(self, "theta", theta)
        set_(self, "threshold", _choice("threshold", self.threshold, THRESHOLDS))
        topk = _finite("topk", self.topk)
        if not 0 < topk <= 100:
            raise ConfigError(f"topk: percent of pixels kept must be in (0, 100]; got {self.topk!r}")
        set_(self, "topk", topk)
        set_(self, "ebayes_prior", _choice("ebayes_prior", self.ebayes_prior, EBAYES_PRIORS))
        if self.ebayes_a is not None:
            a = _finite("ebayes_a", self.ebayes_a)
            if a <= 0:
                raise ConfigError(f"ebayes_a: Laplace scale must be > 0 (or None to estimate); got {a!r}")
            set_(self, "ebayes_a", a)
        set_(
            self,
            "ebayes_threshrule",
            _choice("ebayes_threshrule", self.ebayes_threshrule, EBAYES_THRESHRULES),
        )
        set_(self, "ebayes_standardize", _choice("ebayes_standardize", self.ebayes_standardize, EBAYES_STANDARDIZE))
        lam = _finite("lam", self.lam)
        if lam < 0:
            raise ConfigError(f"lam: decay λ must be ≥ 0; got {self.lam!r}")
        set_(self, "lam", lam)
        from .explainers import EXPLAINER_NAMES

        if isinstance(self.explainer, (list, tuple)):
            names = tuple(_choice("explainer", e, EXPLAINER_NAMES) for e in self.explainer)
            if len(names) == 0:
                raise ConfigError("explainer: an empty list; give one name or K names")
            if len(names) == 1:
                set_(self, "explainer", names[0])
            elif len(names) != self.K:
                raise ConfigError(f"explainer: a list must have K={self.K} names (one per iteration); got {len(names)}")
            else:
                set_(self, "explainer", names)
        else:
            set_(self, "explainer", _choice("explainer", self.explainer, EXPLAINER_NAMES))
        set_(self, "combine", _choice("combine", self.combine, COMBINES))
        set_(self, "explain_on", _choice("explain_on", self.explain_on, EXPLAIN_ON))
        set_(self, "fill", _choice("fill", self.fill, FILLS))
        dilate = _finite("mask_dilate", self.mask_dilate)
        if not 0 <= dilate <= 0.5:
            raise ConfigError(f"mask_dilate: a fraction of the image side in [0, 0.5]; got {self.mask_dilate!r}")
        set_(self, "mask_dilate", dilate)
        set_(self, "epochs", _integer("epochs", self.epochs, 1))
        set_(self, "min_epochs", _integer("min_epochs", self.min_epochs, 0))
        set_(self, "patience", _integer("patience", self.patience, 0))
        set_(self, "batch_size", _integer("batch_size", self.batch_size, 1))
        lr = _finite("lr", self.lr)
        if lr <= 0:
            raise ConfigError(f"lr: learning rate must be > 0; got {self.lr!r}")
        set_(self, "lr", lr)
        wd = _finite("weight_decay", self.weight_decay)
        if wd < 0:
            raise ConfigError(f"weight_decay: must be ≥ 0; got {self.weight_decay!r}")
        set_(self, "weight_decay", wd)
        set_(self, "seed", _integer("seed", self.seed, 0))
        set_(self, "freeze_epochs", _integer("freeze_epochs", self.freeze_epochs, 0))
        if self.freeze_epochs > self.epochs:
            raise ConfigError(
                f"freeze_epochs: must be ≤ epochs={self.epochs} (epochs counts both phases); got {self.freeze_epochs}"
            )
        mult = _finite("body_lr_mult", self.body_lr_mult)
        if not 0 < mult <= 1e3:
            raise ConfigError(f"body_lr_mult: the body's share of lr must be in (0, 1000]; got {self.body_lr_mult!r}")
        set_(self, "body_lr_mult", mult)
        set_(self, "pretrain", _choice("pretrain", self.pretrain, PRETRAIN))
        set_(self, "pretrain_epochs", _integer("pretrain_epochs", self.pretrain_epochs, 1))
        set_(self, "pretrain_n_images", _integer("pretrain_n_images", self.pretrain_n_images, 8))
        if self.pretrain == "clean" and self.data != "synthetic":
            raise ConfigError(
                f"pretrain: 'clean' pre-trains on box-free synthetic images, so it needs data=synthetic "
                f"(got data={self.data!r}; real photos use pretrained=true, ImageNet weights)"
            )
        if self.pretrain == "clean" and self.arch != "small_cnn":
            raise ConfigError(
                f"pretrain: 'clean' is for arch=small_cnn; arch={self.arch!r} takes ImageNet weights "
                "with pretrained=true instead"
            )
        set_(self, "device", _choice("device", self.device, DEVICES))
        set_(self, "num_workers", _integer("num_workers", self.num_workers, 0))
        from .streaming import STREAM_DTYPES

        set_(self, "stream_dtype", _choice("stream_dtype", self.stream_dtype, STREAM_DTYPES))
        if self.only_with_original and self.data != "folder":
            raise ConfigError(
                f"only_with_original: selects photos of a folder (data=folder) by has_original; got data={self.data!r}"
            )
        for flag in ("artifact", "pretrained", "progress", "stream", "keep_stream", "train_bn", "only_with_original"):
            if not isinstance(getattr(self, flag), bool):
                raise ConfigError(f"{flag}: must be true or false; got {getattr(self, flag)!r}")

    # ------------------------------------------------------------------ helpers
    def explainer_for(self, k: int) -> str:
        """The explainer name used at iteration ``k`` (1-based)."""
        if isinstance(self.explainer, tuple):
            return self.explainer[k - 1]
        return self.explainer

    def to_dict(self, include_execution: bool = True) -> dict[str, Any]:
        """Plain dict (tuples as lists), suitable for YAML/JSON."""
        out = {}
        for f in fields(self):
            if not include_execution and f.name in EXECUTION_FIELDS:
                continue
            v = getattr(self, f.name)
            out[f.name] = list(v) if isinstance(v, tuple) else v
        return out

    def training_dict(self) -> dict[str, Any]:
        """The fields that determine the trained models (see :data:`EXPLANATION_FIELDS`), plus the
        engine version, which changes whenever a model or the training changes."""
        out = self.to_dict(include_execution=False)
        out["engine_version"] = ENGINE_VERSION
        for name in EXPLANATION_FIELDS:
            out.pop(name)
        if self.data != "synthetic":
            out.pop("benchmark_version")
        for name, default in OPTIONAL_FIELDS.items():
            if name in out and out[name] == default:
                out.pop(name)
        if self.pretrain == "none":
            for name in PRETRAIN_FIELDS:
                out.pop(name, None)
        if isinstance(self.explainer, str):
            out.pop("K")
        return out

    def first_model_key(self) -> str:
        """The hash of the fields that determine model 1 (:data:`MASKING_FIELDS` left out)."""
        return first_model_key(self.training_dict())

    def key(self) -> str:
        """A 12-hex-digit hash of the fields that determine the trained models (:meth:`training_dict`)."""
        return _digest(self.training_dict())

    def replace(self, **changes: Any) -> CascadeConfig:
        """A copy with ``changes`` applied (and validated)."""
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise ConfigError(f"unknown parameter(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> CascadeConfig:
        """Build from a mapping, rejecting unknown keys by name."""
        names = {f.name for f in fields(cls)}
        if "engine_version" in values and values.get("data", "synthetic") == "synthetic":
            # A stored training dict (:meth:`training_dict`) leaves out optional fields at their optional value.
            values = {**OPTIONAL_FIELDS, **values}
        values = {k: v for k, v in values.items() if k != "engine_version"}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"unknown parameter(s): {', '.join(unknown)}; known: {', '.join(sorted(names))}")
        vals = dict(values)
        if isinstance(vals.get("explainer"), list):
            vals["explainer"] = tuple(vals["explainer"])
        return cls(**vals)


def read_yaml(path: str | Path, what: str = "config") -> Any:
    """Parse a YAML file; a syntax error becomes one :class:`ConfigError` line naming the file, the
    line and the column (1-based, as editors count), e.g.
    ``config: cannot parse run.yaml, line 3, column 7: expected ',' or ']', but got '<stream end>'``."""
    p = Path(path)
    try:
        return yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or exc.__class__.__name__
        raise ConfigError(f"{what}: cannot parse {p}{where}: {problem}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what}: {p} is not a text file ({exc.reason})") from None


def parse_overrides(items: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Parse ``key=value`` strings (values read as YAML scalars: ``K=3``, ``explainer=[cam,gradcam]``)."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set: expected key=value; got {item!r}")
        key, raw = item.split("=", 1)
        key = key.strip()
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {key}: cannot parse {raw!r} ({exc.__class__.__name__})") from None
        out[key] = value
    return out


def load_config(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> CascadeConfig:
    """Read a YAML config (a mapping of field → value), apply ``overrides`` and validate."""
    values: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config: file not found: {p}")
        loaded = read_yaml(p, "config")
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"config: {p} must hold a mapping of parameter: value")
        values.update(loaded)
    values.update(overrides or {})
    return CascadeConfig.from_dict(values)


def first_model_key(training: Mapping[str, Any]) -> str:
    """The hash of a training dict (``CascadeConfig.training_dict()`` or a stored ``config.yaml``)
    without :data:`MASKING_FIELDS`: equal for every run whose first model is the same network."""
    return _digest({k: v for k, v in training.items() if k not in MASKING_FIELDS})


def _digest(values: Mapping[str, Any]) -> str:
    """12 hex digits of the SHA-256 of ``values`` as sorted JSON: the names of runs and of first models."""
    blob = json.dumps(values, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]
