"""Real-data plumbing on tiny fixtures built here: label-box drawing, safe downloads and archives,
the Oxford-IIIT Pet loader (torchvision layout), the artifact-folder loader, and the prepare scripts.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from cascam.data.artifacts import BOX_FRACTION, artifact_rng, draw_label_tile, insert_label_box
from cascam.data.download import download_and_verify, safe_extract
from cascam.data.folder import load_artifact_folder, stratified_indices
from cascam.data.oxford import load_oxford_pets

REPO = Path(__file__).resolve().parents[1]


def load_script(name: str):
    """Import ``data_scripts/<name>.py`` (the scripts folder is not a package)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "data_scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def luma(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


# --------------------------------------------------------------------------------------------- artifacts


def test_cat_box_is_white_with_black_outline_and_black_text():
    image = Image.new("RGB", (512, 512), (90, 140, 60))
    out, (x0, y0, x1, y1), mask = insert_label_box(image, 0, rng=3)
    assert (x1 - x0, y1 - y0) == (86, 86)
    box = np.asarray(out)[y0:y1, x0:x1].astype(int)
    ring = np.concatenate([box[0], box[-1], box[:, 0], box[:, -1]])
    assert (ring == 0).all()  # 1-px black outline
    inner = box[1:-1, 1:-1]
    assert (inner == 255).all(axis=-1).mean() > 0.6  # white fill
    assert (inner.max(axis=-1) < 60).sum() > 50  # black text
    assert ((inner.max(-1) - inner.min(-1)) < 8).all()  # only grays: no colour leaks in
    assert mask.sum() == 86 * 86 and mask[y0:y1, x0:x1].all()
    outside = np.asarray(out)[~mask]
    assert (outside == (90, 140, 60)).all()  # the photo is untouched elsewhere
    assert np.asarray(image).max() == 140  # the input is not modified


def test_dog_box_is_black_with_white_text():
    out, (x0, y0, x1, y1), _ = insert_label_box(Image.new("RGB", (512, 512), (90, 140, 60)), 1, rng=4)
    box = np.asarray(out)[y0:y1, x0:x1].astype(int)
    ring = np.concatenate([box[0], box[-1], box[:, 0], box[:, -1]])
    assert (ring == 0).all()
    assert (box == 0).all(axis=-1).mean() > 0.6  # black fill
    assert (box.min(axis=-1) > 200).sum() > 50  # white text


def test_label_words_differ_and_tile_is_square():
    cat, dog = np.asarray(draw_label_tile(0, 86)), np.asarray(draw_label_tile(1, 86))
    assert cat.shape == dog.shape == (86, 86, 3)
    cat_ink = cat[1:-1, 1:-1, 0] < 128
    dog_ink = dog[1:-1, 1:-1, 0] > 128
    assert cat_ink.any() and dog_ink.any() and (cat_ink != dog_ink).sum() > 20
    with pytest.raises(ValueError, match="label"):
        draw_label_tile(2, 86)


@pytest.mark.parametrize("side,expected", [(512, 86), (224, 38), (64, 11)])
def test_box_side_is_86_of_512(side, expected):
    _, (x0, y0, x1, y1), mask = insert_label_box(
        Image.new("RGB", (side, side)), 0, rng=0, corner_range=((0, 0.5),) * 2
    )
    assert x1 - x0 == y1 - y0 == expected == round(BOX_FRACTION * side)
    assert mask.sum() == expected**2


def test_default_placement_follows_the_paper_and_the_border_may_cut():
    boxes = np.array([insert_label_box(Image.new("RGB", (512, 512)), 1, rng=s)[1] for s in range(300)])
    assert boxes[:, 0].min() >= 0 and boxes[:, 0].max() <= 358  # x in [0, 0.7 W]
    assert boxes[:, 1].max() <= 460  # y in [0, 0.9 H]
    assert (boxes[:, 2] - boxes[:, 0] == 86).all()  # never cut left or right
    cut = boxes[:, 3] - boxes[:, 1] < 86
    assert cut.any() and (boxes[cut, 3] == 512).all()  # cut only by the bottom edge


def test_any_border_may_cut_with_a_wider_corner_range():
    image = Image.new("RGB", (100, 100), (128, 128, 128))
    out, box, mask = insert_label_box(
        image, 0, rng=0, box_fraction=0.3, corner_range=((-0.2, -0.2), (-0.25, -0.25))
    )
    assert box == (0, 0, 10, 5)
    assert mask.sum() == 50 and mask[:5, :10].all()
    assert (np.asarray(out)[:5, :10] != 128).any(axis=-1).all()


def test_artifacts_are_seeded():
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    a = insert_label_box(image, 0, rng=artifact_rng(7, "Abyssinian_1.jpg"))
    b = insert_label_box(image, 0, rng=artifact_rng(7, "Abyssinian_1.jpg"))
    assert a[1] == b[1] and np.array_equal(np.asarray(a[0]), np.asarray(b[0]))
    boxes = {insert_label_box(image, 0, rng=artifact_rng(7, f"img_{k}.jpg"))[1] for k in range(10)}
    assert len(boxes) > 5


# --------------------------------------------------------------------------------------------- download


def test_download_and_verify_file_url(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"cascam" * 1000)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    dest = download_and_verify(src.as_uri(), tmp_path / "out" / "file.bin", sha256=digest)
    assert dest.read_bytes() == src.read_bytes()
    md5 = hashlib.md5(src.read_bytes()).hexdigest()
    assert download_and_verify(src.as_uri(), tmp_path / "md5.bin", md5=md5.upper()).exists()


def test_download_and_verify_wrong_checksum_raises_and_leaves_nothing(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"payload")
    dest = tmp_path / "file.bin"
    with pytest.raises(ValueError, match="checksum mismatch"):
        download_and_verify(src.as_uri(), dest, sha256="0" * 64)
    assert not dest.exists() and not (tmp_path / "file.bin.part").exists()


def test_download_and_verify_keeps_a_verified_file(tmp_path, monkeypatch):
    import urllib.request

    dest = tmp_path / "file.bin"
    dest.write_bytes(b"already here")

    def no_network(*args, **kwargs):
        raise AssertionError("urlopen must not be called for a verified file")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    digest = hashlib.sha256(b"already here").hexdigest()
    assert download_and_verify("https://example.invalid/file.bin", dest, sha256=digest) == dest


def test_download_and_verify_monkeypatched_urlopen(tmp_path, monkeypatch):
    import urllib.request

    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: io.BytesIO(b"remote bytes"))
    digest = hashlib.md5(b"remote bytes").hexdigest()
    assert (
        download_and_verify("https://x.invalid/a", tmp_path / "a", md5=digest).read_bytes() == b"remote bytes"
    )
    with pytest.raises(ValueError, match="md5"):
        download_and_verify("https://x.invalid/b", tmp_path / "b", md5="f" * 32)
    with pytest.raises(ValueError, match="one checksum"):
        download_and_verify("https://x.invalid/c", tmp_path / "c", sha256="a", md5="b")


def _tar_with(path: Path, *members: tuple[str, str, str]) -> Path:
    """A tar.gz with members given as (kind, name, data-or-link-target)."""
    with tarfile.open(path, "w:gz") as tar:
        for kind, name, payload in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                data = payload.encode()
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
                info.linkname = payload
                tar.addfile(info)
    return path


@pytest.mark.parametrize(
    "member,reason",
    [
        (("file", "/abs/evil.txt", "x"), "absolute"),
        (("file", "data/../../evil.txt", "x"), r"'\.\.'"),
        (("symlink", "data/link", "../../outside"), "outside"),
        (("symlink", "data/abslink", "/etc/passwd"), "absolute"),
        (("hardlink", "data/hard", "../outside"), "outside"),
    ],
)
def test_safe_extract_refuses_malicious_tar(tmp_path, member, reason):
    archive = _tar_with(tmp_path / "evil.tar.gz", ("file", "data/ok.txt", "fine"), member)
    dest = tmp_path / "dest"
    with pytest.raises(ValueError, match=reason) as info:
        safe_extract(archive, dest)
    assert member[1] in str(info.value)
    assert not (dest / "data" / "ok.txt").exists()  # checked before anything is written
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "outside").exists()


def test_safe_extract_accepts_benign_tar_and_zip(tmp_path):
    archive = _tar_with(
        tmp_path / "good.tar.gz",
        ("dir", "data", ""),
        ("file", "data/a.txt", "alpha"),
        ("symlink", "data/link.txt", "a.txt"),
    )
    safe_extract(archive, tmp_path / "tar")
    assert (tmp_path / "tar" / "data" / "a.txt").read_text() == "alpha"
    assert (tmp_path / "tar" / "data" / "link.txt").read_text() == "alpha"

    with zipfile.ZipFile(tmp_path / "good.zip", "w") as zf:
        zf.writestr("sub/b.txt", "beta")
    paths = safe_extract(tmp_path / "good.zip", tmp_path / "zip")
    assert (tmp_path / "zip" / "sub" / "b.txt").read_text() == "beta" and len(paths) == 1


def test_safe_extract_refuses_malicious_zip(tmp_path):
    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as zf:
        zf.writestr("ok.txt", "fine")
        zf.writestr("../evil.txt", "x")
    with pytest.raises(ValueError, match=r"\.\./evil\.txt"):
        safe_extract(tmp_path / "evil.zip", tmp_path / "dest")
    assert not (tmp_path / "evil.txt").exists()
    (tmp_path / "plain.txt").write_text("not an archive")
    with pytest.raises(ValueError, match="neither"):
        safe_extract(tmp_path / "plain.txt", tmp_path / "dest")


# -------------------------------------------------------------------------------- Oxford-IIIT Pet

# name, (width, height), foreground rectangle (x0, y0, x1, y1) in trimap pixels, split
OXFORD_FIXTURE = [
    ("Abyssinian_1", (60, 40), (10, 5, 40, 30), "trainval"),
    ("Bengal_2", (48, 48), (0, 0, 24, 24), "trainval"),
    ("beagle_3", (40, 60), (5, 10, 35, 50), "trainval"),
    ("pug_4", (50, 50), (20, 20, 50, 50), "trainval"),
    ("Bengal_5", (64, 40), (30, 0, 64, 20), "test"),
    ("beagle_6", (40, 40), (8, 8, 32, 32), "test"),
]


def _trimap(size: tuple[int, int], rect: tuple[int, int, int, int]) -> np.ndarray:
    """1 = pet inside ``rect``, 3 = a 1-px border around it, 2 = background."""
    w, h = size
    trimap = np.full((h, w), 2, np.uint8)
    x0, y0, x1, y1 = rect
    trimap[max(y0 - 1, 0) : y1 + 1, max(x0 - 1, 0) : x1 + 1] = 3
    trimap[y0:y1, x0:x1] = 1
    return trimap


@pytest.fixture
def oxford_root(tmp_path) -> Path:
    """A tiny Oxford-IIIT Pet in torchvision's layout (root/oxford-iiit-pet/{images,annotations})."""
    base = tmp_path / "torchvision" / "oxford-iiit-pet"
    (base / "images").mkdir(parents=True)
    (base / "annotations" / "trimaps").mkdir(parents=True)
    rng = np.random.default_rng(0)
    breeds = sorted({n.rsplit("_", 1)[0] for n, *_ in OXFORD_FIXTURE}, key=str.lower)
    lines = {"trainval": [], "test": []}
    for k, (name, (w, h), rect, split) in enumerate(OXFORD_FIXTURE):
        pixels = rng.integers(60, 200, (h, w, 3), dtype=np.uint8)
        photo = Image.fromarray(pixels)
        if k == 1:
            photo = photo.convert("L")  # Oxford has grayscale JPEGs; torchvision converts them
        photo.save(base / "images" / f"{name}.jpg", quality=95)
        Image.fromarray(_trimap((w, h), rect)).save(base / "annotations" / "trimaps" / f"{name}.png")
        breed = name.rsplit("_", 1)[0]
        species = 1 if name[0].isupper() else 2
        lines[split].append(f"{name} {breeds.index(breed) + 1} {species} 1")
    for split, rows in lines.items():
        (base / "annotations" / f"{split}.txt").write_text("\n".join(rows) + "\n")
    header = "#Image CLASS-ID SPECIES BREED ID\n#ID: 1:37 Class ids\n"
    (base / "annotations" / "list.txt").write_text(
        header + "\n".join(lines["trainval"] + lines["test"]) + "\n"
    )
    return tmp_path / "torchvision"


def test_load_oxford_pets_reads_torchvision_layout(oxford_root):
    data = load_oxford_pets(oxford_root, split="trainval", size=32)
    assert data.names == ["Abyssinian_1.jpg", "Bengal_2.jpg", "beagle_3.jpg", "pug_4.jpg"]
    assert data.labels.tolist() == [0, 0, 1, 1]
    assert data.images.shape == (4, 3, 32, 32) and data.artifact_masks is None and data.clean_images is None
    for k, (name, size, rect, _) in enumerate(OXFORD_FIXTURE[:4]):
        expected = np.asarray(Image.fromarray(_trimap(size, rect)).resize((32, 32), Image.NEAREST)) == 1
        assert np.array_equal(data.object_masks[k].numpy(), expected), name
    gray = data.images[1].numpy()
    assert (gray[0] == gray[1]).all() and (gray[1] == gray[2]).all()  # grayscale → RGB

    everything = load_oxford_pets(oxford_root, split="all", size=16)
    assert len(everything) == 6 and everything.names[-2:] == ["Bengal_5.jpg", "beagle_6.jpg"]
    assert load_oxford_pets(oxford_root, split="test", size=16).labels.tolist() == [0, 1]


def test_load_oxford_pets_with_artifacts(oxford_root):
    a = load_oxford_pets(oxford_root, split="all", size=64, artifacts=True, seed=1)
    b = load_oxford_pets(oxford_root, split="all", size=64, artifacts=True, seed=1)
    assert a.artifact_masks.sum(dim=(1, 2)).min() > 0
    assert a.images.equal(b.images)
    changed = (a.images != a.clean_images).any(dim=1)
    assert not (changed & ~a.artifact_masks).any()  # the box is the only change
    box_pixels = a.images.permute(0, 2, 3, 1)[a.artifact_masks].float()
    assert box_pixels.shape[0] == int(a.artifact_masks.sum())


def test_load_oxford_pets_missing_data_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="oxford-iiit-pet"):
        load_oxford_pets(tmp_path, split="trainval")
    with pytest.raises(ValueError, match="split"):
        load_oxford_pets(tmp_path, split="val")


def test_prepare_oxford_pets_script(oxford_root, tmp_path):
    script = load_script("prepare_oxford_pets")
    out = tmp_path / "pets64"
    assert (
        script.main(
            [
                "--root",
                str(oxford_root),
                "--out",
                str(out),
                "--size",
                "64",
                "--seed",
                "3",
                "--save-originals",
                "--workers",
                "2",
            ]
        )
        == 0
    )
    table = pd.read_csv(out / "artifacts.csv", keep_default_na=False)
    assert table["image"].tolist() == sorted(n + ".jpg" for n, *_ in OXFORD_FIXTURE)
    assert {"bbox64_xmin", "bbox64_ymin", "bbox64_xmax", "bbox64_ymax", "has_original"} <= set(table.columns)
    meta = pd.read_csv(out / "metadata.csv", keep_default_na=False)
    assert list(meta.columns[:3]) == ["image", "species", "breed"] and (meta["seed"] == 3).all()
    assert set(meta["split"]) == {"trainval", "test"}
    for sub in ("images", "original", "trimaps", "artifact_masks"):
        assert len(list((out / sub).iterdir())) == len(OXFORD_FIXTURE)

    data = load_artifact_folder(out, object_masks_dir=out / "trimaps")
    assert data.meta["bbox_columns"] == "bbox64_*" and data.clean_images is not None
    assert data.labels.tolist() == [0, 0, 0, 1, 1, 1]  # Abyssinian, Bengal ×2, beagle ×2, pug
    for k, name in enumerate(data.names):
        size, rect = next((s, r) for n, s, r, _ in OXFORD_FIXTURE if n + ".jpg" == name)
        expected = np.asarray(Image.fromarray(_trimap(size, rect)).resize((64, 64), Image.NEAREST)) == 1
        assert np.array_equal(data.object_masks[k].numpy(), expected), name
        saved = np.asarray(Image.open(out / "artifact_masks" / name.replace(".jpg", ".png"))) > 0
        assert np.array_equal(saved, data.artifact_masks[k].numpy()), name
        inside = luma(data.images[k].permute(1, 2, 0).numpy().astype(float))[data.artifact_masks[k].numpy()]
        assert (np.median(inside) > 200) if data.labels[k] == 0 else (np.median(inside) < 50), name

    again = tmp_path / "again"
    script.main(
        ["--root", str(oxford_root), "--out", str(again), "--size", "64", "--seed", "3", "--limit", "2"]
    )
    first_two = pd.read_csv(again / "artifacts.csv")
    merged = first_two.merge(table, on="image", suffixes=("", "_all"))
    assert len(merged) == 2 and (merged["bbox64_xmin"] == merged["bbox64_xmin_all"]).all()  # per-image seeds


# --------------------------------------------------------------------------------------------- COCO


def _polygon(x0: int, y0: int, x1: int, y1: int) -> list[list[float]]:
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


@pytest.fixture
def coco_fixture(tmp_path) -> tuple[Path, Path]:
    """4 images: cats only (2 instances), dog only (polygon + crowd RLE), cat and dog, person only."""
    images_dir = tmp_path / "val2017"
    images_dir.mkdir()
    rng = np.random.default_rng(1)
    w, h = 80, 60
    images = []
    for image_id in (1, 2, 3, 4):
        name = f"{image_id:012d}.jpg"
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(images_dir / name)
        images.append({"id": image_id, "file_name": name, "width": w, "height": h})
    crowd = np.zeros((h, w), np.uint8)
    crowd[40:55, 60:75] = 1
    counts, flat, run, value = [], crowd.flatten(order="F"), 0, 0
    for v in flat:  # uncompressed COCO RLE, column-major, starting with zeros
        if v != value:
            counts.append(run)
            run, value = 0, v
        run += 1
    counts.append(run)
    annotations = [
        {"id": 10, "image_id": 1, "category_id": 17, "segmentation": _polygon(5, 5, 25, 20), "iscrowd": 0},
        {"id": 11, "image_id": 1, "category_id": 17, "segmentation": _polygon(50, 30, 70, 50), "iscrowd": 0},
        {"id": 12, "image_id": 2, "category_id": 18, "segmentation": _polygon(10, 10, 40, 40), "iscrowd": 0},
        {
            "id": 13,
            "image_id": 2,
            "category_id": 18,
            "segmentation": {"counts": counts, "size": [h, w]},
            "iscrowd": 1,
        },
        {"id": 14, "image_id": 3, "category_id": 17, "segmentation": _polygon(0, 0, 20, 20), "iscrowd": 0},
        {"id": 15, "image_id": 3, "category_id": 18, "segmentation": _polygon(30, 30, 60, 50), "iscrowd": 0},
        {"id": 16, "image_id": 4, "category_id": 1, "segmentation": _polygon(0, 0, 20, 20), "iscrowd": 0},
        {"id": 17, "image_id": 2, "category_id": 1, "segmentation": _polygon(60, 0, 80, 20), "iscrowd": 0},
    ]
    for ann in annotations:
        ann["area"], ann["bbox"] = 1.0, [0, 0, 1, 1]
    categories = [{"id": 1, "name": "person"}, {"id": 17, "name": "cat"}, {"id": 18, "name": "dog"}]
    path = tmp_path / "instances_val2017.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path, images_dir


def test_prepare_coco_catdog(coco_fixture, tmp_path):
    pytest.importorskip("pycocotools", reason="prepare_coco_catdog needs pycocotools")
    from pycocotools.coco import COCO

    script = load_script("prepare_coco_catdog")
    annotations, images_dir = coco_fixture
    coco = COCO(str(annotations))
    assert script.select_cat_dog_images(coco) == [(1, 0), (2, 1)]  # image 3 has both, 4 neither

    cat_mask = script.class_mask(coco, 1, 17)
    assert cat_mask[6:20, 6:25].all() and cat_mask[31:50, 51:70].all()  # both instances
    assert not cat_mask[25:30].any() and not cat_mask[:, 30:49].any()
    dog_mask = script.class_mask(coco, 2, 18)
    assert dog_mask[11:40, 11:40].all() and dog_mask[40:55, 60:75].all()  # polygon ∪ crowd region
    assert not dog_mask[:, 76:].any() and not dog_mask[:5].any()  # the person is not a dog
    assert dog_mask.sum() < 35 * 35 + 15 * 15

    out = tmp_path / "coco40"
    assert (
        script.main(
            [
                "--annotations",
                str(annotations),
                "--images",
                str(images_dir),
                "--out",
                str(out),
                "--size",
                "40",
                "--workers",
                "1",
            ]
        )
        == 0
    )
    data = load_artifact_folder(out, object_masks_dir=out / "trimaps")
    assert data.names == ["000000000001.jpg", "000000000002.jpg"] and data.labels.tolist() == [0, 1]
    for k, mask in enumerate((cat_mask, dog_mask)):
        expected = np.asarray(Image.fromarray(mask.astype(np.uint8)).resize((40, 40), Image.NEAREST)) == 1
        assert np.array_equal(data.object_masks[k].numpy(), expected)
    assert data.artifact_masks.sum(dim=(1, 2)).min() > 0


def test_prepare_coco_catdog_needs_inputs(tmp_path):
    script = load_script("prepare_coco_catdog")
    with pytest.raises(SystemExit):
        script.parse_args(["--out", str(tmp_path)])
    args = script.parse_args(
        ["--download", "val2017", "--download-dir", str(tmp_path), "--out", str(tmp_path)]
    )
    assert args.annotations == tmp_path / "annotations" / "instances_val2017.json"
    assert args.images == tmp_path / "val2017"


# ------------------------------------------------------------------------------ artifact folders


def _write_artifact_folder(root: Path, n_cats: int = 2, n_dogs: int = 6, side: int = 32) -> pd.DataFrame:
    """A shared-format folder: with_artifact/, original/ for every other image, bbox64_* and bbox32_*."""
    (root / "with_artifact").mkdir(parents=True)
    (root / "original").mkdir()
    rng = np.random.default_rng(0)
    rows = []
    names = [f"Cat_{i}.jpg" for i in range(n_cats)] + [f"dog_{i}.jpg" for i in range(n_dogs)]
    for k, name in enumerate(names):
        label = 0 if name[0].isupper() else 1
        photo = Image.fromarray(rng.integers(60, 200, (side, side, 3), dtype=np.uint8))
        with_box, box, _ = insert_label_box(photo, label, rng=k, box_fraction=0.25)
        with_box.save(root / "with_artifact" / name, quality=95)
        if k % 2 == 0:
            photo.save(root / "original" / name, quality=95)
        row = {
            "image": name,
            "species": ("cat", "dog")[label],
            "breed": name.split("_")[0],
            "split_hint": "",
            "has_original": int(k % 2 == 0),
        }
        for key, value in zip(("xmin", "ymin", "xmax", "ymax"), box):
            row[f"bbox64_{key}"] = 2 * value
            row[f"bbox{side}_{key}"] = value
        rows.append(row)
    table = pd.DataFrame(rows)
    table.to_csv(root / "artifacts.csv", index=False)
    return table



def test_folder_format_names_keep_their_old_import_paths():
    import cascam.data
    import cascam.data.folder as folder
    import cascam.data.oxford as oxford

    for name in ("ArtifactFolderWriter", "load_artifact_folder", "label_from_name", "stratified_indices"):
        assert getattr(oxford, name) is getattr(folder, name)
    assert cascam.data.load_artifact_folder is folder.load_artifact_folder
    assert cascam.data.ArtifactFolderWriter is folder.ArtifactFolderWriter

def test_load_artifact_folder_reads_the_shared_format(tmp_path):
    table = _write_artifact_folder(tmp_path / "f")
    data = load_artifact_folder(tmp_path / "f")
    assert data.names == table["image"].tolist() and data.labels.tolist() == [0, 0] + [1] * 6
    assert data.images.shape == (8, 3, 32, 32) and data.object_masks is None
    assert data.meta["bbox_columns"] == "bbox32_*"
    for k, row in table.iterrows():
        expected = np.zeros((32, 32), bool)
        expected[row.bbox32_ymin : row.bbox32_ymax, row.bbox32_xmin : row.bbox32_xmax] = True
        assert np.array_equal(data.artifact_masks[k].numpy(), expected)
    assert data.clean_images is None and data.meta["with_original"] == table["image"][::2].tolist()

    paired = load_artifact_folder(tmp_path / "f", only_with_original=True)
    assert len(paired) == 4 and paired.clean_images is not None
    diff = (paired.images.int() - paired.clean_images.int()).abs().amax(dim=1) > 40
    assert not (diff & ~paired.artifact_masks).any()  # the pair differs only at the box


def test_load_artifact_folder_scales_other_bbox_columns(tmp_path):
    table = _write_artifact_folder(tmp_path / "f")
    table.drop(columns=[c for c in table.columns if c.startswith("bbox32_")]).to_csv(
        tmp_path / "f" / "artifacts.csv", index=False
    )
    data = load_artifact_folder(tmp_path / "f", size=24)  # 64 → 24: scaled by 3/8, rounded outward
    assert data.meta["bbox_columns"] == "bbox64_*" and data.images.shape[-1] == 24
    row = table.iloc[0]
    x0, x1 = int(np.floor(row.bbox64_xmin * 3 / 8)), int(np.ceil(row.bbox64_xmax * 3 / 8))
    y0, y1 = int(np.floor(row.bbox64_ymin * 3 / 8)), int(np.ceil(row.bbox64_ymax * 3 / 8))
    ys, xs = np.nonzero(data.artifact_masks[0].numpy())
    assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x0, y0, x1, y1)


def test_load_artifact_folder_limit_is_stratified_and_seeded(tmp_path):
    _write_artifact_folder(tmp_path / "f", n_cats=4, n_dogs=12)
    a = load_artifact_folder(tmp_path / "f", limit=8, seed=1)
    assert len(a) == 8 and a.labels.tolist().count(0) == 2  # 25% cats, like the folder
    assert a.names == load_artifact_folder(tmp_path / "f", limit=8, seed=1).names
    assert a.names == sorted(a.names, key=lambda n: (n[0].islower(), int(n.split("_")[1][:-4])))  # file order
    assert any(load_artifact_folder(tmp_path / "f", limit=8, seed=s).names != a.names for s in range(2, 6))
    idx = stratified_indices(np.array([0] * 3 + [1] * 7), 5, seed=0)
    assert len(idx) == 5 and len(set(idx)) == 5


def test_load_artifact_folder_pairs_object_masks(tmp_path):
    table = _write_artifact_folder(tmp_path / "f")
    masks = tmp_path / "trimaps"
    masks.mkdir()
    for k, name in enumerate(table["image"]):
        trimap = np.full((64, 64), 2, np.uint8)
        trimap[: 8 * (k + 1), :32] = 1
        Image.fromarray(trimap).save(masks / name.replace(".jpg", ".png"))
    data = load_artifact_folder(tmp_path / "f", object_masks_dir=masks)
    assert data.object_masks.shape == (8, 32, 32)
    assert data.object_masks.sum(dim=(1, 2)).tolist() == [4 * (k + 1) * 16 for k in range(8)]
    for _ in range(2):  # decoded into memory-mapped files, then read back from them: the same masks
        mapped = load_artifact_folder(tmp_path / "f", object_masks_dir=masks, memmap_dir=tmp_path / "cache")
        assert torch.equal(mapped.object_masks, data.object_masks) and torch.equal(mapped.artifact_masks, data.artifact_masks)
    assert load_artifact_folder(tmp_path / "f", memmap_dir=tmp_path / "cache").object_masks is None  # no trimaps asked
    (masks / "dog_5.png").unlink()
    with pytest.raises(FileNotFoundError, match="dog_5"):
        load_artifact_folder(tmp_path / "f", object_masks_dir=masks)


def test_load_artifact_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_artifact_folder(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="artifacts.csv"):
        load_artifact_folder(tmp_path / "empty")

    _write_artifact_folder(tmp_path / "f")
    (tmp_path / "f" / "with_artifact" / "dog_3.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="dog_3.jpg"):
        load_artifact_folder(tmp_path / "f")

    _write_artifact_folder(tmp_path / "g")
    path = tmp_path / "g" / "with_artifact" / "dog_4.jpg"
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(ValueError, match="dog_4.jpg"):
        load_artifact_folder(tmp_path / "g")
    path.write_bytes(b"not a jpeg at all")
    with pytest.raises(ValueError, match="dog_4.jpg"):
        load_artifact_folder(tmp_path / "g")

    _write_artifact_folder(tmp_path / "h")
    (tmp_path / "h" / "original" / "Cat_0.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="Cat_0.jpg"):
        load_artifact_folder(tmp_path / "h")

    table = _write_artifact_folder(tmp_path / "i")
    table["has_original"] = ""  # an empty flag means no original
    table.loc[3, "bbox32_xmin"] = None
    table.to_csv(tmp_path / "i" / "artifacts.csv", index=False)
    with pytest.raises(ValueError, match="bbox32_.*dog_1.jpg"):
        load_artifact_folder(tmp_path / "i")


def test_load_artifact_folder_converts_grayscale_and_rgba(tmp_path):
    table = _write_artifact_folder(tmp_path / "f")
    folder = tmp_path / "f" / "with_artifact"
    gray = Image.open(folder / "dog_1.jpg").convert("L")
    gray.save(folder / "dog_1.jpg")
    rgba = Image.open(folder / "dog_2.jpg").convert("RGBA")
    rgba.putalpha(0)  # fully transparent: the colours must survive anyway
    rgba.save(folder / "dog_2.png")
    table.loc[table["image"] == "dog_2.jpg", "has_original"] = 0
    table["image"] = table["image"].replace({"dog_2.jpg": "dog_2.png"})
    table.to_csv(tmp_path / "f" / "artifacts.csv", index=False)
    data = load_artifact_folder(tmp_path / "f")
    g = data.images[data.names.index("dog_1.jpg")].numpy()
    assert g.shape == (3, 32, 32) and (g[0] == g[1]).all() and (g[1] == g[2]).all()
    c = data.images[data.names.index("dog_2.png")].numpy().transpose(1, 2, 0)
    assert np.abs(c.astype(int) - np.asarray(rgba.convert("RGB")).astype(int)).max() == 0


def test_load_artifact_folder_needs_same_size_without_size(tmp_path):
    _write_artifact_folder(tmp_path / "f")
    path = tmp_path / "f" / "with_artifact" / "dog_0.jpg"
    Image.open(path).resize((40, 40)).save(path)
    with pytest.raises(ValueError, match="dog_0.jpg"):
        load_artifact_folder(tmp_path / "f")
    assert load_artifact_folder(tmp_path / "f", size=32).images.shape == (8, 3, 32, 32)


@pytest.mark.shared_data
def test_shared_folder_boxes_match_pixels():
    """The published 224 px folder named by $CASCAM_ARTIFACT_FOLDER: boxes, labels and box colours agree."""
    folder = Path(os.environ["CASCAM_ARTIFACT_FOLDER"])
    data = load_artifact_folder(folder, limit=20, seed=0)
    table = pd.read_csv(folder / "artifacts.csv").set_index("image")
    assert (
        len(data) == 20
        and data.images.shape[1:] == (3, 224, 224)
        and data.meta["bbox_columns"] == "bbox224_*"
    )
    for k, name in enumerate(data.names):
        row = table.loc[name]
        assert data.labels[k].item() == (0 if row.species == "cat" else 1) == (0 if name[0].isupper() else 1)
        ys, xs = np.nonzero(data.artifact_masks[k].numpy())
        assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == tuple(
            row[f"bbox224_{s}"] for s in ("xmin", "ymin", "xmax", "ymax")
        )
        if not row.detect_ok:
            continue
        inside = luma(data.images[k].permute(1, 2, 0).numpy().astype(float))[data.artifact_masks[k].numpy()]
        if data.labels[k] == 0:
            assert np.median(inside) > 200 and row.box_polarity == "white", name
        else:
            assert np.median(inside) < 50 and row.box_polarity == "black", name


def test_explain_reads_the_pixels_training_read(tmp_path):
    """One reader: a photo folder resized for training and the same files read by `cascam explain`
    (data.images.read_images) give identical pixels, JPEG draft decoding and Lanczos included."""
    from cascam.data.images import RESAMPLE, read_images

    _write_artifact_folder(tmp_path / "f", side=96)
    data = load_artifact_folder(tmp_path / "f", size=40)
    files = [tmp_path / "f" / "with_artifact" / name for name in data.names]
    images, names = read_images(files, size=40)
    assert names == [Path(n).stem for n in data.names]
    assert torch.equal(images, data.images)
    # ...and that reader is Lanczos: a bilinear resize of the same file differs
    with Image.open(files[0]) as im:
        im.draft("RGB", (40, 40))
        bilinear = np.asarray(im.convert("RGB").resize((40, 40), Image.Resampling.BILINEAR))
    assert RESAMPLE == Image.Resampling.LANCZOS
    assert not np.array_equal(images[0].permute(1, 2, 0).numpy(), bilinear)


def test_a_photo_folder_is_decoded_once_into_memory_mapped_files(tmp_path, monkeypatch):
    import cascam.data.folder as folder

    _write_artifact_folder(tmp_path / "f")
    in_ram = load_artifact_folder(tmp_path / "f", size=32, only_with_original=True)
    cache = tmp_path / "cache"
    first = load_artifact_folder(tmp_path / "f", size=32, only_with_original=True, memmap_dir=cache)
    assert torch.equal(first.images, in_ram.images) and torch.equal(first.clean_images, in_ram.clean_images)
    assert torch.equal(first.artifact_masks, in_ram.artifact_masks) and first.labels.tolist() == in_ram.labels.tolist()
    stored = np.load(first.meta["images_file"], mmap_mode="r")
    assert isinstance(stored, np.memmap) and np.array_equal(stored, in_ram.images.numpy())
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # the staging folder is gone
    assert isinstance(np.load(cache / Path(first.meta["images_file"]).name.replace("images", "boxes"), mmap_mode="r"),
                      np.memmap)  # the box masks are mapped too: nothing of size N stays in anonymous memory

    decoded = []
    monkeypatch.setattr(folder, "read_image", lambda *a, **k: decoded.append(a) or pytest.fail("decoded again"))
    again = load_artifact_folder(tmp_path / "f", size=32, only_with_original=True, memmap_dir=cache)
    assert not decoded and torch.equal(again.images, in_ram.images) and torch.equal(again.clean_images, in_ram.clean_images)
    again.images[0] = 0  # copy-on-write: the file keeps the photos
    assert np.array_equal(np.load(first.meta["images_file"]), in_ram.images.numpy())

    # another size or another subset is another decoding, not a stale one
    monkeypatch.undo()
    smaller = load_artifact_folder(tmp_path / "f", size=16, only_with_original=True, memmap_dir=cache)
    assert smaller.images.shape[-1] == 16 and smaller.meta["images_file"] != first.meta["images_file"]


@pytest.mark.parametrize("with_trimaps", [True, False])
def test_a_prepared_folder_with_trimaps_gives_table5s_object_metrics(tmp_path, with_trimaps):
    """A folder written with trimaps (as prepare_oxford_pets.py writes one) is read with its object masks by
    a run, so Table 5's localisation on the animal is computed on the photos; without trimaps only the
    box metrics are."""
    from cascam import CascadeConfig, run_cascade
    from cascam.data.folder import ArtifactFolderWriter
    from cascam.evaluate import evaluate
    from cascam.store import RunStore

    rng = np.random.default_rng(0)
    writer = ArtifactFolderWriter(tmp_path / "f", size=32)
    truth = {}
    for i in range(16):
        label = i % 2
        trimap = np.zeros((32, 32), bool)
        trimap[4 + i % 5 : 20 + i % 5, 6:26] = True
        name = f"{'Cat' if label == 0 else 'dog'}_{i}.jpg"
        truth[name] = trimap
        writer.add(name, Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)), label=label,
                   trimap=trimap if with_trimaps else None)
    writer.finish()
    cfg = CascadeConfig(data="folder", data_path=str(tmp_path / "f"), n_images=0, image_size=32, K=1, epochs=1,
                        min_epochs=0, batch_size=8, device="cpu", progress=False)
    cascade = run_cascade(cfg, RunStore(tmp_path / "runs"))
    if with_trimaps:
        for name, mask in zip(cascade.data.names, cascade.data.object_masks):
            assert np.array_equal(mask.numpy(), truth[name])
    else:
        assert cascade.data.object_masks is None
    scores = evaluate(cascade, ["cam", "cascam"])
    assert ("pointing_game" in scores.columns) == with_trimaps
    assert "artifact_pointing" in scores.columns
