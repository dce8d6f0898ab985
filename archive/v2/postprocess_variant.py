"""Score one post-processing setting as a cross-validation variant of its own, from saved label maps, without
inference.

For every fold ``ROOT/fold<k>`` with ``pred-<variant>/`` (label maps written by ``medseg3d predict`` without
post-processing), applies :func:`medseg3d.postprocess.postprocess` with ``--max-distance`` /
``--min-enhancing`` to each map, exactly as ``predict`` does to its labels, writes the result to
``ROOT/fold<k>/pred-<variant>-<suffix>/`` and scores it as ``scripts/crossval.sh`` scores a fold (``medseg3d
evaluate ... --labels brats --hd95-penalty``: ``metrics.csv`` there). The references are the fold's
``heldout/`` cases, or with ``--data DIR`` the case folders of ``DIR`` (kept records have no ``heldout/``).
The derived label maps are deleted after scoring unless ``--keep-labels``: this command makes them again, to
the voxel.

This is the exact output of ``predict`` with that setting where the saved maps lie on the grid ``predict``
post-processes on: the case's own grid, as for BraTS cases (already on one grid, ``--preprocess none``).

    python scripts/postprocess_variant.py docs/runs/brats-v2-cv/cv27-v1 --variant ens-cv27-strong-sw \\
        --max-distance 20 --data ../shared/data/brats2018          # -> pred-ens-cv27-strong-sw-md20
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from medseg3d.io import read_volume, write_volume
from medseg3d.labels import get_scheme
from medseg3d.postprocess import check_options, postprocess


def suffix_for(max_distance: float, min_enhancing: int) -> str:
    """``md20``, ``me500``, ``md20-me500``: the variant's suffix for a setting (one must be on)."""
    parts = ([f"md{max_distance:g}"] if max_distance > 0 else []) + (
        [f"me{min_enhancing}"] if min_enhancing > 0 else []
    )
    if not parts:
        raise SystemExit(
            "error: give --max-distance or --min-enhancing above 0: with neither the variant is the input"
        )
    return "-".join(parts)


def write_fold(pred: Path, out: Path, max_distance: float, min_enhancing: int) -> int:
    """Post-process every label map of ``pred`` into ``out``; returns how many maps changed."""
    scheme = get_scheme("brats")
    out.mkdir(exist_ok=True)
    changed = 0
    for path in sorted(pred.glob("*.nii.gz")):
        volume = read_volume(path)
        labels = postprocess(
            volume.array,
            scheme,
            spacing=volume.spacing,
            min_enhancing=min_enhancing,
            max_distance_mm=max_distance,
        )
        changed += int(labels is not volume.array and (labels != volume.array).any())
        write_volume(volume.with_array(labels.astype(volume.array.dtype, copy=False)), out / path.name)
    return changed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="cross-validation folder (fold0, fold1, ...)")
    parser.add_argument("--variant", default="last-sw", help="the label maps: fold<k>/pred-<variant>")
    parser.add_argument("--max-distance", type=float, default=0.0, metavar="MM", help="as medseg3d predict's")
    parser.add_argument("--min-enhancing", type=int, default=0, metavar="N", help="as medseg3d predict's")
    parser.add_argument(
        "--data", type=Path, help="the references' case folders, where the folds have no heldout/"
    )
    parser.add_argument("--keep-labels", action="store_true", help="keep the post-processed label maps")
    args = parser.parse_args(argv)
    check_options(get_scheme("brats"), 0, args.min_enhancing, args.max_distance)
    suffix = suffix_for(args.max_distance, args.min_enhancing)
    if args.data is not None and not args.data.is_dir():
        sys.exit(f"error: --data {args.data}: no such folder; give the folder of the cases")
    folds = sorted(p for p in args.root.glob("fold*") if (p / f"pred-{args.variant}").is_dir())
    if not folds:
        sys.exit(f"error: no fold under {args.root} has pred-{args.variant}; score the folds first")
    for fold in folds:
        if not any((fold / f"pred-{args.variant}").glob("*.nii.gz")):
            print(f"{fold.name}: pred-{args.variant} holds scores but no label maps (not kept); left out")
            continue
        reference = fold / "heldout" if (fold / "heldout").is_dir() else args.data
        if reference is None:
            sys.exit(f"error: {fold} has no heldout/; give the cases' folder with --data")
        out = fold / f"pred-{args.variant}-{suffix}"
        changed = write_fold(fold / f"pred-{args.variant}", out, args.max_distance, args.min_enhancing)
        # its table: metrics.csv
        subprocess.run(
            [
                sys.executable,
                "-m",
                "medseg3d",
                "evaluate",
                str(out),
                str(reference),
                "--labels",
                "brats",
                "--hd95-penalty",
                "--quiet",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        if not args.keep_labels:
            for path in out.glob("*.nii.gz"):
                path.unlink()
        print(f"{fold.name}: {changed} label map(s) changed; {out / 'metrics.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
