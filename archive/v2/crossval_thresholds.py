"""Choose region thresholds by cross-validation, honestly: each fold's thresholds come from the other folds.

A region model (sigmoid WT / TC / ET outputs) turns probabilities into labels at 0.5. This script asks
whether another threshold per region generalises better. It reads the probability maps that
``medseg3d predict ... --probabilities`` wrote for each fold's held-out cases
(``OUT/fold<k>/pred-<variant>/<case>_probabilities.nii.gz``) and the references (``OUT/fold<k>/heldout``),
then for every fold picks, on the *other* folds' cases only, the threshold of each region that maximises
their mean Dice, and scores the fold's own cases with it. It prints per-case Dice at 0.5 and at the
thresholds chosen without the case, the paired difference, and the thresholds each fold chose.

    python scripts/crossval_thresholds.py runs/cv-brats --variant last-sw-prob [--grid 0.2,0.3,...]

Regions are tuned one at a time (WT, then TC, then ET), each with the earlier regions at their chosen
thresholds and the later ones at 0.5, because the label map paints WT, then TC, then ET over each other.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

import numpy as np

from medseg3d.datasets import find_cases
from medseg3d.io import read_volume
from medseg3d.labels import get_scheme
from medseg3d.metrics import dice

REGIONS = ("WT", "TC", "ET")
DEFAULT_GRID = (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8)


def _crop(probs: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both cut to the box holding every voxel with a probability above 0.05 or a reference label."""
    mask = (probs.max(0) > 0.05) | (ref > 0)
    if not mask.any():
        return probs[:, :1, :1, :1], ref[:1, :1, :1]
    box = tuple(slice(i.min(), i.max() + 1) for i in np.nonzero(mask))
    return probs[(slice(None),) + box], ref[box]


def read_probabilities(pred: Path, case_id: str, hint: str = "") -> np.ndarray:
    """The region probabilities (3, X, Y, Z) that ``medseg3d predict --probabilities`` wrote for a case."""
    path = pred / f"{case_id}_probabilities.nii.gz"
    if not path.exists():
        sys.exit(f"error: {path} is missing; run medseg3d predict with --probabilities{hint}")
    return np.moveaxis(np.asarray(read_volume(path).array, dtype=np.float32), -1, 0)


def region_masks(labels: np.ndarray) -> np.ndarray:
    """BraTS label values (0/1/2/4) -> boolean WT / TC / ET masks (3, ...)."""
    scheme = get_scheme("brats")
    return scheme.region_masks(scheme.to_classes(labels))


def load_cases(root: Path, variant: str) -> dict[int, list[tuple[str, np.ndarray, np.ndarray]]]:
    """{fold: [(case, probabilities (3, ...), reference region masks (3, ...))]}, cropped to the tumour."""
    folds: dict[int, list] = {}
    for pred in sorted(root.glob(f"fold*/pred-{variant}")):
        fold = int(pred.parent.name.removeprefix("fold"))
        for case in find_cases(pred.parent / "heldout", require_label=True):
            probs = read_probabilities(pred, case.case_id, f" on fold {fold}")
            probs, ref = _crop(probs, np.asarray(read_volume(case.label).array))
            folds.setdefault(fold, []).append((case.case_id, probs, region_masks(ref)))
    if not folds:
        sys.exit(f"error: no {root}/fold*/pred-{variant} folders; give the variant with --variant")
    return folds


def region_dice(probs: np.ndarray, masks: np.ndarray, thresholds) -> list[float]:
    """Dice of WT / TC / ET after thresholding and painting the regions into one label map, as predict
    does."""
    values = get_scheme("brats").regions_to_values(
        probs > np.asarray(thresholds, dtype=np.float32)[:, None, None, None]
    )
    pred = region_masks(values)
    return [dice(pred[r], masks[r]) for r in range(len(REGIONS))]


def choose(cases, grid) -> list[float]:
    """Thresholds maximising the mean Dice of ``cases``, one region at a time."""
    chosen = [0.5, 0.5, 0.5]
    for r in range(len(REGIONS)):
        best = (-1.0, 0.5)
        for t in grid:
            trial = chosen[:r] + [t] + chosen[r + 1 :]
            score = statistics.fmean(region_dice(p, m, trial)[r] for _, p, m in cases)
            # ties go to the threshold nearer 0.5
            if score > best[0] + 1e-9 or (abs(score - best[0]) <= 1e-9 and abs(t - 0.5) < abs(best[1] - 0.5)):
                best = (score, t)
        chosen[r] = best[1]
    return chosen


def _wilcoxon_p(diffs: list[float]) -> float:
    try:
        from scipy.stats import wilcoxon
    except ImportError:  # pragma: no cover - scipy is a dependency
        return math.nan
    nonzero = [d for d in diffs if abs(d) > 1e-12]
    return float(wilcoxon(nonzero).pvalue) if len(nonzero) >= 5 else math.nan


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root", type=Path, help="cross-validation folder made by scripts/crossval.sh")
    ap.add_argument("--variant", default="last-sw-prob", help="pred-<variant> folders with probability maps")
    ap.add_argument("--grid", default=",".join(str(t) for t in DEFAULT_GRID), help="thresholds to try")
    args = ap.parse_args(argv)
    grid = [float(t) for t in args.grid.split(",")]
    folds = load_cases(args.root, args.variant)

    rows, chosen = [], {}
    for fold, cases in sorted(folds.items()):
        others = [c for k, cs in folds.items() if k != fold for c in cs]
        chosen[fold] = choose(others, grid)
        for case_id, probs, masks in cases:
            rows.append(
                (case_id, fold, region_dice(probs, masks, [0.5] * 3), region_dice(probs, masks, chosen[fold]))
            )

    print(f"# Region thresholds chosen on the other folds ({args.root}, pred-{args.variant})\n")
    print("| fold | " + " | ".join(REGIONS) + " |\n|---|" + "---|" * len(REGIONS))
    for fold, t in chosen.items():
        print(f"| {fold} | " + " | ".join(f"{v:.2f}" for v in t) + " |")
    print("\n| case | fold | Dice at 0.5 (WT / TC / ET) | Dice at the chosen thresholds |\n|---|---|---|---|")
    for case_id, fold, base, tuned in sorted(rows, key=lambda r: r[2][2]):
        print(
            f"| {case_id} | {fold} | "
            + " / ".join(f"{v:.3f}" for v in base)
            + " | "
            + " / ".join(f"{v:.3f}" for v in tuned)
            + " |"
        )
    print(
        "\n| region | mean at 0.5 | mean chosen | paired difference "
        "| better / worse | Wilcoxon p |\n|---|---|---|---|---|---|"
    )
    for r, name in enumerate(REGIONS):
        diffs = [tuned[r] - base[r] for _, _, base, tuned in rows]
        print(
            f"| {name} | {statistics.fmean(b[r] for _, _, b, _ in rows):.3f} | "
            f"{statistics.fmean(t[r] for _, _, _, t in rows):.3f} | {statistics.fmean(diffs):+.3f} | "
            f"{sum(d > 1e-12 for d in diffs)} / {sum(d < -1e-12 for d in diffs)} | {_wilcoxon_p(diffs):.3g} |"
        )
    all_cases = [c for cs in folds.values() for c in cs]
    print(
        f"\nthresholds chosen on all {len(all_cases)} cases (for a final model): "
        + ", ".join(f"{n} {t:.2f}" for n, t in zip(REGIONS, choose(all_cases, grid)))
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
