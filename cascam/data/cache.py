"""A cache of generated synthetic data sets in the run store, so that the pages of the book (each its
own process) and repeated runs do not draw the same images again.

One file per data set, ``<store>/_data/<key>.npz`` (uncompressed; masks bit-packed): 2,400 images of
64 px take about 60 MB and load in well under a second, where drawing them takes 10–15 s on a CPU.
The key is a digest of every argument of :func:`~cascam.data.synthetic.generate_synthetic` that a
configuration sets, the drawing's version string and the numpy and Pillow versions (other versions
may draw other pixels), so a cached set is only ever the set the generator would return. Files are
written to a temporary name and renamed, so a reader never sees half a file; an unreadable file is
ignored and rewritten.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import PIL
import torch

from .base import ImageData

__all__ = ["cached_synthetic", "synthetic_key"]


def synthetic_key(**kwargs) -> str:
    """16 hex digits naming the synthetic data set that ``generate_synthetic(**kwargs)`` returns."""
    from .synthetic import SYNTHETIC_VERSIONS

    blob = {**kwargs, "drawing": SYNTHETIC_VERSIONS[kwargs["version"]], "numpy": np.__version__, "pillow": PIL.__version__}
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _pack(mask: torch.Tensor) -> np.ndarray:
    return np.packbits(mask.numpy(), axis=-1)


def _unpack(packed: np.ndarray, width: int) -> torch.Tensor:
    return torch.from_numpy(np.unpackbits(packed, axis=-1, count=width).astype(bool))


def _save(data: ImageData, path: Path) -> None:
    width = data.images.shape[-1]
    arrays = {"images": data.images.numpy(), "labels": data.labels.numpy()}
    if data.clean_images is not None:
        arrays["clean_images"] = data.clean_images.numpy()
    for name in ("object_masks", "artifact_masks"):
        if getattr(data, name) is not None:
            arrays[name] = _pack(getattr(data, name))
    for name, mask in data.parts.items():
        arrays[f"part:{name}"] = _pack(mask)
    header = {"width": width, "names": list(data.names), "class_names": list(data.class_names), "meta": data.meta}
    arrays["header"] = np.frombuffer(json.dumps(header, default=str).encode(), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load(path: Path) -> ImageData | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            header = json.loads(bytes(z["header"]).decode())
            width = header["width"]
            parts = {k.split(":", 1)[1]: _unpack(z[k], width) for k in z.files if k.startswith("part:")}
            return ImageData(
                images=torch.from_numpy(z["images"]),
                labels=torch.from_numpy(z["labels"]),
                object_masks=_unpack(z["object_masks"], width) if "object_masks" in z.files else None,
                artifact_masks=_unpack(z["artifact_masks"], width) if "artifact_masks" in z.files else None,
                clean_images=torch.from_numpy(z["clean_images"]) if "clean_images" in z.files else None,
                parts=parts,
                names=header["names"],
                class_names=tuple(header["class_names"]),
                meta=header["meta"],
            )
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError):
        return None


def cached_synthetic(cache_dir: str | Path | None, **kwargs) -> ImageData:
    """``generate_synthetic(**kwargs)``, read from ``cache_dir`` when an earlier call wrote it there
    (and written there otherwise); with ``cache_dir=None`` simply the generator's output."""
    from .synthetic import generate_synthetic

    if cache_dir is None:
        return generate_synthetic(**kwargs)
    path = Path(cache_dir) / f"{synthetic_key(**kwargs)}.npz"
    if path.exists() and (data := _load(path)) is not None:
        return data
    data = generate_synthetic(**kwargs)
    try:
        _save(data, path)
    except OSError:
        pass  # a read-only or full store: the data are still returned
    return data
