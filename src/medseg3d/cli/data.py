"""Commands about datasets: ``info``, ``cache`` (alias ``prepare``), ``split``."""

from __future__ import annotations

import sys

from .common import (
    positive_floats,
    positive_ints,
)


def cmd_info(args) -> None:
    """``medseg3d info``: print the description of a file, case, dataset or training run."""
    from ..info import describe

    print(describe(args.path, layout=args.layout))


def cmd_cache(args) -> None:
    """``medseg3d cache`` (alias ``prepare``): build the training cache; exits 1 when a case failed."""
    from ..cache import prepare_dataset

    if args.command == "prepare":  # the command's old name, kept as an alias for one release
        print(
            "medseg3d: note: `medseg3d prepare` is now `medseg3d cache`; "
            "the old name will go in a later release",
            file=sys.stderr,
        )
    from ..preprocess import PrepConfig

    crop = "fixed" if args.crop else args.crop_mode
    config = PrepConfig(crop=crop, crop_size=args.crop, downsample=args.downsample, spacing=args.spacing)
    summary = prepare_dataset(
        args.dataset, args.out, config, args.labels, args.modalities, args.layout, workers=args.workers
    )
    print(
        f"prepared {len(summary['prepared'])}, skipped {len(summary['skipped'])} (already done), "
        f"failed {len(summary['failed'])} -> {args.out}"
    )
    for case, reason in summary["failed"].items():
        print(f"  failed {case}: {reason}")
    if summary["failed"]:
        sys.exit(1)


def cmd_split(args) -> None:
    """``medseg3d split``: write a seeded split file of a dataset's cases."""
    from ..datasets import find_cases, make_split, save_split

    ids = [c.case_id for c in find_cases(args.dataset, layout=args.layout)]
    if args.folds:
        split = make_split(ids, folds=args.folds, seed=args.seed)
    else:
        split = make_split(ids, counts=args.counts, fractions=args.fractions, seed=args.seed)
    save_split(split, args.out)
    print(f"wrote {args.out} ({split['kind']}, {len(ids)} cases, seed {args.seed})")


def add_info(sub) -> None:
    """Add the ``info`` sub-command."""
    s = sub.add_parser(
        "info",
        help="describe an image file, a case folder or a dataset (and its problems), "
        "or where a training run stands",
    )
    s.add_argument("path")
    s.add_argument("--layout", choices=["brats", "brats-mha", "nnunet", "csv"])
    s.set_defaults(func=cmd_info)


def add_cache(sub) -> None:
    """Add the ``cache`` sub-command (and its old name ``prepare``)."""
    s = sub.add_parser(
        "cache",
        aliases=["prepare"],
        help="preprocess a dataset once into the training cache (`prepare`: its old name)",
    )
    s.add_argument("dataset")
    s.add_argument("--out", required=True, help="cache folder")
    s.add_argument("--labels", default="brats", help="label scheme: brats, brats2015, brats2012, binary")
    s.add_argument("--modalities", help="channels in order, e.g. flair,t1,t1ce,t2 (default: all)")
    s.add_argument("--layout", choices=["brats", "brats-mha", "nnunet", "csv"])
    s.add_argument(
        "--crop", type=positive_ints, help="fixed crop X,Y,Z around the foreground's centre of mass"
    )
    s.add_argument(
        "--crop-mode", default="bbox", choices=["bbox", "none"], help="without --crop: brain box or none"
    )
    s.add_argument("--downsample", type=float, default=1.0, help="down-sampling factor (2 = half resolution)")
    s.add_argument("--spacing", type=positive_floats, help="resample to this voxel size in mm, e.g. 2,2,2")
    s.add_argument("--workers", type=int, help="processes (default: cores, at most 4)")
    s.set_defaults(func=cmd_cache)


def add_split(sub) -> None:
    """Add the ``split`` sub-command."""
    s = sub.add_parser("split", help="write a seeded train/validation(/test) or k-fold split file")
    s.add_argument("dataset")
    s.add_argument("--out", required=True, help="split JSON file")
    s.add_argument("--folds", type=int)
    s.add_argument(
        "--counts", type=lambda t: tuple(int(v) for v in t.split(",")), help="train,val,test counts"
    )
    s.add_argument("--fractions", type=lambda t: tuple(float(v) for v in t.split(",")), help="train,val,test")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--layout", choices=["brats", "brats-mha", "nnunet", "csv"])
    s.set_defaults(func=cmd_split)
