"""Lesion-wise Dice and HD95 as the BraTS 2023 challenge scores them (implemented from the published rules).

Since 2023 BraTS ranks segmentations lesion by lesion, so that a model cannot hide a missed small lesion
behind one well-segmented large one. The rules, as published with the challenge's evaluation (Saluja et al.,
"BraTS 2023 lesion-wise performance metrics"; the official package is AGPL and is not used here), for each
region (WT, TC, ET) of one case:

1. Ground-truth lesions: the reference mask is dilated (SciPy ``binary_dilation`` with the 3x3x3
   18-neighbourhood structure, ``generate_binary_structure(3, 2)``, repeated ``dilation_iterations`` times:
   3 for BraTS-GLI/SSA/PED, 1 for MEN and MET). The connected components (26-connectivity) of the dilated
   mask group the reference voxels: one lesion = the *undilated* reference voxels inside one dilated
   component, so nearby fragments count as one lesion and the reference itself does not change.
2. Predicted components: connected components (26-connectivity) of the predicted mask.
3. Matching: each lesion is dilated again (same structure and iterations); every predicted component that
   touches the dilated lesion is matched to it (a component may match several lesions). The lesion's Dice and
   HD95 are those of the lesion against the union of its matched components. A lesion with no match scores
   Dice 0 and HD95 374 mm (a missed lesion, false negative).
4. False positives: predicted components matched to no lesion at all; each counts Dice 0 and HD95 374 mm.
5. Small lesions: lesions of at most ``min_lesion_mm3`` (50 mm^3 for GLI, i.e. 50 voxels at BraTS' 1 mm; the
   official code multiplies the voxel count by the voxel size) leave the average. Predicted components matched
   only to such a lesion are not false positives either.
6. Score = (sum over kept lesions of Dice) / (kept lesions + false positives); HD95 likewise with 374 mm per
   false positive. When the denominator is 0 (no lesion above the size in the reference and no false positive,
   e.g. both masks empty) the region scores Dice 1 and HD95 0, as the challenge does.

HD95 here is :func:`medseg3d.metrics.hausdorff95` (voxel surfaces, 95th percentile of each directed distance,
the larger of the two, MONAI's definition), the same as the project's whole-volume HD95. The official 2023
code uses DeepMind's ``surface_distance`` (percentile weighted by surface-element area), which can differ by a
fraction of a millimetre on the same masks; Dice, the lesion counts and every penalty are unaffected.

Example::

    row = lesion_wise_scores(pred_labels, ref_labels, {"WT": (1, 2, 4), "TC": (1, 4), "ET": (4,)}, (1, 1, 1))
    row["lesion_dice_ET"], row["lesion_hd95_ET"], row["lesion_fp_ET"]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .errors import InputError
from .labels import value_masks
from .metrics import hausdorff95

LESION_HD95_PENALTY = 374.0
"""HD95 (mm) the BraTS 2023 lesion-wise evaluation gives a missed or a false-positive lesion."""

CONNECTIVITY_26 = np.ones((3, 3, 3), dtype=bool)
DILATION_STRUCTURE = ndimage.generate_binary_structure(3, 2)  # 18-neighbourhood, as the challenge dilates


@dataclass(frozen=True)
class LesionRules:
    """Parameters of the lesion-wise evaluation (defaults: BraTS 2023 adult glioma, GLI).

    Args:
        dilation_iterations: how often the 18-neighbourhood dilation is applied to the reference (GLI: 3).
        min_lesion_mm3: reference lesions of at most this volume are left out (GLI: 50 mm^3).
        hd95_penalty: HD95 of a missed or false-positive lesion, in mm (374).
    """

    dilation_iterations: int = 3
    min_lesion_mm3: float = 50.0
    hd95_penalty: float = LESION_HD95_PENALTY


BRATS_2023_RULES = {
    "GLI": LesionRules(3, 50.0),
    "SSA": LesionRules(3, 50.0),
    "PED": LesionRules(3, 50.0),
    "MEN": LesionRules(1, 50.0),
    "MET": LesionRules(1, 2.0),
}


def _box(mask_box: tuple[slice, ...], pad: int, shape: tuple[int, ...]) -> tuple[slice, ...]:
    return tuple(slice(max(s.start - pad, 0), min(s.stop + pad, n)) for s, n in zip(mask_box, shape))


def _union_box(a: tuple[slice, ...], b: tuple[slice, ...]) -> tuple[slice, ...]:
    return tuple(slice(min(x.start, y.start), max(x.stop, y.stop)) for x, y in zip(a, b))


def lesion_wise_region(
    pred_mask,
    ref_mask,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    rules: LesionRules = LesionRules(),
    distances: bool = True,
) -> dict:
    """Lesion-wise scores of one binary region (see the module docstring for the rules).

    Args:
        pred_mask, ref_mask: 3D masks of equal shape (nonzero = inside).
        spacing: voxel size in mm along each axis (for volumes and HD95).
        rules: dilation, size threshold and penalty (default BraTS 2023 GLI).
        distances: False: leave HD95 out (NaN), most of the time on large lesions, when only Dice is wanted
            (e.g. sweeps of post-processing settings).

    Returns:
        ``{"dice", "hd95", "tp", "fn", "fp", "n_small", "lesions"}``: the lesion-wise Dice and HD95 (mm),
        the counts of kept reference lesions found (tp) and missed (fn), of false-positive predicted
        components (fp) and of reference lesions dropped for size (n_small); ``lesions`` lists every
        reference lesion as ``{"volume_mm3", "dice", "hd95", "matched", "kept"}``.
    """
    pred = np.asarray(pred_mask) != 0
    ref = np.asarray(ref_mask) != 0
    if pred.shape != ref.shape or pred.ndim != 3:
        raise InputError(
            f"lesion-wise scoring needs two 3D masks of one shape, got {pred.shape} and {ref.shape}"
        )
    voxel_mm3 = float(np.prod([float(s) for s in spacing]))
    it = int(rules.dilation_iterations)
    either = pred | ref
    if either.any():  # everything below happens within the masks' box plus the dilation's reach: same result
        crop = _box(ndimage.find_objects(either.astype(np.uint8))[0], 2 * it + 1, either.shape)
        pred, ref = pred[crop], ref[crop]
    pred_cc, n_pred = ndimage.label(pred, structure=CONNECTIVITY_26)
    pred_boxes = ndimage.find_objects(pred_cc)

    lesions: list[dict] = []
    matched_any: set[int] = set()
    if ref.any():
        # dilating only the reference's bounding box (plus the dilation reach) gives the same result
        ref_box = _box(ndimage.find_objects(ref.astype(np.uint8))[0], it, ref.shape)
        dilated_cc, _ = ndimage.label(
            ndimage.binary_dilation(ref[ref_box], DILATION_STRUCTURE, iterations=it),
            structure=CONNECTIVITY_26,
        )
        grouped = np.where(ref[ref_box], dilated_cc, 0)
        for k, box in enumerate(ndimage.find_objects(grouped), start=1):
            if box is None:
                continue
            full_box = tuple(slice(b.start + o.start, b.stop + o.start) for b, o in zip(box, ref_box))
            roi = _box(full_box, it, ref.shape)
            local = tuple(slice(r.start - o.start, r.stop - o.start) for r, o in zip(roi, ref_box))
            lesion_roi = grouped[local] == k
            reach = ndimage.binary_dilation(lesion_roi, DILATION_STRUCTURE, iterations=it)
            hits = np.unique(pred_cc[roi][reach])
            hits = [int(h) for h in hits if h != 0]
            matched_any.update(hits)
            volume = float(np.count_nonzero(lesion_roi)) * voxel_mm3
            if hits:
                box_all = roi
                for h in hits:
                    box_all = _union_box(box_all, pred_boxes[h - 1])
                lesion = np.zeros(tuple(s.stop - s.start for s in box_all), dtype=bool)
                inner = tuple(slice(r.start - b.start, r.stop - b.start) for r, b in zip(roi, box_all))
                lesion[inner] = lesion_roi
                found = np.isin(pred_cc[box_all], hits)
                tp_vox = int(np.count_nonzero(lesion & found))
                dice = 2.0 * tp_vox / (int(np.count_nonzero(lesion)) + int(np.count_nonzero(found)))
                hd = hausdorff95(found, lesion, spacing) if distances else float("nan")
            else:
                dice, hd = 0.0, float(rules.hd95_penalty)
            lesions.append(
                {
                    "volume_mm3": volume,
                    "dice": float(dice),
                    "hd95": float(hd),
                    "matched": len(hits),
                    "kept": volume > rules.min_lesion_mm3,
                }
            )
    fp = n_pred - len(matched_any)
    kept = [le for le in lesions if le["kept"]]
    denominator = len(kept) + fp
    if denominator == 0:
        dice_lw, hd_lw = 1.0, 0.0
    else:
        dice_lw = sum(le["dice"] for le in kept) / denominator
        hd_lw = (sum(le["hd95"] for le in kept) + fp * rules.hd95_penalty) / denominator
    return {
        "dice": float(dice_lw),
        "hd95": float(hd_lw),
        "tp": sum(1 for le in kept if le["matched"]),
        "fn": sum(1 for le in kept if not le["matched"]),
        "fp": int(fp),
        "n_small": len(lesions) - len(kept),
        "lesions": lesions,
    }


def lesion_wise_scores(
    pred_labels,
    ref_labels,
    regions: Mapping[str, Sequence[int]],
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    rules: LesionRules = LesionRules(),
) -> dict[str, float]:
    """Lesion-wise columns for one case, per region: ``lesion_dice_<R>``, ``lesion_hd95_<R>`` (mm),
    ``lesion_tp_<R>``, ``lesion_fn_<R>``, ``lesion_fp_<R>``.

    Args:
        pred_labels, ref_labels: integer label maps of one shape in the dataset's values (BraTS 0/1/2/4).
        regions: name -> label values, e.g. ``{"WT": (1, 2, 4), "TC": (1, 4), "ET": (4,)}``.
        spacing: voxel size in mm.
        rules: see :class:`LesionRules` (default BraTS 2023 GLI).
    """
    pred, ref = np.asarray(pred_labels), np.asarray(ref_labels)
    if pred.shape != ref.shape:
        raise InputError(
            f"prediction shape {pred.shape} differs from reference shape {ref.shape}; "
            "paste the prediction onto the reference grid first"
        )
    return lesion_wise_masks(
        value_masks(pred, regions), value_masks(ref, regions), list(regions), spacing, rules
    )


def lesion_wise_masks(
    pred_masks: Mapping,
    ref_masks: Mapping,
    names: Sequence[str],
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    rules: LesionRules = LesionRules(),
) -> dict:
    """The lesion-wise columns of :func:`lesion_wise_scores` from region masks of each side.

    Args:
        pred_masks, ref_masks: {region name: 3D boolean mask}.
        names: the regions to score.
        spacing: voxel size in mm, (X, Y, Z).
        rules: the lesion-wise parameters (default: BraTS 2023 GLI).

    Returns:
        Per region: ``lesion_dice_``, ``lesion_hd95_`` (mm), ``lesion_tp_``, ``lesion_fn_``, ``lesion_fp_``.
    """
    row: dict[str, float] = {}
    for name in names:
        out = lesion_wise_region(pred_masks[name], ref_masks[name], spacing, rules)
        row[f"lesion_dice_{name}"] = out["dice"]
        row[f"lesion_hd95_{name}"] = out["hd95"]
        row[f"lesion_tp_{name}"] = out["tp"]
        row[f"lesion_fn_{name}"] = out["fn"]
        row[f"lesion_fp_{name}"] = out["fp"]
    return row


__all__ = [
    "BRATS_2023_RULES",
    "LESION_HD95_PENALTY",
    "LesionRules",
    "lesion_wise_masks",
    "lesion_wise_region",
    "lesion_wise_scores",
]
