"""The cascade's images outside memory: x^(k) as an ``.npy`` file in the run folder, read and written
batch by batch, so that a run's memory does not grow with the number of images.

``run_cascade`` (with ``stream=True``, the default) writes x^(k+1) = MinMax(fill(x^(k), M_k)) batch by
batch into ``<run>/stream/x_KK.npy`` (float16 by default: ``stream_dtype``), marks it complete with
``x_KK.done`` once the last batch is on disk, trains model k+1 reading batches from that file, and
deletes the file of iteration k when it no longer needs it. A resumed run starts from the newest
complete file instead of recomputing the masks from the saved models. The run store deletes the
folder when the run is complete (:meth:`~cascam.store.RunRecord.mark_complete`) unless
``keep_stream`` asks to keep it.

The files are ordinary ``.npy`` arrays (``numpy.load(path, mmap_mode="r")`` opens one), but this module
reads and writes them with positional reads and writes (``os.preadv``/``os.pwrite``) rather than
through a memory map: mapped pages that were touched count as the process's resident memory until
the kernel drops them, while pages read through the file cache do not, so the process's peak memory
stays flat in N.

Two image sources share one small interface (``len``, ``shape``, ``dtype``, ``device``, indexing by a
slice or an index tensor, ``subset``, ``to(device)``, ``element_size``/``nelement``), which training,
evaluation and :func:`~cascam.cascade.cascade_step` use like a tensor:

- :class:`DiskImages`: rows of an ``.npy`` file (optionally a subset of them);
- :class:`TensorImages`: rows of a tensor in memory (e.g. the uint8 data set) without copying them.

:func:`iterate_batches` feeds training: for a tensor it indexes it as training always did; for a
source it reads the batches through a :class:`torch.utils.data.DataLoader` (``num_workers`` worker
processes, each keeping at most 2 batches ready), so at most ``2 × num_workers + 1`` batches are in
memory at once.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

__all__ = [
    "STREAM_DTYPES",
    "DiskImages",
    "TensorImages",
    "ImageWriter",
    "iterate_batches",
    "take",
    "stream_dir",
    "x_path",
    "open_x",
    "remove_x",
    "remove_stream",
    "read_batches",
]

#: The element types x^(k) may be stored in (``stream_dtype``); float16 keeps the multiplicative fill
#: to about 3 significant digits, uint8 rounds to 1/255, float32 is today's in-memory value exactly.
STREAM_DTYPES = ("float16", "float32", "uint8")
#: Worker processes of a DataLoader keep this many batches ready each.
PREFETCH = 2

_TORCH = {np.dtype(np.float16): torch.float16, np.dtype(np.float32): torch.float32, np.dtype(np.uint8): torch.uint8}


def _rows(index, n: int, key) -> np.ndarray:
    """The file/tensor rows that ``key`` (a slice, an int, an index tensor or array) selects."""
    base = np.arange(n) if index is None else index
    if isinstance(key, slice):
        return base[key]
    if isinstance(key, torch.Tensor):
        key = key.cpu().numpy()
    return base[np.asarray(key, dtype=np.int64)]


class _Source:
    """What both sources share: a row subset, the tensor-like attributes, staging on a device."""

    index: np.ndarray | None
    num_workers: int = 0

    def __len__(self) -> int:
        return self._n if self.index is None else len(self.index)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *self._row_shape)

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def element_size(self) -> int:
        return torch.empty(0, dtype=self.dtype).element_size()

    def nelement(self) -> int:
        return int(np.prod(self.shape))

    def __getitem__(self, key) -> torch.Tensor:
        if isinstance(key, (int, np.integer)):
            return self[torch.tensor([int(key)])][0]
        return self._read(_rows(self.index, self._n, key))

    def subset(self, index) -> _Source:
        """The rows ``index`` of this source (no data is read)."""
        rows = _rows(self.index, self._n, index)
        out = self._copy()
        out.index = rows
        return out

    def to(self, device: torch.device | str, chunk: int = 256) -> torch.Tensor:
        """All rows as one tensor on ``device`` (in the stored dtype), filled ``chunk`` rows at a time."""
        out = torch.empty(self.shape, dtype=self.dtype, device=device)
        for s in range(0, len(self), chunk):
            out[s : s + chunk] = self[s : s + chunk].to(device)
        return out

    def numpy(self) -> np.ndarray:
        return self.to("cpu").numpy()


class TensorImages(_Source):
    """Rows of an in-memory tensor (``index`` selects them, nothing is copied until a batch is read)."""

    def __init__(self, tensor: torch.Tensor, index=None, *, num_workers: int = 0) -> None:
        self.tensor = tensor
        self.index = None if index is None else np.asarray(index, dtype=np.int64)
        self.num_workers = num_workers
        self._n = len(tensor)
        self._row_shape = tuple(tensor.shape[1:])

    @property
    def dtype(self) -> torch.dtype:
        return self.tensor.dtype

    def _copy(self) -> TensorImages:
        return TensorImages(self.tensor, self.index, num_workers=self.num_workers)

    def _read(self, rows: np.ndarray) -> torch.Tensor:
        if len(rows) and (rows[1:] - rows[:-1] == 1).all():
            return self.tensor[int(rows[0]) : int(rows[-1]) + 1].clone()
        return self.tensor[torch.from_numpy(rows)]

    def __repr__(self) -> str:
        return f"TensorImages({tuple(self.shape)}, {self.dtype})"


def _header(path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """Shape, dtype and data offset of an ``.npy`` file (C order only)."""
    with open(path, "rb") as fh:
        version = np.lib.format.read_magic(fh)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(fh)
        if fortran:
            raise ValueError(f"stream: {path} is in Fortran order; expected C order")
        return tuple(shape), np.dtype(dtype), fh.tell()


class DiskImages(_Source):
    """Rows of an ``.npy`` file read with positional reads (never mapped), optionally a subset ``index``.

    A batch of rows is read into one new array; consecutive rows are read in one call. Safe to use in
    DataLoader worker processes (each opens the file itself).
    """

    def __init__(self, path: str | Path, index=None, *, num_workers: int = 0) -> None:
        self.path = Path(path)
        shape, dtype, offset = _header(self.path)
        self._n, self._row_shape, self.np_dtype, self._offset = shape[0], tuple(shape[1:]), dtype, offset
        self._row_bytes = int(np.prod(self._row_shape)) * dtype.itemsize
        self.index = None if index is None else np.asarray(index, dtype=np.int64)
        self.num_workers = num_workers
        self._fd: int | None = None
        self._pid: int | None = None

    @property
    def dtype(self) -> torch.dtype:
        return _TORCH[self.np_dtype]

    def __repr__(self) -> str:
        return f"DiskImages({str(self.path)!r}, {tuple(self.shape)}, {self.np_dtype})"

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_fd": None, "_pid": None}

    def _copy(self) -> DiskImages:
        out = DiskImages.__new__(DiskImages)
        out.__dict__.update(self.__getstate__())
        return out

    def _file(self) -> int:
        if self._fd is None or self._pid != os.getpid():
            self._fd, self._pid = os.open(self.path, os.O_RDONLY), os.getpid()
        return self._fd

    def close(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = self._pid = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 — interpreter shutdown
            pass

    def _read(self, rows: np.ndarray) -> torch.Tensor:
        fd, rb = self._file(), self._row_bytes
        out = np.empty((len(rows), *self._row_shape), dtype=self.np_dtype)
        flat = out.reshape(len(rows), -1).view(np.uint8)
        i = 0
        while i < len(rows):
            j = i + 1
            while j < len(rows) and rows[j] == rows[j - 1] + 1:
                j += 1
            if rows[i] < 0 or rows[j - 1] >= self._n:
                raise IndexError(f"stream: row {rows[i] if rows[i] < 0 else rows[j - 1]} outside {self.path} ({self._n} rows)")
            _read_fully(fd, memoryview(flat[i:j].reshape(-1)), self._offset + int(rows[i]) * rb)
            i = j
        return torch.from_numpy(out)


def _read_fully(fd: int, buf: memoryview, offset: int) -> None:
    done = 0
    while done < len(buf):
        got = os.preadv(fd, [buf[done:]], offset + done)
        if got <= 0:
            raise OSError(f"stream: the file ended {len(buf) - done} bytes early")
        done += got


class ImageWriter:
    """Writes an ``(N, …)`` array to ``path`` batch by batch (``writer[start:stop] = batch``), through a
    hidden temporary file that :meth:`finish` renames once every row is written; then it writes the
    completion marker (``<name>.done``, atomically), which is what :func:`open_x` trusts."""

    def __init__(self, path: str | Path, shape: tuple[int, ...], dtype: str | np.dtype) -> None:
        self.path, self.shape, self.np_dtype = Path(path), tuple(int(s) for s in shape), np.dtype(dtype)
        if self.np_dtype not in _TORCH:
            raise ValueError(f"stream_dtype: choose one of {', '.join(STREAM_DTYPES)}; got {dtype!r}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(f".{self.path.name}.tmp")
        _marker(self.path).unlink(missing_ok=True)  # an older file of this name is no longer trusted
        self._row_bytes = int(np.prod(self.shape[1:])) * self.np_dtype.itemsize
        header = {"descr": np.lib.format.dtype_to_descr(self.np_dtype), "fortran_order": False, "shape": self.shape}
        with open(self.tmp, "wb") as fh:
            np.lib.format.write_array_header_1_0(fh, header)
            self._offset = fh.tell()
            fh.truncate(self._offset + self.shape[0] * self._row_bytes)
        self._fd = os.open(self.tmp, os.O_WRONLY)
        self._written = np.zeros(self.shape[0], dtype=bool)

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def __len__(self) -> int:
        return self.shape[0]

    def __setitem__(self, key: slice, batch: torch.Tensor) -> None:
        start, stop, step = key.indices(self.shape[0])
        if step != 1 or tuple(batch.shape) != (stop - start, *self.shape[1:]):
            raise ValueError(f"stream: expected a batch of shape {(stop - start, *self.shape[1:])} for rows {start}:{stop}")
        if self.np_dtype == np.uint8:
            batch = (batch.float() * 255).round_().clamp_(0, 255)
        arr = np.ascontiguousarray(batch.detach().to("cpu", _TORCH[self.np_dtype]).numpy())
        view, offset, done = memoryview(arr.reshape(-1).view(np.uint8)), self._offset + start * self._row_bytes, 0
        while done < len(view):
            done += os.pwrite(self._fd, view[done:], offset + done)
        self._written[start:stop] = True

    def finish(self, **info) -> DiskImages:
        """Flush, rename into place and write the completion marker; returns a reader of the file."""
        if not self._written.all():
            raise ValueError(f"stream: {int((~self._written).sum())} row(s) of {self.path.name} were never written")
        os.fsync(self._fd)
        os.close(self._fd)
        self._fd = None
        os.replace(self.tmp, self.path)
        from .store import atomic_write_text

        marker = {"shape": list(self.shape), "dtype": self.np_dtype.name, **info}
        atomic_write_text(_marker(self.path), json.dumps(marker))
        return DiskImages(self.path)

    def abort(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self.tmp.unlink(missing_ok=True)


def _marker(path: Path) -> Path:
    return path.with_name(path.stem + ".done")


# ---------------------------------------------------------------------- the run folder's stream/
def stream_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "stream"


def x_path(run_dir: str | Path, k: int) -> Path:
    """Where x^(k) of a run lives (k ≥ 2; x^(1) is the data set itself)."""
    return stream_dir(run_dir) / f"x_{k:02d}.npy"


def open_x(run_dir: str | Path, k: int, dtype: str, shape: tuple[int, ...], *, num_workers: int = 0) -> DiskImages | None:
    """x^(k) of the run when its file is complete (marker present, header and size as the marker says)
    and of the expected ``dtype`` and ``shape``; else None."""
    path = x_path(run_dir, k)
    try:
        marker = json.loads(_marker(path).read_text())
        file_shape, file_dtype, offset = _header(path)
        size = path.stat().st_size
    except (OSError, ValueError):
        return None
    expected = offset + int(np.prod(file_shape)) * file_dtype.itemsize
    if (
        tuple(marker.get("shape", ())) != tuple(file_shape) or marker.get("dtype") != file_dtype.name
        or file_dtype.name != dtype or tuple(file_shape) != tuple(shape) or size != expected
    ):
        return None
    return DiskImages(path, num_workers=num_workers)


def remove_x(run_dir: str | Path, k: int) -> None:
    """Delete x^(k) (marker first, so a half-deleted file is never trusted)."""
    path = x_path(run_dir, k)
    _marker(path).unlink(missing_ok=True)
    path.unlink(missing_ok=True)


def remove_stream(run_dir: str | Path) -> None:
    """Delete the run's ``stream/`` folder (every x^(k) and temporary file)."""
    shutil.rmtree(stream_dir(run_dir), ignore_errors=True)


# ---------------------------------------------------------------------- reading batches
def take(images, index) -> torch.Tensor | _Source:
    """Rows ``index`` of ``images``: a tensor is indexed (a copy, as before); a source gives a view."""
    if isinstance(images, _Source):
        return images.subset(index)
    return images[torch.as_tensor(np.asarray(index))]


class _Batches(Dataset):
    """A map-style dataset whose items are whole batches: ``dataset[index_tensor]`` → the rows."""

    def __init__(self, source: _Source) -> None:
        self.source = source

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, idx: torch.Tensor) -> torch.Tensor:
        return self.source[idx]


def read_batches(source: _Source, batches: list[torch.Tensor], num_workers: int | None = None) -> Iterator[torch.Tensor]:
    """The rows of each index tensor in ``batches``, in order, read by a DataLoader (CPU tensors)."""
    workers = source.num_workers if num_workers is None else num_workers
    loader = DataLoader(
        _Batches(source), sampler=batches, batch_size=None, num_workers=workers,
        prefetch_factor=PREFETCH if workers else None,
    )
    yield from loader


def iterate_batches(
    images, order: torch.Tensor, batch_size: int, device: torch.device
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``(idx, batch on device)`` for the consecutive slices of ``order`` of ``batch_size`` indices; a
    trailing batch of one after other batches is dropped (one image breaks batch norm). A tensor is
    indexed where it lives; a :class:`DiskImages`/:class:`TensorImages` source is read through a
    DataLoader. Batches keep their stored dtype (uint8, float16 or float32)."""
    from .training import to_device

    batches = [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
    batches = [b for i, b in enumerate(batches) if len(b) >= 2 or i == 0]
    if isinstance(images, _Source):
        for idx, xb in zip(batches, read_batches(images, batches), strict=True):
            yield idx, to_device(xb, device)
        return
    for idx in batches:
        yield idx, to_device(images[idx.to(images.device)], device)
