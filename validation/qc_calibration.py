"""Calibrate the raw pipeline's template-similarity check on cases whose alignment is known.

Every BraTS case of a dataset is already aligned to the template (SRI24 space): its brain overlap with the
template's and its correlation with the template of each modality are what a good registration gives. The same
case moved off by a known error (10 mm shift, 10 degree rotation, 15% scaling) shows what a failed one gives.
The thresholds (``medseg3d.raw.qc.MIN_BRAIN_OVERLAP``, ``MIN_TEMPLATE_CORRELATION``) must separate the two.

    python validation/qc_calibration.py ../shared/data/brats2018 [--out /tmp/qc_calibration.json]
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from medseg3d.datasets import find_cases
from medseg3d.io import Volume
from medseg3d.raw.geometry import resample
from medseg3d.raw.qc import template_fit
from medseg3d.raw.simulate import rigid_matrix, rotation
from medseg3d.raw.template import BRATS_AFFINE, BRATS_SHAPE, load_template

CENTRE_LPS = np.array([120.0, -120.0, 77.0])
ERRORS = {
    "aligned": np.eye(4),
    "shift 10 mm": rigid_matrix(np.eye(3), [10.0, 0, 0], CENTRE_LPS),
    "rotation 10 deg": rigid_matrix(rotation([0, 0, 1], 10.0), [0, 0, 0], CENTRE_LPS),
    "scale 1.15": rigid_matrix(np.eye(3) * 1.15, [0, 0, 0], CENTRE_LPS),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dataset")
    p.add_argument("--out", default="/tmp/qc_calibration.json")
    p.add_argument("--modalities", default="t1,t1ce")
    args = p.parse_args()
    template = load_template()
    modalities = args.modalities.split(",")
    rows = []
    for case in find_cases(args.dataset):
        vols = {m: v for m, _, v in case.select(modalities).read_channels()}
        brain = np.any(np.stack([v.array != 0 for v in vols.values()]), axis=0)
        row = {"case": case.case_id}
        for name, err in ERRORS.items():
            moved_brain = (
                resample(Volume(brain.astype(np.float32), BRATS_AFFINE), BRATS_SHAPE, BRATS_AFFINE, err)
                >= 0.5
            )
            moved = {m: resample(v, BRATS_SHAPE, BRATS_AFFINE, err) for m, v in vols.items()}
            fit = template_fit(moved, moved_brain, template)
            row[f"overlap {name}"] = fit["brain_overlap"]
            for m in vols:
                row[f"{m} {name}"] = fit["correlation"][m][m]
        rows.append(row)
        print(json.dumps(row), flush=True)
    summary = {}
    for key in rows[0]:
        if key == "case":
            continue
        vals = np.array([r[key] for r in rows])
        summary[key] = {"min": float(vals.min()), "median": float(np.median(vals)), "max": float(vals.max())}
    print(json.dumps(summary, indent=1))
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump({"rows": rows, "summary": summary}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
