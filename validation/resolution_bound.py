"""How much Dice does working on a coarser grid cost at best? The reference segmentation itself, taken to a
model's preprocessed grid and back, scored against itself (issue #22, lever 1).

For each case the reference's WT / TC / ET masks go through exactly what a model's probabilities go through:
the crop of the model's preprocessing, linear resampling to its grid (``--downsample``, default 2: the bundled
model's 2 mm), linear resampling back (:func:`medseg3d.preprocess.undo_probabilities`), threshold 0.5. The
Dice of that round trip is the most a perfect model on that grid can score; the gap between a real model and
this bound is what it gets wrong, the gap between the bound and 1 what its grid costs.

    python validation/resolution_bound.py [DATASET] [--downsample 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

REGIONS = ("WT", "TC", "ET")


def round_trip_dice(image: np.ndarray, affine: np.ndarray, label: np.ndarray, prep) -> dict[str, float]:
    """Dice per region of the reference masks after the model grid's round trip."""
    from medseg3d.labels import get_scheme
    from medseg3d.metrics import dice, value_masks
    from medseg3d.preprocess import crop_or_pad, preprocess, resize_image, undo_probabilities

    _, _, record = preprocess(image, affine, prep)  # the crop from the channels alone, as at inference
    masks = value_masks(label, get_scheme("brats").regions)
    stack = np.stack([masks[r] for r in REGIONS]).astype(np.float32)
    coarse = resize_image(crop_or_pad(stack, record.box_start, record.box_stop), record.shape)
    back = undo_probabilities(coarse, record, fill_background=False) > 0.5
    return {r: float(dice(back[i], masks[r])) for i, r in enumerate(REGIONS)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = (
        Path(os.environ.get("MEDSEG3D_DATA", Path(__file__).resolve().parents[2] / "shared/data"))
        / "brats2018"
    )
    parser.add_argument("dataset", nargs="?", type=Path, default=default)
    parser.add_argument("--downsample", type=float, default=2.0, help="the model grid's factor (2: 2 mm)")
    parser.add_argument("--json", type=Path, help="also write the per-case rows here")
    args = parser.parse_args(argv)
    from medseg3d.datasets import find_cases
    from medseg3d.io import write_json_atomic
    from medseg3d.models import load_model

    prep = replace(load_model("brats", "cpu", refine="none").prep, downsample=args.downsample)
    rows = []
    for case in find_cases(args.dataset):
        image, ref, label = case.load()
        scores = round_trip_dice(image, ref.affine, label.astype(np.int16), prep)
        rows.append({"case": case.case_id, **{r: round(v, 4) for r, v in scores.items()}})
        print(f"{case.case_id}: " + " / ".join(f"{scores[r]:.3f}" for r in REGIONS), flush=True)
    if not rows:
        print(f"{args.dataset}: no cases found", file=sys.stderr)
        return 2
    mean = {r: statistics.fmean(row[r] for row in rows) for r in REGIONS}
    worst = {r: min(rows, key=lambda row: row[r]) for r in REGIONS}
    print(
        f"\n{len(rows)} cases, grid x{args.downsample:g}: mean "
        + " / ".join(f"{mean[r]:.3f}" for r in REGIONS)
        + "; lowest "
        + ", ".join(f"{r} {worst[r][r]:.3f} ({worst[r]['case']})" for r in REGIONS)
    )
    if args.json:
        write_json_atomic({"downsample": args.downsample, "mean": mean, "cases": rows}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
