"""Build the paper's Oxford-IIIT Pet data with label-box artifacts from the official release.

Downloads the data set through torchvision (unless it is already there), resizes every photo to
``--size`` (512 in the paper), pastes the "Cat"/"Dog" box, and writes a folder that
``cascam.data.folder.load_artifact_folder`` reads (pet masks via ``object_masks_dir=<out>/trimaps``).

Example:
    python data_scripts/prepare_oxford_pets.py --root ~/data/torchvision --out ~/data/pets512 --seed 0
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cascam.data.folder import ArtifactFolderWriter
from cascam.data.oxford import breed_from_name, label_from_name, oxford_pets_splits

__all__ = ["main", "parse_args", "prepare_oxford_pets"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument(
        "--root", required=True, type=Path, help="torchvision root holding (or to hold) oxford-iiit-pet/"
    )
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--size", type=int, default=512, help="output side in px (default 512, as in the paper)")
    p.add_argument("--seed", type=int, default=0, help="seed for the box positions (default 0)")
    p.add_argument(
        "--split", choices=("trainval", "test", "all"), default="all", help="which split (default all)"
    )
    p.add_argument("--limit", type=int, default=None, help="only the first N images (for a quick try)")
    p.add_argument("--quality", type=int, default=95, help="JPEG quality (default 95)")
    p.add_argument(
        "--save-originals", action="store_true", help="also write the photos without box to original/"
    )
    p.add_argument(
        "--no-download", action="store_true", help="fail instead of downloading when the data is absent"
    )
    p.add_argument("--workers", type=int, default=4, help="threads (default 4)")
    return p.parse_args(argv)


def prepare_oxford_pets(args: argparse.Namespace) -> int:
    """Run the preparation for parsed arguments; returns the number of images written."""
    splits = oxford_pets_splits(args.root, args.split, download=not args.no_download)
    split_names = ("trainval", "test") if args.split == "all" else (args.split,)
    items = [
        (ds, i, name, split)
        for (ds, names), split in zip(splits, split_names)
        for i, name in enumerate(names)
    ]
    if args.limit is not None:
        items = items[: args.limit]
    writer = ArtifactFolderWriter(
        args.out, size=args.size, seed=args.seed, quality=args.quality, save_originals=args.save_originals
    )

    def one(item: tuple) -> None:
        ds, i, name, split = item
        photo, (_, trimap) = ds[i]
        writer.add(
            name, photo, label_from_name(name), trimap=trimap, breed=breed_from_name(name), split=split
        )

    start = time.perf_counter()
    with ThreadPoolExecutor(max(1, args.workers)) as pool:
        for k, _ in enumerate(pool.map(one, items), 1):
            if k % 500 == 0 or k == len(items):
                print(f"{k}/{len(items)} images ({time.perf_counter() - start:.0f} s)", file=sys.stderr)
    writer.finish()
    return len(items)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    n = prepare_oxford_pets(args)
    print(f"wrote {n} images to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
