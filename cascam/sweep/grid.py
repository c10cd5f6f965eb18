"""Grids: a grid file (``base``, ``grid``, ``extra``) expanded into validated configurations, and
the configurations that share one run folder grouped (:class:`RunGroup`).

Nothing here trains or reads the run store; a grid is only the list of what a sweep should hold.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ..config import CascadeConfig, ConfigError, read_yaml

#: Sections a grid file may have.
GRID_SECTIONS = ("name", "description", "base", "grid", "extra")
#: A pseudo-parameter that sets ``threshold`` (and ``topk``) in one value: ``topk:10``, ``none``, ``ebayes``.
THRESHOLD_SPEC = "threshold_spec"
#: The parameters a grid may set: the fields of :class:`CascadeConfig`.
FIELD_NAMES = tuple(f.name for f in fields(CascadeConfig))


@dataclass(frozen=True)
class GridPoint:
    """One configuration of a grid; ``label`` says where it came from (``grid K=3 theta=0.1`` or ``extra 2``)."""

    config: CascadeConfig
    label: str


@dataclass(frozen=True)
class RunGroup:
    """Configurations that share one run folder (same :meth:`CascadeConfig.key`).

    K is not hashed when one explainer drives every iteration, so ``K = 3, 5, 10`` are prefixes of
    one run: the group trains ``config`` (the largest K) once and each point is done as soon as the
    folder holds its K iterations. Points may also differ in λ, ``combine`` or ``explain_on``, which
    change only the explanation.
    """

    key: str
    config: CascadeConfig
    points: tuple[GridPoint, ...]


@dataclass(frozen=True)
class Grid:
    """An expanded grid file: its name (the sweep's folder under ``<store>/_sweeps``) and configurations."""

    name: str
    points: tuple[GridPoint, ...]
    description: str = ""

    @property
    def groups(self) -> list[RunGroup]:
        """One :class:`RunGroup` per run folder, in the order the grid first names them."""
        by_key: dict[str, list[GridPoint]] = {}
        for p in self.points:
            by_key.setdefault(p.config.key(), []).append(p)
        out = []
        for key, pts in by_key.items():
            longest = max(pts, key=lambda p: p.config.K).config
            out.append(RunGroup(key, longest, tuple(pts)))
        return out


def parse_threshold_spec(spec: Any) -> dict[str, Any]:
    """``"topk:10"`` → ``{"threshold": "topk", "topk": 10.0}``; ``"topk"``, ``"none"``, ``"ebayes"`` set only ``threshold``."""
    if spec is None:
        spec = "none"
    if not isinstance(spec, str):
        raise ConfigError(f"{THRESHOLD_SPEC}: expected topk:<percent>, none or ebayes; got {spec!r}")
    name, _, arg = spec.strip().lower().partition(":")
    if name == "topk" and arg:
        try:
            return {"threshold": "topk", "topk": float(arg)}
        except ValueError:
            raise ConfigError(f"{THRESHOLD_SPEC}: topk:<percent> needs a number; got {spec!r}") from None
    if name in ("topk", "none", "ebayes") and not arg:
        return {"threshold": name}
    raise ConfigError(f"{THRESHOLD_SPEC}: unknown value {spec!r}; use topk:<percent> (topk:10), none or ebayes")


def threshold_text(cfg: CascadeConfig) -> str:
    """The grid files' ``threshold_spec`` of a configuration: ``topk:10``, ``none`` or ``ebayes``."""
    return f"topk:{cfg.topk:g}" if cfg.threshold == "topk" else cfg.threshold


def _layer(values: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A mapping of parameters with ``threshold_spec`` resolved; unknown names are rejected here."""
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where}: expected a mapping of parameter: value; got {values!r}")
    out = dict(values)
    unknown = sorted(set(out) - set(FIELD_NAMES) - {THRESHOLD_SPEC})
    if unknown:
        raise ConfigError(f"{where}: unknown parameter(s): {', '.join(map(str, unknown))}")
    if THRESHOLD_SPEC in out:
        clash = [n for n in ("threshold", "topk") if n in out]
        if clash:
            raise ConfigError(f"{where}: give {THRESHOLD_SPEC} or {'/'.join(clash)}, not both")
        try:
            out.update(parse_threshold_spec(out.pop(THRESHOLD_SPEC)))
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    return out


def _profile_parameters(name: str, search: Sequence[Path]) -> dict[str, Any]:
    """``profiles/<name>.yaml``'s ``parameters`` restricted to :class:`CascadeConfig` fields."""
    for folder in search:
        path = folder / "profiles" / f"{name}.yaml"
        if path.is_file():
            params = (read_yaml(path, "profile") or {}).get("parameters", {}) or {}
            return {k: v for k, v in params.items() if k in FIELD_NAMES}
    looked = ", ".join(str(f / "profiles") for f in search)
    raise ConfigError(f"base.profile: unknown profile {name!r} (looked in {looked})")


def _describe(values: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in values.items())


def expand_grid(
    spec: Mapping[str, Any],
    overrides: Mapping[str, Any] | None = None,
    *,
    name: str = "grid",
    search: Sequence[Path] = (),
) -> Grid:
    """Expand a grid specification into validated configurations.

    ``spec`` has ``base`` (parameters, optionally ``profile: NAME`` for ``profiles/NAME.yaml``),
    ``grid`` (parameter → list of values; the Cartesian product, in the order given) and ``extra``
    (a list of explicit parameter mappings, each on top of ``base``). ``threshold_spec`` may stand
    for ``threshold``/``topk`` anywhere. ``overrides`` (``--set``) apply to ``base`` and may not name
    a parameter the grid or an extra sets. Configurations equal in every field are kept once.

    Raises :class:`ConfigError` naming the section, the point and the parameter of the first bad value.
    """
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{name}: a grid file must hold a mapping with base, grid and/or extra")
    unknown = sorted(set(spec) - set(GRID_SECTIONS))
    if unknown:
        raise ConfigError(
            f"{name}: unknown section(s) {', '.join(map(str, unknown))}; expected {', '.join(GRID_SECTIONS)}"
        )
    name = str(spec.get("name") or name)
    if not name or any(c in name for c in "/\\\0") or name.startswith("."):
        raise ConfigError(f"name: {name!r} cannot name a folder")

    if not isinstance(spec.get("base") or {}, Mapping):
        raise ConfigError(f"{name}: base: expected a mapping of parameter: value")
    raw_base = dict(spec.get("base") or {})
    base: dict[str, Any] = {}
    if "profile" in raw_base:
        base.update(_profile_parameters(str(raw_base.pop("profile")), search))
    base.update(_layer(raw_base, f"{name}: base"))  # a threshold_spec here replaces the profile's

    grid = spec.get("grid") or {}
    if not isinstance(grid, Mapping):
        raise ConfigError(f"{name}: grid: expected a mapping of parameter: [values]")
    unknown = sorted(set(grid) - set(FIELD_NAMES) - {THRESHOLD_SPEC})
    if unknown:
        raise ConfigError(f"{name}: grid: unknown parameter(s): {', '.join(map(str, unknown))}")
    for param, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{name}: grid.{param}: expected a non-empty list of values; got {values!r}")
    extras = spec.get("extra") or []
    if not isinstance(extras, list):
        raise ConfigError(f"{name}: extra: expected a list of parameter mappings")
    extra_layers = [_layer(e, f"{name}: extra {i + 1}") for i, e in enumerate(extras)]

    # --set changes the base; a parameter the grid or an extra sets would be silently lost, so refuse it
    sets = _layer(overrides or {}, "--set")
    varied = set(grid) | ({"threshold", "topk"} if THRESHOLD_SPEC in grid else set())
    for param in sets:
        if param in varied:
            raise ConfigError(f"--set {param}: the grid varies {param}; edit the grid file instead")
        for i, layer in enumerate(extra_layers):
            if param in layer:
                raise ConfigError(f"--set {param}: extra {i + 1} sets {param}; edit the grid file instead")
    start = {**base, **sets}

    candidates: list[tuple[dict[str, Any], str]] = []
    names = list(grid)
    for combo in itertools.product(*(grid[n] for n in names)) if names else []:
        point = dict(zip(names, combo, strict=True))
        candidates.append(
            ({**start, **_layer(point, f"{name}: grid point {_describe(point)}")}, f"grid {_describe(point)}")
        )
    for i, (layer, raw) in enumerate(zip(extra_layers, extras, strict=True)):
        candidates.append(({**start, **layer}, f"extra {i + 1}: {_describe(raw)}"))
    if not candidates:
        candidates.append((start, "base"))

    points: list[GridPoint] = []
    seen: set[CascadeConfig] = set()
    for values, label in candidates:
        try:
            cfg = CascadeConfig.from_dict(values)
        except ConfigError as exc:
            hint = " (give it with --set data_path=DIR)" if str(exc).startswith("data_path:") else ""
            raise ConfigError(f"{name}: {label}: {exc}{hint}") from None
        if cfg not in seen:
            seen.add(cfg)
            points.append(GridPoint(cfg, label))
    return Grid(name, tuple(points), str(spec.get("description") or ""))


def _repo_root() -> Path:
    return Path(os.environ.get("CASCAM_BOOK_ROOT") or Path(__file__).resolve().parents[2])


def resolve_grid_path(path: str | Path) -> Path:
    """A grid file path, or a bare name looked up in the repository's ``grids/`` folder."""
    p = Path(path)
    if p.is_file():
        return p
    named = _repo_root() / "grids" / f"{p.name}.yaml"
    if p.suffix == "" and named.is_file():
        return named
    known = sorted(q.stem for q in (_repo_root() / "grids").glob("*.yaml"))
    raise ConfigError(f"grid: file not found: {path} (named grids: {', '.join(known) or 'none'})")


def load_grid(path: str | Path, overrides: Mapping[str, Any] | None = None) -> Grid:
    """Read and expand a grid file (see :func:`expand_grid`); the grid's name defaults to the file's stem."""
    p = resolve_grid_path(path)
    spec = read_yaml(p, "grid")
    search = [p.resolve().parent, p.resolve().parent.parent, _repo_root()]
    return expand_grid(spec or {}, overrides, name=p.stem, search=search)
