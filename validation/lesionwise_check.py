"""Check medseg3d's BraTS 2023 lesion-wise metrics against a second, independent computation on shared cases.

The official BraTS 2023 lesion-wise code (Saluja et al., AGPL) is not published on PyPI; the package there,
``brats-evaluation`` (0.0.10), is the later panoptica-based evaluation (instances matched one-to-one by Dice,
no reference dilation, no size threshold), i.e. different rules, so it cannot check these numbers. Instead
this script recomputes every score a second way, sharing no code with :mod:`medseg3d.lesionwise`:

* connected components (26-connectivity) with SimpleITK's ``ConnectedComponent`` (fully connected) instead of
  SciPy's ``label``;
* the 18-neighbourhood dilation as explicit array shifts over the 18 offsets, on the whole volume (no
  cropping to bounding boxes);
* HD95 from a k-d tree over the surface voxels in mm (SciPy ``cKDTree``, ``numpy.percentile`` linear) instead
  of MONAI's distance transform;
* the averaging written as the published formula (sum of kept lesions' scores over kept + FP).

Each case's reference is perturbed into two predictions: shifted by 2 voxels along the first axis with its
whole tumour eroded by one voxel at the surface; and the same plus a false-positive enhancing blob (6^3
voxels) and a small (3^3) edema blob away from the tumour. Agreement is reported to 3 decimals per region.

    python validation/lesionwise_check.py [--cases 5] [--data ../shared/data/brats2018]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np

from medseg3d.io import read_volume
from medseg3d.lesionwise import lesion_wise_scores

REGIONS = {"WT": (1, 2, 4), "TC": (1, 4), "ET": (4,)}
OFFSETS_18 = [o for o in itertools.product((-1, 0, 1), repeat=3) if 0 < sum(map(abs, o)) <= 2]


def shift(mask: np.ndarray, offset) -> np.ndarray:
    out = np.zeros_like(mask)
    src = tuple(slice(max(-d, 0), n - max(d, 0)) for d, n in zip(offset, mask.shape))
    dst = tuple(slice(max(d, 0), n - max(-d, 0)) for d, n in zip(offset, mask.shape))
    out[dst] = mask[src]
    return out


def dilate18(mask: np.ndarray, times: int) -> np.ndarray:
    for _ in range(times):
        grown = mask.copy()
        for o in OFFSETS_18:
            grown |= shift(mask, o)
        mask = grown
    return mask


def components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    labelled = sitk.ConnectedComponent(image, True)  # fully connected = 26 neighbours
    array = sitk.GetArrayFromImage(labelled).astype(np.int32)
    return array, int(array.max())


def surface_points(mask: np.ndarray, spacing) -> np.ndarray:
    inner = mask.copy()
    for axis in range(3):  # a voxel is inside when its 6 face neighbours are in the mask (array border = out)
        for d in (-1, 1):
            o = [0, 0, 0]
            o[axis] = d
            inner &= shift(mask, o)
    return np.argwhere(mask & ~inner) * np.asarray(spacing, dtype=float)


def hd95_kdtree(a: np.ndarray, b: np.ndarray, spacing) -> float:
    from scipy.spatial import cKDTree

    pa, pb = surface_points(a, spacing), surface_points(b, spacing)
    d_ab = cKDTree(pb).query(pa)[0]
    d_ba = cKDTree(pa).query(pb)[0]
    return float(max(np.percentile(d_ab, 95), np.percentile(d_ba, 95)))


def second_lesion_wise(pred: np.ndarray, ref: np.ndarray, spacing, iterations=3, min_mm3=50.0, penalty=374.0):
    voxel = float(np.prod(spacing))
    pred_cc, _ = components(pred)
    dilated_cc, n_dilated = components(dilate18(ref, iterations))
    scores_dice, scores_hd, matched = [], [], set()
    for k in range(1, n_dilated + 1):
        lesion = ref & (dilated_cc == k)
        if not lesion.any():
            continue
        touching = set(np.unique(pred_cc[dilate18(lesion, iterations)]).tolist()) - {0}
        matched |= touching
        if touching:
            found = np.isin(pred_cc, sorted(touching))
            dice = 2 * np.sum(found & lesion) / (found.sum() + lesion.sum())
            hd = hd95_kdtree(found, lesion, spacing)
        else:
            dice, hd = 0.0, penalty
        if lesion.sum() * voxel > min_mm3:
            scores_dice.append(dice)
            scores_hd.append(hd)
    n_fp = len(set(np.unique(pred_cc).tolist()) - {0} - matched)
    total = len(scores_dice) + n_fp
    if total == 0:
        return 1.0, 0.0, n_fp
    return sum(scores_dice) / total, (sum(scores_hd) + penalty * n_fp) / total, n_fp


def perturb(ref_labels: np.ndarray, blobs: bool = True) -> np.ndarray:
    pred = np.zeros_like(ref_labels)
    pred[2:] = ref_labels[:-2]
    whole = pred > 0
    inside = whole.copy()
    for axis in range(3):
        for d in (-1, 1):
            o = [0, 0, 0]
            o[axis] = d
            inside &= shift(whole, o)
    pred[whole & ~inside] = 0
    if not blobs:
        return pred
    # blobs on the side of the volume opposite the tumour's centre
    centre = np.argwhere(ref_labels > 0).mean(axis=0).astype(int)
    far = [int(n - c) for c, n in zip(centre, ref_labels.shape)]
    far = [min(max(f, 10), n - 20) for f, n in zip(far, ref_labels.shape)]
    x, y, z = far
    pred[x : x + 6, y : y + 6, z : z + 6] = 4
    pred[x + 10 : x + 13, y : y + 3, z : z + 3] = 2
    return pred


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data", default=str(Path(__file__).resolve().parents[1].parent / "shared/data/brats2018")
    )
    parser.add_argument("--cases", type=int, default=5)
    args = parser.parse_args(argv)
    cases = sorted(p for p in Path(args.data).iterdir() if p.is_dir())[: args.cases]
    worst = 0.0
    print(
        "| case | prediction | region | Dice (medseg3d / second) | HD95 mm (medseg3d / second) | FP | "
        "agree to 3 dp | s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for case, blobs in itertools.product(cases, (False, True)):
        ref_vol = read_volume(case / f"{case.name}_seg.nii.gz")
        ref_labels = np.asarray(ref_vol.array).astype(np.uint8)
        pred_labels = perturb(ref_labels, blobs)
        start = time.perf_counter()
        row = lesion_wise_scores(pred_labels, ref_labels, REGIONS, ref_vol.spacing)
        seconds = time.perf_counter() - start
        for name, values in REGIONS.items():
            dice2, hd2, fp2 = second_lesion_wise(
                np.isin(pred_labels, values), np.isin(ref_labels, values), ref_vol.spacing
            )
            dice1, hd1, fp1 = row[f"lesion_dice_{name}"], row[f"lesion_hd95_{name}"], row[f"lesion_fp_{name}"]
            agree = round(dice1, 3) == round(dice2, 3) and round(hd1, 3) == round(hd2, 3) and fp1 == fp2
            worst = max(worst, abs(dice1 - dice2), abs(hd1 - hd2))
            what = "shifted, eroded" + (", 2 blobs" if blobs else "")
            print(
                f"| {case.name} | {what} | {name} | {dice1:.3f} / {dice2:.3f} | {hd1:.3f} / {hd2:.3f} | "
                f"{fp1} / {fp2} | {'yes' if agree else 'NO'} | {seconds:.2f} |"
            )
    print(f"\nlargest absolute difference: {worst:.2e}")
    return 0 if worst < 5e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
