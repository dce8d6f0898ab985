"""Would averaging several models help? Score each model and every average of them on the same held-out cases.

Each PRED folder holds ``<case>_probabilities.nii.gz`` maps of a region model (WT / TC / ET sigmoids) for the
cases of HELDOUT, written by ``medseg3d predict MODEL HELDOUT -o PRED --probabilities``; the models must not
have seen those cases (e.g. runs of the same cross-validation fold with other seeds, precisions or budgets).
Prints, per case and as means, the region Dice of every model alone and of every average of two or more.

    python archive/v2/ensemble_heldout.py runs/cv-brats/fold0/heldout \\
        runs/cv-brats/fold0/pred-last-sw-prob runs/cv-brats-4k/fold0/pred-last-sw-prob
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import statistics
import sys
from pathlib import Path

import numpy as np

from medseg3d.datasets import find_cases
from medseg3d.io import read_volume

_spec = importlib.util.spec_from_file_location(
    "crossval_thresholds", Path(__file__).with_name("crossval_thresholds.py")
)
_thresholds = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_thresholds)
REGIONS, region_dice = _thresholds.REGIONS, _thresholds.region_dice
read_probabilities, region_masks = _thresholds.read_probabilities, _thresholds.region_masks


def _name(pred: Path) -> str:
    """A short name for a prediction folder: the parts of its path that differ from the others'."""
    return "/".join(pred.parts[-3:-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("heldout", type=Path, help="folder of the held-out cases (with their references)")
    ap.add_argument("preds", type=Path, nargs="+", help="prediction folders with probability maps")
    args = ap.parse_args(argv)
    if len(args.preds) < 2:
        sys.exit("error: give at least two prediction folders to compare their average with each alone")
    names = [_name(p) for p in args.preds]
    combos = [c for n in range(1, len(names) + 1) for c in itertools.combinations(range(len(names)), n)]
    scores: dict[tuple, list[list[float]]] = {c: [] for c in combos}
    for case in find_cases(args.heldout, require_label=True):
        probs = [read_probabilities(p, case.case_id) for p in args.preds]
        masks = region_masks(np.asarray(read_volume(case.label).array))
        for c in combos:
            scores[c].append(region_dice(sum(probs[i] for i in c) / len(c), masks, [0.5] * len(REGIONS)))
    print(
        f"| models ({len(scores[combos[0]])} cases) | "
        + " | ".join(REGIONS)
        + " |\n|---|"
        + "---|" * len(REGIONS)
    )
    for c in combos:
        label = " + ".join(names[i] for i in c) + (" (average)" if len(c) > 1 else "")
        print(
            f"| {label} | "
            + " | ".join(f"{statistics.fmean(s[r] for s in scores[c]):.3f}" for r in range(len(REGIONS)))
            + " |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
