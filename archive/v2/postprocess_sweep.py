"""Choose ``medseg3d predict``'s post-processing by cross-validation: every setting on every held-out case.

Reads each fold's saved label maps (``OUT/fold<k>/pred-<variant>/<case>.nii.gz``, written by
``medseg3d predict``) and references (``OUT/fold<k>/heldout``, or with ``--data DIR`` the case folders
``DIR/<case>`` of the predicted cases: for records kept without the held-out links, e.g.
``docs/runs/brats-v2-cv/cv27-v1 --data ../shared/data/brats2018``) and applies, for every combination of
``--max-distance`` (tumour components farther than MM from the largest one removed) and ``--min-enhancing``
(enhancing tumour relabelled as necrosis in a case with fewer than N enhancing voxels), exactly what
``medseg3d.postprocess.postprocess`` does in ``predict``. Per setting it prints the mean Dice and HD95 (BraTS
penalty of 373.13 mm where one side is empty) of WT / TC / ET over all held-out cases, the worst case's WT
Dice and the cases that changed, then, per changed case, its Dice before and after. No inference is run.

    python scripts/postprocess_sweep.py runs/cv27-v1 --variant last-sw [--distances 0,20,30,40,60]
        [--min-enhancing 0,250,500]

On cases that all contain enhancing tumour (the shared ones) ``--min-enhancing`` can only show its cost; its
gain is on cases without enhancement, where any predicted enhancing voxel scores ET Dice 0.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
from pathlib import Path

import numpy as np

from medseg3d.datasets import find_cases
from medseg3d.io import read_volume
from medseg3d.labels import get_scheme, value_masks
from medseg3d.metrics import BRATS_HD95_PENALTY, dice, hausdorff95
from medseg3d.postprocess import postprocess

REGIONS = ("WT", "TC", "ET")


def references(fold: Path, pred: Path, available: dict | None) -> list:
    """The fold's held-out cases: its ``heldout`` folder, or from ``available`` (case id -> case of
    ``--data``) the cases that ``pred`` holds."""
    if available is None:
        return find_cases(fold / "heldout")
    wanted = sorted(p.name[: -len(".nii.gz")] for p in pred.glob("*.nii.gz"))
    missing = [case for case in wanted if case not in available]
    if missing:
        sys.exit(
            f"error: the data folder lacks the case(s) {', '.join(missing)} that {pred} predicts; "
            "give the data folder the cross-validation was made from"
        )
    return [available[case] for case in wanted]


def load_pairs(root: Path, variant: str, data: Path | None = None):
    """([(case, predicted labels, reference labels, spacing)], {case: fold}) over every fold folder under
    ``root``."""
    pairs, fold_of = [], {}
    available = None if data is None else {case.case_id: case for case in find_cases(data)}  # scanned once
    folds = sorted(p for p in root.glob("fold*") if p.is_dir() and p.name[4:].isdigit())
    if not folds:
        sys.exit(f"error: {root} has no fold* folders; give the folder of a cross-validation")
    for fold in folds:
        pred = fold / f"pred-{variant}"
        if not pred.is_dir():
            print(f"{fold.name}: no pred-{variant} (fold not scored yet); left out", file=sys.stderr)
            continue
        for case in references(fold, pred, available):
            path = pred / f"{case.case_id}.nii.gz"
            if not path.exists():
                sys.exit(
                    f"error: {path} is missing; run medseg3d predict for {fold.name}'s held-out cases first"
                )
            volume = read_volume(path)
            fold_of[case.case_id] = fold.name
            pairs.append(
                (
                    case.case_id,
                    volume.array.astype(np.int16),
                    read_volume(case.label).array.astype(np.int16),
                    tuple(volume.spacing),
                )
            )
    if not pairs:
        sys.exit(f"error: no fold under {root} has pred-{variant}; score the folds first")
    return pairs, fold_of


def scores(scheme, pred: np.ndarray, ref: np.ndarray, spacing) -> dict[str, float]:
    """Dice and HD95 (mm, BraTS penalty where one side is empty) per region."""
    predicted, truth = value_masks(pred, scheme.regions), value_masks(ref, scheme.regions)
    out = {}
    for r in REGIONS:
        out[f"dice_{r}"] = dice(predicted[r], truth[r])
        out[f"hd95_{r}"] = hausdorff95(predicted[r], truth[r], spacing, one_empty=BRATS_HD95_PENALTY)
    return out


def sweep(pairs, distances, minimums) -> tuple[list[dict], dict]:
    """(rows, base): per setting the mean scores over the cases, the worst WT case and each changed case's
    scores; and every case's scores without post-processing."""
    scheme = get_scheme("brats")
    base = {case: scores(scheme, pred, ref, spacing) for case, pred, ref, spacing in pairs}
    rows = []
    for distance, minimum in itertools.product(distances, minimums):
        per_case, changed = {}, {}
        for case, pred, ref, spacing in pairs:
            out = postprocess(pred, scheme, spacing=spacing, min_enhancing=minimum, max_distance_mm=distance)
            if np.array_equal(out, pred):
                per_case[case] = base[case]  # unchanged: no need to score it again
            else:
                per_case[case] = changed[case] = scores(scheme, out, ref, spacing)
        mean = {k: statistics.fmean(s[k] for s in per_case.values()) for k in next(iter(per_case.values()))}
        worst = min(per_case, key=lambda c: per_case[c]["dice_WT"])
        rows.append(
            {
                "max_distance": distance,
                "min_enhancing": minimum,
                "mean": mean,
                "worst": worst,
                "worst_WT": per_case[worst]["dice_WT"],
                "changed": changed,
            }
        )
    return rows, base


def nested(rows, base, fold_of: dict) -> list[dict]:
    """Each fold's setting chosen on the other folds' cases alone (the best mean of WT, TC and ET Dice; on a
    tie the first row, i.e. the least post-processing), then scored on that fold: an estimate of the sweep's
    choice that does not see the cases it is judged on. Returns per fold its setting and its cases' scores."""

    def case_scores(row, case):
        return row["changed"].get(case, base[case])

    def mean_dice(row, cases):
        return statistics.fmean(
            statistics.fmean(case_scores(row, c)[f"dice_{r}"] for r in REGIONS) for c in cases
        )

    out = []
    for fold in sorted(set(fold_of.values())):
        inside = [c for c in fold_of if fold_of[c] == fold]
        others = [c for c in fold_of if fold_of[c] != fold]
        if not others:
            continue
        best = max(rows, key=lambda row: mean_dice(row, others))  # max keeps the first of equals
        out.append(
            {
                "fold": fold,
                "max_distance": best["max_distance"],
                "min_enhancing": best["min_enhancing"],
                "scores": {c: case_scores(best, c) for c in inside},
            }
        )
    return out


def mean_dice_cell(case_scores) -> str:
    """``WT / TC / ET``: the mean Dice of each region over ``case_scores`` (an iterable of per-case score
    dicts)."""
    case_scores = list(case_scores)
    return " / ".join(f"{statistics.fmean(s['dice_' + r] for s in case_scores):.4f}" for r in REGIONS)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="cross-validation folder (fold0, fold1, ...)")
    parser.add_argument(
        "--variant", default="last-sw", help="prediction folder suffix: fold<k>/pred-<variant>"
    )
    parser.add_argument(
        "--data",
        type=Path,
        help="the references' case folders, where the folds have no heldout/ "
        "(kept records: scripts/keep_cv_records.py --labels)",
    )
    parser.add_argument("--distances", default="0,20,30,40,60", help="--max-distance values in mm (0: off)")
    parser.add_argument(
        "--min-enhancing", default="0,250,500", help="--min-enhancing values in voxels (0: off)"
    )
    args = parser.parse_args(argv)
    try:
        distances = [float(t) for t in args.distances.split(",")]
        minimums = [int(t) for t in args.min_enhancing.split(",")]
    except ValueError:
        sys.exit("error: --distances are numbers and --min-enhancing whole numbers, separated by commas")
    if args.data is not None and not args.data.is_dir():
        sys.exit(f"error: --data {args.data}: no such folder; give the folder of the cases")
    pairs, fold_of = load_pairs(args.root, args.variant, args.data)
    rows, base = sweep(pairs, distances, minimums)
    print(f"{len(pairs)} held-out cases of {args.root} (pred-{args.variant})\n")
    print(
        "| --max-distance | --min-enhancing | Dice WT | TC | "
        "ET | HD95 WT | TC | ET | worst WT | cases changed |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        m = row["mean"]
        print(
            f"| {row['max_distance']:g} | {row['min_enhancing']} | "
            + " | ".join(f"{m['dice_' + r]:.4f}" for r in REGIONS)
            + " | "
            + " | ".join(f"{m['hd95_' + r]:.1f}" for r in REGIONS)
            + f" | {row['worst_WT']:.3f} ({row['worst']}) | {len(row['changed']) or '-'} |"
        )
    changes = [(row, case, s) for row in rows for case, s in row["changed"].items()]
    if changes:
        print(
            "\n| --max-distance | --min-enhancing | case | Dice "
            "WT / TC / ET before | after | HD95 WT before | after |"
        )
        print("|---|---|---|---|---|---|---|")
        for row, case, after in changes:
            before = base[case]
            print(
                f"| {row['max_distance']:g} | {row['min_enhancing']} | {case} | "
                + " / ".join(f"{before['dice_' + r]:.3f}" for r in REGIONS)
                + " | "
                + " / ".join(f"{after['dice_' + r]:.3f}" for r in REGIONS)
                + f" | {before['hd95_WT']:.1f} | {after['hd95_WT']:.1f} |"
            )
    chosen = nested(rows, base, fold_of)
    if len(chosen) > 1:
        print(
            "\nEach fold's setting chosen on the other folds only (best mean Dice of WT, TC and ET), "
            "scored on it:\n"
        )
        print("| fold | --max-distance | --min-enhancing | Dice WT / TC / ET, none | chosen |")
        print("|---|---|---|---|---|")
        pooled = {}
        for f in chosen:
            pooled |= f["scores"]
            print(
                f"| {f['fold']} | {f['max_distance']:g} | {f['min_enhancing']} | "
                f"{mean_dice_cell(base[c] for c in f['scores'])} | {mean_dice_cell(f['scores'].values())} |"
            )
        print(
            f"| all {len(pooled)} cases | | | {mean_dice_cell(base[c] for c in pooled)} | "
            f"{mean_dice_cell(pooled.values())} (worst WT {min(s['dice_WT'] for s in pooled.values()):.3f}) |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
