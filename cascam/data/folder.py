"""Folders of photos with label boxes: the ``artifacts.csv`` format, read and written.

A folder holds the photos, optionally their clean originals and trimaps, and ``artifacts.csv`` with each
photo's class and box; ``data_scripts/prepare_*.py`` write such folders from Oxford-IIIT Pet and MS-COCO
through :class:`ArtifactFolderWriter`.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from .artifacts import BOX_FRACTION, CORNER_RANGE, artifact_rng, insert_label_box
from .base import CLASS_NAMES, ImageData
from .images import fit_photo, map_in_threads, read_image

__all__ = [
    "ArtifactFolderWriter",
    "label_from_name",
    "load_artifact_folder",
    "stratified_indices",
]

_BBOX_COLUMN = re.compile(r"bbox(\d+)_(xmin|ymin|xmax|ymax)")
_SPECIES_TO_LABEL = {name: i for i, name in enumerate(CLASS_NAMES)}


def label_from_name(name: str) -> int:
    """Oxford-IIIT Pet's rule, the format's labels when ``artifacts.csv`` has no ``species``: a name
    starting with an uppercase letter is a cat (0), else a dog (1)."""
    return 0 if Path(name).name[:1].isupper() else 1


def stratified_indices(labels: np.ndarray | Sequence[int], n: int, seed: int = 0) -> np.ndarray:
    """``n`` indices drawn without replacement so that every class keeps its share (sorted, seeded).

    Each class gets ``⌊n · n_c / N⌋`` images, and the remainder goes to the classes with the
    largest fractional parts. ``n ≥ N`` returns every index.
    """
    labels = np.asarray(labels)
    total = len(labels)
    if n >= total:
        return np.arange(total)
    if n < 0:
        raise ValueError(f"limit must be non-negative; got {n}")
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    exact = n * counts / total
    quota = np.floor(exact).astype(int)
    for j in np.argsort(-(exact - quota), kind="stable")[: n - int(quota.sum())]:
        quota[j] += 1
    picked = [rng.choice(np.flatnonzero(labels == c), q, replace=False) for c, q in zip(classes, quota)]
    return np.sort(np.concatenate(picked)).astype(int)


def _read_foreground(path: Path, size: tuple[int, int]) -> np.ndarray:
    """A trimap (1 = pet, 2 = background, 3 = border) as a bool foreground mask, resized nearest."""
    try:
        with Image.open(path) as im:
            trimap = im.resize(size, Image.NEAREST) if im.size != size else im.copy()
    except (OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"cannot read mask {path}: {exc}") from exc
    return np.asarray(trimap) == 1



def _bbox_sets(columns: Sequence[str]) -> list[int]:
    """Reference sizes N for which all four ``bboxN_*`` columns exist, ascending."""
    found: dict[int, set[str]] = {}
    for col in columns:
        m = _BBOX_COLUMN.fullmatch(col)
        if m:
            found.setdefault(int(m.group(1)), set()).add(m.group(2))
    return sorted(n for n, sides in found.items() if len(sides) == 4)


def _flag(table: pd.DataFrame, column: str) -> np.ndarray:
    """A 0/1 column as bool (empty or missing values count as 0); all False when the column is absent."""
    if column not in table.columns:
        return np.zeros(len(table), dtype=bool)
    return pd.to_numeric(table[column], errors="coerce").fillna(0).to_numpy() == 1


def _boxes_at(table: pd.DataFrame, ref: int, width: int, height: int) -> np.ndarray:
    """``bbox<ref>_*`` boxes scaled to a ``width × height`` image, rounded outward, clipped: ``(N, 4)``."""
    cols = [f"bbox{ref}_{side}" for side in ("xmin", "ymin", "xmax", "ymax")]
    box = table[cols].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    bad = np.isnan(box).any(axis=1)
    if bad.any():
        raise ValueError(
            f"artifacts.csv: missing or non-numeric bbox{ref}_* for {table['image'][bad].iloc[0]}"
        )
    sx, sy = width / ref, height / ref
    out = np.stack(
        [
            np.floor(box[:, 0] * sx),
            np.floor(box[:, 1] * sy),
            np.ceil(box[:, 2] * sx),
            np.ceil(box[:, 3] * sy),
        ],
        axis=1,
    )
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, width)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, height)
    return out.astype(np.int64)


def load_artifact_folder(
    root: str | os.PathLike,
    size: int | None = None,
    limit: int | None = None,
    seed: int = 0,
    object_masks_dir: str | os.PathLike | None = None,
    only_with_original: bool = False,
    workers: int | None = None,
    names: Sequence[str] | None = None,
    memmap_dir: str | os.PathLike | None = None,
) -> ImageData:
    """Load a folder of images with label-box artifacts (the ``artifacts.csv`` format).

    The folder holds ``artifacts.csv`` (one row per image: ``image``, ``species``, ``has_original``,
    and box columns ``bbox<N>_xmin … bbox<N>_ymax`` in an ``N × N`` frame, half-open), the images in
    ``with_artifact/`` (or ``images/``, as ``data_scripts/prepare_*.py`` write them), and optionally
    the clean photos in ``original/``.

    - Labels come from ``species`` (``cat`` = 0, ``dog`` = 1), or from the file-name case rule when
      that column is absent.
    - ``artifact_masks`` are the boxes. When one of the ``bbox<N>`` sets matches the loaded size it
      is used as is; otherwise the largest ``N`` is scaled and rounded outward (floor the minimum,
      ceil the maximum), so a box given at 512 px still covers its pixels at 224 px.
    - ``clean_images`` are filled only when every loaded row has ``has_original = 1``; otherwise
      they are None and ``meta["with_original"]`` lists the names that do have one
      (``only_with_original=True`` keeps just those rows).
    - ``object_masks`` are None, unless ``object_masks_dir`` holds a trimap ``<stem>.png`` per image
      (Oxford's ``annotations/trimaps`` or a prepare script's ``trimaps/``): value 1 = foreground,
      resized nearest.
    - Grayscale, palette and RGBA files are converted to RGB (alpha dropped).

    Args:
        root: the folder (there is no default location).
        size: output side in pixels; None keeps the files' size (all files must then share it).
        limit: load at most this many images, a class-stratified random subset drawn with ``seed``
            (kept in file order).
        seed: seed for the ``limit`` subset.
        object_masks_dir: folder of trimaps to pair with the images.
        only_with_original: keep only rows whose clean original exists (``has_original = 1``).
        workers: decoding threads (default: up to 8).
        names: keep only these images (file names as ``artifacts.csv`` lists them), in the csv's order.
        memmap_dir: decode the photos (and originals) once into uint8 ``.npy`` files in this folder
            (the run store's ``_data`` when a run loads them) and return tensors backed by those files,
            memory-mapped copy-on-write: pages are read from disk as batches touch them, so resident
            memory does not have to hold the data set, and a second load decodes nothing. The files
            are named by a digest of the folder, its ``artifacts.csv``, the rows loaded and the size
            (:func:`folder_key`); they are written to a temporary name and renamed when complete.

    Raises:
        FileNotFoundError: the folder, ``artifacts.csv``, the image folder, or a file the csv names
            is missing (the message names it).
        ValueError: an image is truncated or unreadable (the message names it), or the csv is malformed.

    Example:
        >>> data = load_artifact_folder("/path/to/oxford-pets-artifact", limit=200)
        >>> data.images.shape, data.artifact_masks.shape     # (200, 3, 224, 224), (200, 224, 224)
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"artifact folder not found: {root}")
    csv_path = root / "artifacts.csv"
    if not csv_path.is_file():
        raise FileNotFoundError(f"{csv_path} not found: an artifact folder needs an artifacts.csv")
    image_dir = next((root / d for d in ("with_artifact", "images") if (root / d).is_dir()), None)
    if image_dir is None:
        raise FileNotFoundError(f"no with_artifact/ (or images/) folder in {root}")
    table = pd.read_csv(csv_path, dtype={"image": str, "species": str}, keep_default_na=False)
    if "image" not in table.columns:
        raise ValueError(f"{csv_path} has no 'image' column")
    if only_with_original:
        if "has_original" not in table.columns:
            raise ValueError(f"only_with_original=True, but {csv_path} has no 'has_original' column")
        table = table[_flag(table, "has_original")]
    if names is not None:
        missing = sorted(set(names) - set(table["image"]))
        if missing:
            raise FileNotFoundError(f"{csv_path.name} lists no image named {', '.join(missing)}")
        table = table[table["image"].isin(set(names))]

    if "species" in table.columns:
        unknown = sorted(set(table["species"]) - set(_SPECIES_TO_LABEL))
        if unknown:
            raise ValueError(
                f"{csv_path}: unknown species {unknown}; expected one of {list(_SPECIES_TO_LABEL)}"
            )
        labels = np.array(table["species"].map(_SPECIES_TO_LABEL), dtype=np.int64)
    else:
        labels = np.array([label_from_name(n) for n in table["image"]], dtype=np.int64)
    if limit is not None and limit < len(table):
        keep = stratified_indices(labels, limit, seed)
        table, labels = table.iloc[keep], labels[keep]
    table = table.reset_index(drop=True)
    names = table["image"].tolist()
    n = len(names)
    if n == 0:
        raise ValueError(f"{csv_path}: no images to load")

    paths = [image_dir / name for name in names]
    for name, path in zip(names, paths):
        if not path.is_file():
            raise FileNotFoundError(f"{csv_path.name} names {name}, but {path} does not exist")
    has_original = _flag(table, "has_original")
    original_paths = {i: root / "original" / names[i] for i in np.flatnonzero(has_original)}
    for i, path in original_paths.items():
        if not path.is_file():
            raise FileNotFoundError(
                f"{csv_path.name} marks {names[i]} has_original=1, but {path} does not exist"
            )
    mask_paths = None
    if object_masks_dir is not None:
        mask_dir = Path(object_masks_dir)
        if not mask_dir.is_dir():
            raise FileNotFoundError(f"object_masks_dir not found: {mask_dir}")
        mask_paths = [mask_dir / (Path(name).stem + ".png") for name in names]
        for path in mask_paths:
            if not path.is_file():
                raise FileNotFoundError(f"no object mask {path} for image {path.stem}")

    if size is None:
        try:
            with Image.open(paths[0]) as im:
                width, height = im.size
        except (OSError, SyntaxError) as exc:
            raise ValueError(f"cannot read image {paths[0]}: {exc}") from exc
    else:
        width = height = int(size)

    load_clean = bool(has_original.all())
    refs = _bbox_sets(table.columns)
    bbox_ref = (width if (width == height and width in refs) else refs[-1]) if refs else None
    shapes = {"images": ((n, 3, height, width), np.uint8)}
    if load_clean:
        shapes["clean"] = ((n, 3, height, width), np.uint8)
    if refs:
        shapes["boxes"] = ((n, height, width), np.bool_)
    if mask_paths is not None:
        shapes["objects"] = ((n, height, width), np.bool_)
    # Arrays to fill: in memory, or (memmap_dir) files staged under a private name. A complete earlier
    # decoding of the same rows is mapped instead, and nothing is decoded.
    arrays, stage, key = None, None, None
    if memmap_dir is not None:
        key = folder_key(csv_path, names, (height, width), only_with_original, object_masks_dir)
        arrays = _open_decoded(Path(memmap_dir), key, shapes)
        if arrays is None:
            stage = Path(memmap_dir) / f".{key}.{os.getpid()}.{threading.get_ident()}"
            stage.mkdir(parents=True, exist_ok=True)
            fill = {part: np.lib.format.open_memmap(stage / f"{part}.npy", mode="w+", dtype=dtype, shape=shape)
                    for part, (shape, dtype) in shapes.items()}
    else:
        fill = {part: np.empty(shape, dtype=dtype) for part, (shape, dtype) in shapes.items()}

    if arrays is None:
        images, clean = fill["images"], fill.get("clean")

        def load(i: int) -> None:
            array = read_image(paths[i], None if size is None else (width, height))
            if array.shape[:2] != (height, width):
                raise ValueError(
                    f"image {paths[i]} is {array.shape[1]}×{array.shape[0]}, the first image {width}×{height}; "
                    f"pass size= to resize all images"
                )
            images[i] = array.transpose(2, 0, 1)
            if clean is not None:
                clean[i] = read_image(original_paths[i], (width, height)).transpose(2, 0, 1)

        map_in_threads(load, n, workers)
        if "boxes" in fill:
            boxes = fill["boxes"]
            boxes[:] = False
            for i, (x0, y0, x1, y1) in enumerate(_boxes_at(table, bbox_ref, width, height)):
                boxes[i, y0:y1, x0:x1] = True
        if "objects" in fill:
            objects = fill["objects"]

            def load_mask(i: int) -> None:
                objects[i] = _read_foreground(mask_paths[i], (width, height))

            map_in_threads(load_mask, n, workers)
        arrays = fill
        if stage is not None:  # publish the files, then use them mapped copy-on-write
            for array in fill.values():
                array.flush()
            del fill, images, clean, arrays
            _publish_decoded(stage, Path(memmap_dir), key, list(shapes))
            arrays = _open_decoded(Path(memmap_dir), key, shapes)
            if arrays is None:
                raise OSError(f"memmap_dir: the decoded files of {root} could not be read back from {memmap_dir}")
    images, clean = arrays["images"], arrays.get("clean")
    artifact_masks, object_masks = arrays.get("boxes"), arrays.get("objects")

    return ImageData(
        images=torch.from_numpy(images),
        labels=torch.from_numpy(labels),
        object_masks=None if object_masks is None else torch.from_numpy(object_masks),
        artifact_masks=None if artifact_masks is None else torch.from_numpy(artifact_masks),
        clean_images=None if clean is None else torch.from_numpy(clean),
        names=names,
        meta={
            "source": "artifact_folder",
            "root": str(root),
            "image_dir": image_dir.name,
            "size": (height, width),
            "bbox_columns": None if bbox_ref is None else f"bbox{bbox_ref}_*",
            "limit": limit,
            "seed": seed,
            "with_original": [names[i] for i in np.flatnonzero(has_original)],
            "object_masks_dir": None if object_masks_dir is None else str(object_masks_dir),
            "images_file": None if memmap_dir is None else str(Path(memmap_dir) / f"{key}.images.npy"),
        },
    )


def folder_key(csv_path: Path, names: Sequence[str], size: tuple[int, int], only_with_original: bool = False,
               object_masks_dir: str | os.PathLike | None = None) -> str:
    """16 hex digits naming one decoding of a photo folder: its ``artifacts.csv`` (absolute path, size
    and modification time), the rows loaded, the output size, the trimap folder and the Pillow version
    (resampling)."""
    import hashlib
    import json

    import PIL

    stat = Path(csv_path).stat()
    blob = {"csv": str(Path(csv_path).resolve()), "csv_size": stat.st_size, "csv_mtime_ns": stat.st_mtime_ns,
            "names": hashlib.sha256("\n".join(names).encode()).hexdigest(), "size": list(size),
            "only_with_original": bool(only_with_original), "pillow": PIL.__version__,
            "object_masks_dir": None if object_masks_dir is None else str(Path(object_masks_dir).resolve())}
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:16]


def _open_decoded(folder: Path, key: str, shapes: dict) -> dict | None:
    """The decoded arrays of ``key`` (one ``<key>.<part>.npy`` per part of ``shapes``) memory-mapped
    copy-on-write, or None unless every part is there with its shape and type."""
    if not (folder / f"{key}.images.npy").is_file():  # published last: without it the set is incomplete
        return None
    out = {}
    for part, (shape, dtype) in shapes.items():
        try:
            array = np.load(folder / f"{key}.{part}.npy", mmap_mode="c")
        except (OSError, ValueError):
            return None
        if array.shape != tuple(shape) or array.dtype != np.dtype(dtype):
            return None
        out[part] = array
    return out


def _publish_decoded(stage: Path, folder: Path, key: str, parts: list[str]) -> None:
    """Rename the staged files to their final names, the images last: a reader that finds the images
    file finds a complete set."""
    import shutil

    for part in sorted(parts, key=lambda p: p == "images"):
        os.replace(stage / f"{part}.npy", folder / f"{key}.{part}.npy")
    shutil.rmtree(stage, ignore_errors=True)


class ArtifactFolderWriter:
    """Writes images with label boxes as a folder that :func:`load_artifact_folder` reads.

    Layout under ``out``::

        images/<name>.jpg           the photo, resized to size × size, with its label box
        original/<name>.jpg         the same photo without the box (only with save_originals=True)
        trimaps/<stem>.png          object mask at size × size: 1 = object, 2 = background, 3 = border
        artifact_masks/<stem>.png   the visible box: 255 inside, 0 outside
        artifacts.csv               the format's columns, boxes as bbox<size>_*
        metadata.csv                image, species, breed, split, box_*, polarity, seed

    Each image's box is drawn with :func:`~cascam.data.artifacts.artifact_rng` ``(seed, name)``, so
    runs are reproducible whatever the order or subset. :meth:`add` is thread-safe.

    Example:
        >>> writer = ArtifactFolderWriter("out", size=512, seed=0)
        >>> writer.add("Abyssinian_1.jpg", photo, label=0, trimap=trimap, breed="Abyssinian")
        >>> writer.finish()
    """

    def __init__(
        self,
        out: str | os.PathLike,
        size: int = 512,
        seed: int = 0,
        quality: int = 95,
        save_originals: bool = False,
        box_fraction: float = BOX_FRACTION,
        corner_range: tuple[tuple[float, float], tuple[float, float]] = CORNER_RANGE,
    ) -> None:
        self.out = Path(out)
        self.size, self.seed, self.quality = int(size), int(seed), int(quality)
        self.save_originals = save_originals
        self.box_fraction, self.corner_range = box_fraction, corner_range
        self._rows: list[dict] = []
        self._lock = threading.Lock()
        for sub in ("images", "trimaps", "artifact_masks") + (("original",) if save_originals else ()):
            (self.out / sub).mkdir(parents=True, exist_ok=True)

    def add(
        self,
        name: str,
        photo: Image.Image,
        label: int,
        trimap: Image.Image | np.ndarray | None = None,
        breed: str = "",
        split: str = "",
    ) -> dict:
        """Resize ``photo``, paste the box for ``label``, write the files; returns the csv row.

        ``trimap`` is either a trimap image (1 = object, 2 = background, 3 = border, any size) or a
        bool object mask; it is resized nearest to ``size × size``.
        """
        size = (self.size, self.size)
        photo = fit_photo(photo, size)
        with_box, box, mask = insert_label_box(
            photo, label, artifact_rng(self.seed, name), self.box_fraction, self.corner_range
        )
        stem = Path(name).stem
        with_box.save(self.out / "images" / name, quality=self.quality)
        if self.save_originals:
            photo.save(self.out / "original" / name, quality=self.quality)
        Image.fromarray(mask.astype(np.uint8) * 255).save(self.out / "artifact_masks" / f"{stem}.png")
        if trimap is not None:
            if isinstance(trimap, np.ndarray):
                trimap = Image.fromarray(np.where(trimap.astype(bool), 1, 2).astype(np.uint8))
            trimap.resize(size, Image.NEAREST).save(self.out / "trimaps" / f"{stem}.png")
        x0, y0, x1, y1 = box
        row = {
            "image": name,
            "species": CLASS_NAMES[label],
            "breed": breed,
            "split_hint": split,
            "has_original": int(self.save_originals),
            **{f"bbox{self.size}_{k}": v for k, v in zip(("xmin", "ymin", "xmax", "ymax"), box)},
            "artifact_area_frac": round((x1 - x0) * (y1 - y0) / (self.size * self.size), 5),
            "box_polarity": "white" if label == 0 else "black",
            "detect_ok": 1,
            "seed": self.seed,
        }
        with self._lock:
            self._rows.append(row)
        return row

    def finish(self) -> pd.DataFrame:
        """Write ``artifacts.csv`` and ``metadata.csv`` (rows sorted by image name); returns the table."""
        if not self._rows:
            raise ValueError("no images were added; nothing to write")
        table = pd.DataFrame(self._rows).sort_values("image", kind="stable").reset_index(drop=True)
        table.drop(columns=["seed"]).to_csv(self.out / "artifacts.csv", index=False)
        b = f"bbox{self.size}_"
        meta = pd.DataFrame(
            {
                "image": table["image"],
                "species": table["species"],
                "breed": table["breed"],
                "split": table["split_hint"],
                "box_xmin": table[b + "xmin"],
                "box_ymin": table[b + "ymin"],
                "box_xmax": table[b + "xmax"],
                "box_ymax": table[b + "ymax"],
                "polarity": table["box_polarity"],
                "seed": table["seed"],
            }
        )
        meta.to_csv(self.out / "metadata.csv", index=False)
        return table
