"""Build a COCO cat-vs-dog set with the paper's label-box artifacts.

Keeps the COCO images that contain cats (category 17) or dogs (18) but not both; the ground truth
is the union of that class's instance masks. Writes the same folder layout as
``prepare_oxford_pets.py`` (object masks in ``trimaps/``: 1 = animal, 2 = background).

Example:
    python data_scripts/prepare_coco_catdog.py --annotations coco/annotations/instances_val2017.json \\
        --images coco/val2017 --out ~/data/coco_catdog512
    python data_scripts/prepare_coco_catdog.py --download val2017 --download-dir coco \\
        --out ~/data/coco_catdog512
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from cascam.data.download import download_and_verify, safe_extract
from cascam.data.folder import ArtifactFolderWriter
from cascam.data.images import read_image

__all__ = ["CAT_ID", "DOG_ID", "COCO_URLS", "main", "parse_args", "select_cat_dog_images", "class_mask"]

CAT_ID, DOG_ID = 17, 18

#: Official COCO 2017 archives and their MD5 checksums.
COCO_URLS: dict[str, tuple[str, str]] = {
    "annotations": (
        "http://images.cocodataset.org/annotations/annotations_trainval2017.zip",
        "f4bbac642086de4f52a3fdda2de5fa2c",
    ),
    "val2017": ("http://images.cocodataset.org/zips/val2017.zip", "442b8da7639aecaf257c1dceb8ba8c80"),
    "train2017": ("http://images.cocodataset.org/zips/train2017.zip", "cced6f7f71b7629ddf16f17bbcfab6b2"),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument("--annotations", type=Path, help="instances_<split>.json")
    p.add_argument("--images", type=Path, help="folder of the split's images")
    p.add_argument(
        "--download", choices=("val2017", "train2017"), help="download this split and its annotations"
    )
    p.add_argument("--download-dir", type=Path, help="where --download puts and unpacks the archives")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--size", type=int, default=512, help="output side in px (default 512)")
    p.add_argument("--seed", type=int, default=0, help="seed for the box positions (default 0)")
    p.add_argument("--limit", type=int, default=None, help="only the first N selected images (by image id)")
    p.add_argument("--quality", type=int, default=95, help="JPEG quality (default 95)")
    p.add_argument(
        "--save-originals", action="store_true", help="also write the photos without box to original/"
    )
    p.add_argument("--workers", type=int, default=4, help="threads (default 4)")
    args = p.parse_args(argv)
    if args.download:
        if args.download_dir is None:
            p.error("--download needs --download-dir")
        args.annotations = (
            args.annotations or args.download_dir / "annotations" / f"instances_{args.download}.json"
        )
        args.images = args.images or args.download_dir / args.download
    elif args.annotations is None or args.images is None:
        p.error("give --annotations and --images, or --download with --download-dir")
    return args


def download_coco(split: str, download_dir: Path) -> None:
    """Fetch (checksummed) and unpack the COCO 2017 annotations and ``split`` images into ``download_dir``."""
    for key in ("annotations", split):
        url, md5 = COCO_URLS[key]
        archive = download_and_verify(url, download_dir / Path(url).name, md5=md5)
        safe_extract(archive, download_dir)


def select_cat_dog_images(coco) -> list[tuple[int, int]]:
    """``(image_id, label)`` for images with cats xor dogs (label 0 = cat, 1 = dog), sorted by id."""
    cats = set(coco.getImgIds(catIds=[CAT_ID]))
    dogs = set(coco.getImgIds(catIds=[DOG_ID]))
    return sorted([(i, 0) for i in cats - dogs] + [(i, 1) for i in dogs - cats])


def class_mask(coco, image_id: int, category_id: int) -> np.ndarray:
    """Union of the image's instance masks of ``category_id`` (crowds included): bool ``(H, W)``."""
    info = coco.loadImgs(image_id)[0]
    mask = np.zeros((info["height"], info["width"]), dtype=np.bool_)
    for ann in coco.loadAnns(coco.getAnnIds(imgIds=[image_id], catIds=[category_id], iscrowd=None)):
        mask |= coco.annToMask(ann).astype(bool)
    return mask


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        from pycocotools.coco import COCO
    except ImportError:
        raise SystemExit("prepare_coco_catdog needs pycocotools: pip install pycocotools") from None
    if args.download:
        download_coco(args.download, args.download_dir)
    if not args.annotations.is_file():
        raise SystemExit(f"annotation file not found: {args.annotations}")
    if not args.images.is_dir():
        raise SystemExit(f"image folder not found: {args.images}")
    coco = COCO(str(args.annotations))
    selected = select_cat_dog_images(coco)
    if args.limit is not None:
        selected = selected[: args.limit]
    writer = ArtifactFolderWriter(
        args.out, size=args.size, seed=args.seed, quality=args.quality, save_originals=args.save_originals
    )

    def one(item: tuple[int, int]) -> None:
        image_id, label = item
        name = coco.loadImgs(image_id)[0]["file_name"]
        path = args.images / name
        photo = Image.fromarray(read_image(path))
        mask = class_mask(coco, image_id, (CAT_ID, DOG_ID)[label])
        writer.add(name, photo, label, trimap=mask, breed=("cat", "dog")[label], split=args.images.name)

    start = time.perf_counter()
    with ThreadPoolExecutor(max(1, args.workers)) as pool:
        for k, _ in enumerate(pool.map(one, selected), 1):
            if k % 500 == 0 or k == len(selected):
                print(f"{k}/{len(selected)} images ({time.perf_counter() - start:.0f} s)", file=sys.stderr)
    writer.finish()
    print(f"wrote {len(selected)} images to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
