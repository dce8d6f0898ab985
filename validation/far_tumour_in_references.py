"""What far-component removal would cost on true lesions: tumour in the reference label maps that lies farther
than D mm from the reference's own largest component (a satellite lesion of a multifocal tumour).

``medseg3d predict --max-distance D`` removes every predicted component whose nearest voxel is farther than D
mm from the largest one; run on the references, the same rule shows how much real tumour it would take with
it, were it found. Prints one row per case that has any, then per distance how many cases lose tumour and the
most any case loses.

    python validation/far_tumour_in_references.py ../shared/data/brats2018 [--distances 10,20,30]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from medseg3d.datasets import find_cases
from medseg3d.io import read_volume
from medseg3d.postprocess import remove_far_components


def far_ml(labels: np.ndarray, spacing, distances) -> dict[float, float]:
    """distance -> ml of tumour that remove_far_components takes away at that distance."""
    voxel_ml = float(np.prod(spacing)) / 1000.0
    tumour = labels > 0
    return {
        d: float(np.count_nonzero(tumour & (remove_far_components(labels, spacing, d) == 0)) * voxel_ml)
        for d in distances
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="dataset folder of cases with reference labels")
    parser.add_argument("--distances", default="10,20,30", help="distances in mm, separated by commas")
    args = parser.parse_args(argv)
    try:
        distances = [float(t) for t in args.distances.split(",")]
    except ValueError:
        sys.exit("error: --distances are numbers in mm separated by commas, e.g. 10,20,30")
    if any(not d > 0 for d in distances):
        sys.exit("error: --distances must be above 0 mm")
    cases = [c for c in find_cases(args.data) if c.label is not None]
    if not cases:
        sys.exit(f"error: no case under {args.data} has a reference label map")
    print("| case | tumour ml | " + " | ".join(f"beyond {d:g} mm, ml" for d in distances) + " |")
    print("|---|---|" + "---|" * len(distances))
    rows = {}
    for case in cases:
        volume = read_volume(case.label)
        rows[case.case_id] = far_ml(volume.array, volume.spacing, distances)
        if any(rows[case.case_id].values()):
            total = np.count_nonzero(volume.array) * float(np.prod(volume.spacing)) / 1000.0
            print(
                f"| {case.case_id} | {total:.1f} | "
                + " | ".join(f"{rows[case.case_id][d]:.3f}" for d in distances)
                + " |"
            )
    print()
    for d in distances:
        hit = [c for c in rows if rows[c][d] > 0]
        most = max(rows, key=lambda c: rows[c][d])
        print(
            f"{d:g} mm: {len(hit)} of {len(rows)} references have tumour beyond it"
            + (f"; most {rows[most][d]:.3f} ml ({most})" if hit else "")
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
