"""``ratt data pack SRC --out DIR`` and ``ratt data check DIR``: packed data sets
(:mod:`ratt.data.pack`, :mod:`ratt.data.packed`)."""

from __future__ import annotations

import argparse

from ratt.config.sections import LAYOUTS
from ratt.data.pack import DEFAULT_SHARD_MB, pack
from ratt.data.packed import check_packed


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="pack a data set into memory-mapped shards, or check a packed one")
    actions = p.add_subparsers(dest="action", required=True, parser_class=type(p))
    packer = actions.add_parser(
        "pack",
        help="write SRC as uint8 .npy shards and an index (resumable: rerun to continue)",
        description="SRC: an .npz (ratt's x_train/y_train/x_test/y_test, DM-Improves-AT's image/label, "
        "or x/y), an ImageFolder directory (train/, test/, val/), or a data set name (cifar10). "
        "Train with data=packed data.root=DIR, or add it as data.extra=DIR.",
    )
    packer.add_argument("src", help=".npz file, ImageFolder directory or data set name")
    packer.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="the packed directory (new, or unfinished)",
    )
    packer.add_argument("--shard-mb", type=int, default=DEFAULT_SHARD_MB, help="MiB of images per shard")
    packer.add_argument("--image-size", type=int, help="ImageFolder: resize to this square size")
    packer.add_argument("--channels", type=int, choices=(1, 3), help="ImageFolder: force 1 or 3 channels")
    packer.add_argument("--layout", choices=LAYOUTS, default="auto", help=".npz: the images' axis order")
    packer.add_argument("--root", help="data set name: where its files are (as data.root)")
    packer.set_defaults(func=run_pack)
    checker = actions.add_parser("check", help="check every shard of a packed directory (size, sha256)")
    checker.add_argument("dir", help="a directory written by ratt data pack")
    checker.set_defaults(func=run_check)


def run_pack(args: argparse.Namespace) -> int:
    result = pack(
        args.src, args.out, shard_mb=args.shard_mb, image_size=args.image_size, channels=args.channels,
        layout=args.layout, root=args.root,
    )  # fmt: skip
    counts = ", ".join(f"{name} {count}" for name, count in result.counts.items())
    kept = f", {result.kept} kept from an earlier run" if result.kept else ""
    print(f"packed {counts} images into {result.out} ({result.written} shards written{kept})")
    if result.quantized:
        print("note: float pixels were rounded to uint8 (x * 255)")
    return 0


def run_check(args: argparse.Namespace) -> int:
    index = check_packed(args.dir)
    counts = ", ".join(f"{name} {entry['count']}" for name, entry in index["splits"].items())
    shards = sum(len(entry["shards"]) for entry in index["splits"].values())
    shape = "x".join(str(v) for v in index["shape"])
    print(f"{args.dir}: ok ({counts} images of {shape}, {index['classes']} classes, {shards} shards)")
    return 0
