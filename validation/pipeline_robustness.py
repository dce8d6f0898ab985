"""Lever 5 of issue #22: does a model stay free of far false positives on a case from another preprocessing
pipeline?

Segments ``raw_clinical/TCGA-FG-6692/brainles_sri24`` (the shared case after BrainLesion's BraTS
preprocessing, SRI24 grid) with each model given, without post-processing, and prints per model: the region
Dice against the case's ``fusion_labels.nii.gz`` (an algorithm fusion: a sanity reference, not truth), the
tumour's components and the volume of those farther than 30 mm from the largest (what ``--max-distance 30``
would remove). The models must not have seen the case (none of the shared BraTS cases is this one).

    python validation/pipeline_robustness.py runs/cv27-v1/fold0/last.safetensors
    runs/cv27-strong/fold0/last.safetensors
        [--refiner runs/cv27-refine/fold0/last.safetensors] [--sliding-window] [--case ...brainles_sri24]
        [--json out.json]
    python validation/pipeline_robustness.py --table docs/runs/brats-v2-cv/cv27-*/fold*/robustness*.json

``--refiner``: each model is also scored as a cascade with that refiner (:mod:`medseg3d.cascade`).
``--sliding-window``: in windows of the training patch, as the bundled models run (default: each model's own).
``--table``: no segmenting; one markdown table of the rows kept in those JSON files (``--json``), all folds
together.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

from medseg3d.io import read_volume, write_json_atomic
from medseg3d.labels import get_scheme
from medseg3d.metrics import region_dice
from medseg3d.models import load_model
from medseg3d.postprocess import remove_far_components
from medseg3d.predict import segment

DEFAULT_CASE = (
    Path(os.environ.get("MEDSEG3D_DATA", "../shared/data")) / "raw_clinical/TCGA-FG-6692/brainles_sri24"
)


def far_volume_ml(labels: np.ndarray, spacing, distance_mm: float = 30.0) -> float:
    """Tumour volume (ml) in components farther than ``distance_mm`` from the largest one."""
    kept = remove_far_components(labels, spacing, distance_mm)
    return float(((labels > 0) & (kept == 0)).sum() * np.prod(spacing) / 1000.0)


def assess(
    model: str, case: Path, reference, refiner: str | None = None, sliding_window: bool | None = None
) -> dict:
    loaded = load_model(model, refine=refiner or "none")
    # without post-processing, whatever the model file's default: the far tumour is what this measures
    labels = segment(loaded, case, sliding_window=sliding_window, max_distance=0.0)
    spacing = labels.spacing
    regions = get_scheme("brats").regions
    components = int(ndimage.label(labels.array > 0, structure=np.ones((3, 3, 3)))[1])
    return {
        "model": f"{model} refined by {refiner}" if refiner else model,
        **{f"dice_{k}": round(v, 4) for k, v in region_dice(labels.array, reference, regions).items()},
        "components": components,
        "far_30mm_ml": round(far_volume_ml(labels.array, spacing), 2),
        "tumour_ml": round(float((labels.array > 0).sum() * np.prod(spacing) / 1000.0), 2),
        **({"sliding_window": True} if sliding_window else {}),
    }


HEADER = (
    "| model | Dice WT | TC | ET | tumour ml | components | ml > 30 mm from the largest |\n"
    "|---|---|---|---|---|---|---|"
)


def table(rows: list[dict]) -> str:
    """The rows as one markdown table (a row per model; in windows, or restored from a published table, where
    it says so)."""
    lines = [HEADER]
    for r in rows:
        name = (
            r["model"]
            + (" (windows)" if r.get("sliding_window") else "")
            + (" (restored)" if r.get("restored") else "")
        )
        lines.append(
            f"| {name} | {r['dice_WT']:.3f} | {r['dice_TC']:.3f} | {r['dice_ET']:.3f} | {r['tumour_ml']:.1f} "
            f"| {r['components']} | {r['far_30mm_ml']:.2f} |"
        )
    return "\n".join(lines)


def read_rows(paths: list[Path]) -> list[dict]:
    """The rows of earlier ``--json`` files, in the order given; a bad file is one line."""
    import json

    rows = []
    for path in paths:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            assert isinstance(data, list) and all(isinstance(r, dict) and "model" in r for r in data)
        except (OSError, ValueError, AssertionError):
            sys.exit(f"error: {path}: not the rows of pipeline_robustness.py --json")
        rows += data
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help="bundled names, run folders or model files")
    parser.add_argument("--refiner", help="also score each model refined by this refiner (a cascade)")
    parser.add_argument(
        "--sliding-window", action="store_true", help="segment in windows of the training patch"
    )
    parser.add_argument(
        "--table", nargs="+", type=Path, metavar="JSON", help="only tabulate earlier --json rows"
    )
    parser.add_argument("--case", type=Path, default=DEFAULT_CASE)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    if args.table:
        print(table(read_rows(args.table)))
        return 0
    if not args.models:
        parser.error("give one or more models (or --table JSON...)")
    fusion = args.case / "fusion_labels.nii.gz"
    if not fusion.is_file():
        sys.exit(f"error: {fusion} is missing; give --case the brainles_sri24 folder of the shared data")
    reference = read_volume(fusion).array.astype(np.int16)
    refiners = [None, args.refiner] if args.refiner else [None]
    rows = [
        assess(m, args.case, reference, r, sliding_window=args.sliding_window or None)
        for m in args.models
        for r in refiners
    ]
    print(table(rows))
    if args.json:
        write_json_atomic(rows, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
