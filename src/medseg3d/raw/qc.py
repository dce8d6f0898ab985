"""Quality checks of the raw-input pipeline: warnings a person should read before trusting a result.

Each check returns ``None`` or one line; the pipeline prints them, records them in the case's JSON and carries
on (exit status 0). Thresholds:

* brain volume outside 800-2,000 ml (adult brains with tumour; deepbet's estimate of the raw case:
  docs/raw.md#the-real-raw-case-tcga-fg-6692);
* template fit: the Dice overlap of the registered brain with the template's brain, and the correlation of
  the skull-stripped channel with its modality's template inside both (thresholds below, calibrated by
  ``validation/qc_calibration.py``);
* channels that fit the modality templates much better in another order (swapped files, a T1 given as T2);
* brain that a channel's field of view does not cover (thin slabs);
* tumour outside the brain mask, or a third of its surface within 2 mm of the mask's edge (the skull
  stripping may have cut it).
"""

from __future__ import annotations

import numpy as np

from .template import MODALITIES

BRAIN_ML = (800.0, 2000.0)
# Calibrated with validation/qc_calibration.py on the 27 shared cases (aligned by construction): brain overlap
# 0.86-0.96, T1 correlation 0.37-0.71, T1ce 0.25-0.61; moved by 10 mm, 10 degrees or 15% scale they drop
# (overlap 0.70-0.93, T1 0.15-0.65). No aligned case is flagged; gross failures are, small errors often not.
MIN_BRAIN_OVERLAP = 0.85
MIN_TEMPLATE_CORRELATION = {"t1": 0.3, "t1ce": 0.2}
PERMUTATION_GAIN = 0.3
MAX_UNCOVERED = 0.05
EDGE_MM = 2.0
MAX_SURFACE_AT_EDGE = 0.3


def correlation(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """Pearson correlation of ``a`` and ``b`` inside ``mask`` (0 when either is constant there).

    Args:
        a, b: images of one shape.
        mask: boolean, of that shape; fewer than 2 voxels give 0.
    """
    x = a[mask].astype(np.float64)
    y = b[mask].astype(np.float64)
    if x.size < 2 or x.std() == 0 or y.std() == 0:
        return 0.0
    return float(np.corrcoef(x, y)[0, 1])


def check_brain_volume(ml: float) -> str | None:
    """The warning when a brain volume (ml) lies outside :data:`BRAIN_ML` (skull stripping may have failed),
    else None."""
    lo, hi = BRAIN_ML
    if not lo <= ml <= hi:
        return (
            f"brain volume {ml:.0f} ml is outside {lo:.0f}-{hi:.0f} ml: the skull stripping may have failed "
            "(look at the picture)"
        )
    return None


def template_fit(channels: dict[str, np.ndarray], brain: np.ndarray, template) -> dict:
    """How well a case on the BraTS grid fits the template: the Dice overlap of its brain with the template's,
    and the correlation of each channel with each modality's template inside both brains (2 mm grid).

    Args:
        channels: {modality: (X, Y, Z) image on the BraTS grid}.
        brain: the case's boolean brain mask, on that grid.
        template: the loaded template (:func:`medseg3d.raw.template.load_template`).

    Returns:
        {"brain_overlap": Dice in [0, 1], "correlation": {channel: {template modality: r}}}.
    """
    from .template import brain_fraction, to_template_grid

    tmask = template.brain >= 0.5
    fraction = brain_fraction(brain, template)
    small = {m: to_template_grid(array, brain, fraction, template) for m, array in channels.items()}
    mask = fraction >= 0.5
    overlap = 2.0 * float((mask & tmask).sum()) / max(int(mask.sum()) + int(tmask.sum()), 1)
    both = mask & tmask
    scores = {
        c: {m: round(correlation(img, template.images[m], both), 3) for m in MODALITIES}
        for c, img in small.items()
    }
    return {"brain_overlap": round(overlap, 4), "correlation": scores}


def check_template_fit(overlap: float, corr: float, modality: str) -> str | None:
    """The warning when a case fits the template poorly after registration, else None.

    Args:
        overlap: the brain overlap (Dice) with the template's brain; below :data:`MIN_BRAIN_OVERLAP` warns.
        corr: the channel's correlation with its own modality's template.
        modality: that modality (its least correlation from :data:`MIN_TEMPLATE_CORRELATION`, else 0.2).
    """
    least = MIN_TEMPLATE_CORRELATION.get(modality, 0.2)
    if overlap < MIN_BRAIN_OVERLAP or corr < least:
        return (
            f"the brain fits the template poorly after registration (brain overlap {overlap:.2f}, {modality} "
            f"correlation {corr:.2f}; expected at least {MIN_BRAIN_OVERLAP} and {least}): "
            "the alignment or the skull stripping may have failed (look at the picture)"
        )
    return None


def check_modalities(scores: dict) -> list[str]:
    """A warning when another assignment of the channels to modalities fits the templates much better.

    Correlations with the mean templates are modest on thick-slice clinical scans (the raw shared case's FLAIR
    fits the T1 template as well as its own; measured: docs/raw.md, "Figures quoted by the code"), so single
    channels are not judged alone: the sum over all
    channels of the given assignment is compared with the best permutation, which must gain more than
    ``PERMUTATION_GAIN`` (a T1/T2 or FLAIR/T2 swap gains about 1).
    """
    from itertools import permutations

    channels = [c for c in scores if c in scores[c]]
    if len(channels) < 2:
        return []
    given = sum(scores[c][c] for c in channels)
    best, best_sum = tuple(channels), given
    for perm in permutations(channels):
        total = sum(scores[c][m] for c, m in zip(channels, perm))
        if total > best_sum:
            best, best_sum = perm, total
    if best_sum - given <= PERMUTATION_GAIN:
        return []
    moved = ", ".join(f"{c} looks like {m}" for c, m in zip(channels, best) if c != m)
    return [
        (
            f"the channels may be swapped ({moved}; template fit {best_sum:.2f} against {given:.2f} as "
            "given): check which file is which (--flair --t1 --t1ce --t2)"
        )
    ]


def check_coverage(uncovered: dict[str, float]) -> list[str]:
    """One warning per channel whose field of view misses more than :data:`MAX_UNCOVERED` of the brain."""
    return [
        f"{c}: {100 * f:.0f}% of the brain lies outside this scan's field of view; the model sees zeros there"
        for c, f in uncovered.items()
        if f > MAX_UNCOVERED
    ]


def check_tumour_in_brain(tumour: np.ndarray, brain: np.ndarray, spacing=(1.0, 1.0, 1.0)) -> list[str]:
    """Warnings when predicted tumour lies outside the brain mask, or when much of its surface lies within
    ``EDGE_MM`` of the mask's edge (measured in millimetres, so thick slices do not widen the band).

    Args:
        tumour: boolean (X, Y, Z) mask of the predicted tumour.
        brain: boolean brain mask on the same grid.
        spacing: voxel size in mm, (X, Y, Z).

    Returns:
        Warning lines (none for an empty tumour or brain): over 1% outside the mask, or more than
        :data:`MAX_SURFACE_AT_EDGE` of the surface at the edge.
    """
    from scipy import ndimage

    n = int(tumour.sum())
    if n == 0 or not brain.any():
        return []
    out = []
    outside = float((tumour & ~brain).sum()) / n
    if outside > 0.01:
        out.append(f"{100 * outside:.0f}% of the predicted tumour lies outside the brain mask")
    depth = ndimage.distance_transform_edt(brain, sampling=[float(s) for s in spacing])
    surface = tumour & ~ndimage.binary_erosion(tumour) & brain
    if surface.any():
        at_edge = float((depth[surface] <= EDGE_MM).mean())
        if at_edge > MAX_SURFACE_AT_EDGE:
            out.append(
                f"{100 * at_edge:.0f}% of the tumour's surface lies on the edge of the brain mask: the skull "
                "stripping may have cut the tumour off (look at the picture)"
            )
    return out
