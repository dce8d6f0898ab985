"""Score BraTS 2018-labelled predictions against a BRATS 2012 truth map: a check on a case from another year.

The shared BRATS 2012 case (``../shared/data/brats2012_mha``) is not one of the 20 training cases, and its
truth uses the 2012 convention (1 edema, 2 tumour core), so only two regions compare: whole tumour
(prediction 1, 2, 4 against truth 1, 2) and tumour core (prediction 1, 4 against truth 2). Prints one
Markdown row per prediction: Dice and volumes in ml.

    for k in 0 1 2 3 4; do
        medseg3d predict runs/cv-brats/fold$k/last.safetensors ../shared/data/brats2012_mha -o
        ext/fold$k.nii.gz
    done
    python validation/score_brats2012.py ../shared/data/brats2012_mha/BRATS_HG0015_truth.mha ext/*.nii.gz
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from medseg3d.io import read_volume
from medseg3d.metrics import dice


def score(pred: np.ndarray, truth: np.ndarray, voxel_ml: float) -> dict[str, float]:
    """WT and TC Dice of a 0/1/2/4 prediction against a 0/1/2 (2012) truth, and the volumes in ml."""
    wt_p, wt_t = pred > 0, truth > 0
    tc_p, tc_t = np.isin(pred, (1, 4)), truth == 2
    return {
        "dice_WT": dice(wt_p, wt_t),
        "dice_TC": dice(tc_p, tc_t),
        "ml_WT": wt_p.sum() * voxel_ml,
        "ref_ml_WT": wt_t.sum() * voxel_ml,
        "ml_TC": tc_p.sum() * voxel_ml,
        "ref_ml_TC": tc_t.sum() * voxel_ml,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("truth", type=Path, help="BRATS 2012 truth map (0 background, 1 edema, 2 core)")
    ap.add_argument("preds", type=Path, nargs="+", help="predictions with BraTS 2018 labels on the same grid")
    args = ap.parse_args(argv)
    truth = read_volume(args.truth)
    t = np.asarray(truth.array)
    if not set(np.unique(t).tolist()) <= {0, 1, 2}:
        sys.exit(
            f"error: {args.truth} has labels {sorted(np.unique(t).tolist())}; a 2012 truth map has 0, 1, 2"
        )
    voxel_ml = float(np.prod(truth.spacing)) / 1000
    print("| prediction | WT | TC | WT ml (truth) | TC ml (truth) |\n|---|---|---|---|---|")
    for path in args.preds:
        pred = read_volume(path)
        if pred.shape != truth.shape or not np.allclose(pred.affine, truth.affine, atol=1e-3):
            sys.exit(
                f"error: {path} is not on the truth's grid (shape {pred.shape} against {truth.shape}); "
                "predict from the 2012 case itself"
            )
        s = score(np.asarray(pred.array), t, voxel_ml)
        print(
            f"| {path} | {s['dice_WT']:.3f} | {s['dice_TC']:.3f} | {s['ml_WT']:.1f} ({s['ref_ml_WT']:.1f}) | "
            f"{s['ml_TC']:.1f} ({s['ref_ml_TC']:.1f}) |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
