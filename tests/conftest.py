"""Shared fixtures: a tiny learnable image set (a bright square marks class 1) and a temporary run store;
tests that need what a machine may lack are deselected there, so a run ends with nothing skipped."""

from __future__ import annotations

import os
import shutil

import pytest
import torch

from cascam.data import ImageData

os.environ.setdefault("MPLBACKEND", "Agg")
torch.set_num_threads(min(2, torch.get_num_threads()))

#: Markers (registered in pyproject.toml) of tests that need something outside the repository, and
#: whether this machine has it.
NEEDS = {
    "shared_data": lambda: bool(os.environ.get("CASCAM_ARTIFACT_FOLDER")),
    "cuda": torch.cuda.is_available,
    "chromium": lambda: shutil.which("chromium") is not None,
}


def pytest_collection_modifyitems(config, items):
    """Deselect (not skip) the tests whose need this machine lacks; pytest counts them as deselected."""
    lacking = {marker for marker, present in NEEDS.items() if not present()}
    if not lacking:
        return
    kept, dropped = [], []
    for item in items:
        (dropped if any(item.get_closest_marker(m) for m in lacking) else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def make_toy_data(n: int = 96, size: int = 32, seed: int = 0) -> ImageData:
    """Noise images; class-1 images carry a bright 8×8 square (the 'artifact') at a random place."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 120, (n, 3, size, size), generator=g, dtype=torch.uint8)
    labels = torch.arange(n) % 2
    artifact = torch.zeros(n, size, size, dtype=torch.bool)
    for i in range(n):
        r, c = torch.randint(0, size - 8, (2,), generator=g).tolist()
        if labels[i] == 1:
            images[i, :, r : r + 8, c : c + 8] = 255
        artifact[i, r : r + 8, c : c + 8] = labels[i] == 1
    return ImageData(images=images, labels=labels, artifact_masks=artifact)


@pytest.fixture
def toy_data() -> ImageData:
    return make_toy_data()


@pytest.fixture
def store(tmp_path):
    from cascam.store import RunStore

    return RunStore(tmp_path / "runs")
