"""Skull-stripped inputs on another grid: resampled to 0.9 x 0.9 x 3 mm, or with the axes permuted.

Before ``--preprocess auto`` these were segmented silently on their own grid (issue #21: WT 0.754 and 0.840
against 0.899 on the original files). Now they are reoriented and resampled to the model's 1 mm grid and the
probabilities are taken back. For each case: the bundled model's region Dice on the original files, and on
each variant against the reference carried onto the variant's grid (nearest neighbour).

    python validation/geometry_inputs.py ../shared/data/brats2018 --cases 3
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from medseg3d.datasets import find_cases
from medseg3d.io import Volume, read_volume
from medseg3d.metrics import region_dice
from medseg3d.models import load_model
from medseg3d.predict import segment_volumes
from medseg3d.raw.geometry import resample
from medseg3d.raw.simulate import permute_axes

REGIONS = {"WT": (1, 2, 4), "TC": (1, 4), "ET": (4,)}
MODS = ("flair", "t1", "t1ce", "t2")


def thick(vol: Volume, order: int) -> Volume:
    affine = vol.affine @ np.diag([0.9, 0.9, 3.0, 1.0])
    shape = tuple(int(s) for s in np.floor((np.array(vol.shape) - 1) / [0.9, 0.9, 3.0]) + 1)
    return Volume(resample(vol, shape, affine, order=order), affine)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dataset")
    p.add_argument("--cases", type=int, default=3)
    args = p.parse_args()
    model = load_model("brats")
    rows = []
    for case in find_cases(args.dataset)[: args.cases]:
        vols = {m: v for m, _, v in case.select(MODS).read_channels()}
        label = read_volume(case.label)
        row = {
            "case": case.case_id,
            "original": region_dice(
                segment_volumes(model, vols, preprocess="none").labels.array, label.array, REGIONS
            ),
        }
        for name, make in (("0.9x0.9x3 mm", thick), ("axes permuted", lambda v, order: permute_axes(v))):
            variant = {m: make(v, 1) for m, v in vols.items()}
            ref = make(Volume(label.array.astype(np.float32), label.affine), 0)
            for mode in ("none", "auto"):
                result = segment_volumes(model, variant, preprocess=mode)
                row[f"{name}, preprocess {mode} ({result.prepared.mode})"] = region_dice(
                    result.labels.array, np.round(ref.array), REGIONS
                )
        rows.append(row)
        print(json.dumps(row), flush=True)
    keys = [k for k in rows[0] if k != "case"]
    print("\n| input | WT | TC | ET |\n|---|---|---|---|")
    for k in keys:
        print(f"| {k} | " + " | ".join(f"{np.mean([r[k][reg] for r in rows]):.3f}" for reg in REGIONS) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
