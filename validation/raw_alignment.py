"""How much of the raw path's distance from another pipeline's reference is where the two pipelines put the
patient in atlas space, and how much is the segmentation.

Our raw path (``medseg3d predict MODEL RAW --space atlas``) and BrainLesion's BraTS preprocessing both bring
the patient onto the SRI24 grid, each with its own registrations; the case's fused reference lies in
BrainLesion's alignment. Scored as is, any difference between the two alignments counts as segmentation error.
This script:

1. preprocesses the raw scans exactly as ``predict`` does and segments them with ``--model`` on the atlas
grid;
2. fits an affine map between our T1ce and the other pipeline's (both on the atlas grid, skull-stripped:
   ``medseg3d.raw.register.to_template`` with ``kind="affine"``, Mattes mutual information) and reports how
   far apart the two alignments put each point, over the other pipeline's brain and over the reference tumour;
3. scores our labels against the reference as they are, and after carrying them through that map into the
   other alignment (nearest neighbour): the second says how good the segmentation is, the difference between
   the two how much the alignment costs.

    python validation/raw_alignment.py [--model brats] [--case .../raw_clinical/TCGA-FG-6692] [--json
    out.json]
        [--template-fit rigid|affine]

The case folder holds ``raw/`` (the four scans as exported) and ``brainles_sri24/`` (the other pipeline's four
channels and ``fusion_labels.nii.gz``: an algorithm fusion, a sanity reference, not truth).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from medseg3d.io import Volume, read_volume, write_json_atomic
from medseg3d.metrics import region_dice

DEFAULT_CASE = Path(os.environ.get("MEDSEG3D_DATA", "../shared/data")) / "raw_clinical/TCGA-FG-6692"
MODALITIES = ("flair", "t1", "t1ce", "t2")


def lps_points(volume: Volume, mask: np.ndarray, step: int = 1) -> np.ndarray:
    """(N, 3) LPS millimetre coordinates of ``mask``'s voxels (every ``step``-th) in ``volume``'s grid."""
    idx = np.argwhere(mask)[::step].astype(float)
    ras = idx @ volume.affine[:3, :3].T + volume.affine[:3, 3]
    return ras * np.array([-1.0, -1.0, 1.0])


def displacement_mm(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """How far the 4x4 LPS map ``matrix`` moves each of ``points`` (mm)."""
    moved = points @ matrix[:3, :3].T + matrix[:3, 3]
    return np.linalg.norm(moved - points, axis=1)


def align_labels(
    ours: Volume, our_image: Volume, their_image: Volume, *, seed: int = 0
) -> tuple[Volume, np.ndarray]:
    """``ours`` (labels on ``our_image``'s grid) carried into ``their_image``'s alignment, and the 4x4 LPS map
    (their points -> our points) fitted between the two skull-stripped images."""
    from medseg3d.raw.geometry import resample
    from medseg3d.raw.register import to_template

    their_brain = Volume((their_image.array != 0).astype(np.float32), their_image.affine)
    fit = to_template(their_image, their_brain, our_image, our_image.array != 0, kind="affine", seed=seed)
    labels = resample(ours, their_image.shape, their_image.affine, fit.matrix, order=0, dtype=np.float32)
    return Volume(np.rint(labels).astype(np.uint8), their_image.affine), fit.matrix


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="brats", help="a bundled name or model file (default: brats)")
    parser.add_argument(
        "--case", type=Path, default=DEFAULT_CASE, help="folder with raw/ and brainles_sri24/"
    )
    parser.add_argument("--json", type=Path, help="also write the measurements here")
    parser.add_argument(
        "--template-fit",
        choices=["rigid", "affine"],
        help="our pipeline's map to the template (default: medseg3d's own)",
    )
    args = parser.parse_args(argv)
    raw, other = args.case / "raw", args.case / "brainles_sri24"
    missing = [
        p
        for p in [
            *(raw / f"{m}.nii.gz" for m in MODALITIES),
            *(other / f"{m}.nii.gz" for m in MODALITIES),
            other / "fusion_labels.nii.gz",
        ]
        if not p.is_file()
    ]
    if missing:
        print(
            f"error: {missing[0]}: not found; give --case a folder with raw/ and brainles_sri24/",
            file=sys.stderr,
        )
        return 1
    from medseg3d.models import load_model
    from medseg3d.predict import segment_volumes

    t0 = time.perf_counter()
    model = load_model(args.model, "cpu")
    result = segment_volumes(
        model,
        {m: read_volume(raw / f"{m}.nii.gz") for m in MODALITIES},
        preprocess="full",
        space="atlas",
        template_fit=args.template_fit,
    )
    prepared = result.prepared
    our_t1ce = Volume(prepared.channels["t1ce"], prepared.affine)
    their = read_volume(other / "t1ce.nii.gz")
    their_t1ce = Volume(their.array.astype(np.float32), their.affine)
    reference = read_volume(other / "fusion_labels.nii.gz")
    if result.labels.shape != reference.shape or not np.allclose(
        result.labels.affine, reference.affine, atol=1e-3
    ):
        print(
            "error: our atlas grid and the reference's differ; both must be the 240x240x155 SRI24 grid",
            file=sys.stderr,
        )
        return 1
    aligned, matrix = align_labels(result.labels, our_t1ce, their_t1ce)
    groups = model.scheme.regions
    brain = displacement_mm(matrix, lps_points(their_t1ce, their_t1ce.array != 0, step=50))
    tumour = displacement_mm(matrix, lps_points(reference, reference.array > 0, step=5))
    out = {
        "model": model.name,
        "case": str(args.case),
        "template_fit": prepared.transforms["atlas"]["kind"],
        "dice_as_is": {
            k: round(v, 4) for k, v in region_dice(result.labels.array, reference.array, groups).items()
        },
        "dice_aligned": {
            k: round(v, 4) for k, v in region_dice(aligned.array, reference.array, groups).items()
        },
        "alignment_difference_mm": {
            "brain_median": round(float(np.median(brain)), 2),
            "brain_p95": round(float(np.percentile(brain, 95)), 2),
            "tumour_median": round(float(np.median(tumour)), 2),
            "tumour_max": round(float(tumour.max()), 2),
        },
        "brain_ml": {
            "ours": round(float((our_t1ce.array != 0).sum() * np.prod(our_t1ce.spacing) / 1000), 1),
            "theirs": round(float((their_t1ce.array != 0).sum() * np.prod(their_t1ce.spacing) / 1000), 1),
        },
        "seconds": round(time.perf_counter() - t0, 1),
    }
    d = out["alignment_difference_mm"]
    print(
        f"{model.name} on {args.case.name}, {out['template_fit']} template fit: the two pipelines' atlas "
        f"alignments differ by {d['brain_median']:.1f} mm (median over the brain; 95th percentile "
        f"{d['brain_p95']:.1f} mm), {d['tumour_median']:.1f} mm in the tumour"
    )
    for key, what in (("dice_as_is", "as is"), ("dice_aligned", "in the other pipeline's alignment")):
        print(
            f"Dice against the reference, {what}: " + " / ".join(f"{k} {v:.3f}" for k, v in out[key].items())
        )
    print(
        f"brain on the atlas grid: ours {out['brain_ml']['ours']:.0f} ml, theirs "
        f"{out['brain_ml']['theirs']:.0f} ml; {out['seconds']:.0f} s"
    )
    if args.json:
        write_json_atomic(out, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
