"""Commands about datasets: ``info``, ``cache`` (alias ``prepare``), ``split``, ``synth-nonenhancing``."""

from __future__ import annotations

import sys
from pathlib import Path

from .common import (
    positive_floats,
    positive_ints,
)


def cmd_info(args) -> None:
    """``medseg3d info``: print the description of a file, case, dataset or training run."""
    from ..info import describe

    print(describe(args.path, layout=args.layout))


def cmd_cache(args) -> int:
    """``medseg3d cache`` (alias ``prepare``): build the training cache; returns 2 when a case failed (each
    named on standard error), else 0."""
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
    for case, reason in summary["failed"].items():  # refused input, as every command's: stderr, status 2
        print(f"medseg3d: error: failed {case}: {reason}", file=sys.stderr)
    return 2 if summary["failed"] else 0


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


def cmd_synth_nonenhancing(args) -> None:
    """``medseg3d synth-nonenhancing``: write the variants (with ``--with-originals``, links to originals).

    Args:
        args: the parsed command line.

    Raises:
        InputError: a case named in ``--cases`` that the dataset lacks or that cannot be made a variant.
    """
    import os

    from ..datasets import find_cases
    from ..datasets.synthetic import variant_parent, write_nonenhancing_variant
    from ..errors import InputError

    originals = [c for c in find_cases(args.dataset, require_label=True) if variant_parent(c.case_id) is None]
    cases = originals
    if args.cases:
        wanted = [c.strip() for c in args.cases.split(",") if c.strip()]
        by_id = {c.case_id: c for c in originals}
        unknown = [c for c in wanted if c not in by_id]
        if unknown:
            raise InputError(f"{args.dataset}: has no labelled case {', '.join(unknown)}")
        cases = [by_id[c] for c in wanted]
    out = Path(args.out)
    if out.resolve() == Path(args.dataset).resolve():
        raise InputError("--out must be another folder than the dataset (its cases are read, not changed)")
    made = 0
    for case in cases:
        try:
            variant, summary = write_nonenhancing_variant(
                case, out, sigma_mm=args.sigma, target_z=args.target_z
            )
        except InputError as exc:
            if args.cases:  # a case asked for by name must work
                raise
            print(f"  skipped {case.case_id}: {exc}")
            continue
        made += 1
        print(
            f"  {variant.case_id}: {summary['voxels']} enhancing voxels -> core; T1ce median "
            f"{summary['enhancing_median_before']:.0f} -> {summary['after_median']:.0f} "
            f"(the {summary['source']}'s {summary['source_median']:.0f}); "
            f"{summary['after_z']:+.2f} brain IQRs from the brain's median"
        )
    if args.with_originals:  # every original, those without a variant too (the low-grade cases)
        for case in originals:
            link = out / case.case_id
            if not link.exists():
                os.symlink(Path(case.label).resolve().parent, link, target_is_directory=True)
    print(
        f"wrote {made} non-enhancing variant(s) to {out}"
        + (" beside links to their originals" if args.with_originals else "")
    )


def add_synth_nonenhancing(sub) -> None:
    """Register ``synth-nonenhancing`` on the ``sub`` parsers.

    Args:
        sub: argparse's subparsers.
    """
    s = sub.add_parser(
        "synth-nonenhancing",
        help="write synthetic non-enhancing variants of labelled BraTS cases: enhancement taken out "
        "of T1ce inside the enhancing region (matched to the case's own core), label 4 -> 1",
    )
    s.add_argument("dataset", help="a labelled BraTS dataset folder")
    s.add_argument("--out", required=True, help="folder for the variants (<case>_nonenh/)")
    s.add_argument("--cases", help="comma-separated case ids (default: every case with enhancing tumour)")
    s.add_argument(
        "--sigma",
        type=float,
        default=1.0,
        metavar="MM",
        help="Gaussian blend of the edited region with its surroundings, in mm (default 1; 0: none)",
    )
    s.add_argument(
        "--target-z",
        type=float,
        default=None,
        metavar="Z",
        help="shift the edited region's median to Z interquartile ranges of the case's normal brain from "
        "its median (the real low-grade cores of the shared set lie at -1.6 to -0.4); default: the "
        "case's own core level",
    )
    s.add_argument(
        "--with-originals",
        action="store_true",
        help="also link every original case folder into --out, making it a training dataset of both",
    )
    s.set_defaults(func=cmd_synth_nonenhancing)


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
