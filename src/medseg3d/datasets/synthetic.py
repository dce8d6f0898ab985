"""Synthetic non-enhancing variants of labelled BraTS cases (issue #40, lever 2).

Many gliomas do not enhance: their tumour core is dark or grey on T1ce, with no bright rim. The shared
development set has 3 such (low-grade) cases out of 27, so a network trained on it learns "core = enhancing
rim + what it encloses" and calls a non-enhancing core oedema. A variant of a high-grade case whose
enhancement is taken out of T1ce, with the enhancing label moved to the core, shows it the other kind.

:func:`remove_enhancement` works on arrays: inside the enhancing region (label 4) every T1ce voxel gets the
intensity of the same rank in the case's own necrosis / non-enhancing core (label 1; the oedema, label 2, when
the case has too little core), so the region keeps its texture ordering but takes the dark core's intensity
distribution, the way a non-enhancing tumour looks on the same scanner; then the region is smoothed with its
surroundings (a Gaussian of ``sigma_mm``) so that no step edge outlines the former rim. Every voxel outside
the enhancing region is left exactly as it was, as are the other three sequences (enhancement is a T1ce
finding).

:func:`write_nonenhancing_variant` writes one case folder in the BraTS layout (``<case><SUFFIX>``) beside
others, so that caching, training and cross-validation take variants as ordinary cases; their ids end in
:data:`VARIANT_SUFFIX`, which tells training to keep each variant on the training side with its parent case
(:func:`variant_parent`).

It is a data-generation step run once, not a random augmentation: the edit needs the label and the raw
intensities of the whole case, and the written cases can be looked at and checked.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io import atomic_write, read_volume, write_volume
from .case import Case

VARIANT_SUFFIX = "_nonenh"
"""Case-id suffix of a synthetic non-enhancing variant: ``Brats18_2013_2_1_nonenh``."""

ENHANCING, CORE, EDEMA = 4, 1, 2


def variant_parent(case_id: str) -> str | None:
    """The case a synthetic variant was made from, or None for a case that is not a variant."""
    return case_id[: -len(VARIANT_SUFFIX)] if case_id.endswith(VARIANT_SUFFIX) else None


def remove_enhancement(
    t1ce: np.ndarray,
    labels: np.ndarray,
    spacing=(1.0, 1.0, 1.0),
    sigma_mm: float = 1.0,
    min_source_voxels: int = 200,
    target_z: float | None = None,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Take the enhancement out of one case's T1ce and move its enhancing label to the core (module
    docstring).

    Args:
        t1ce: the T1ce volume (any numeric dtype; the result has the same dtype).
        labels: its BraTS label map (0, 1 necrosis/non-enhancing core, 2 oedema, 4 enhancing), same shape.
        spacing: voxel size in mm (for the smoothing's width).
        sigma_mm: standard deviation of the Gaussian that blends the region with its surroundings; 0: none.
        min_source_voxels: fewest core voxels whose intensities are matched; below it the oedema's are used.
        target_z: when given, the matched intensities are shifted so that their median lies ``target_z``
            interquartile ranges of the normal brain (nonzero voxels outside the tumour) from its median: a
            high-grade case's necrosis is often brighter than a low-grade tumour's core, and this sets the
            level the real low-grade cores show (see :func:`robust_z`).

    Returns:
        ``(t1ce, labels, summary)``: the new T1ce (only enhancing voxels differ), the labels with 4 -> 1, and
        ``{"voxels", "source", "source_median", "enhancing_median_before", "after_median", "after_z"}``.

    Raises:
        InputError: shapes differ, no enhancing tumour, or too little core and oedema to match to.
    """
    t1ce, labels = np.asarray(t1ce), np.asarray(labels)
    if t1ce.shape != labels.shape or t1ce.ndim != 3:
        raise InputError(f"T1ce {t1ce.shape} and labels {labels.shape} must be one 3D grid")
    enhancing = labels == ENHANCING
    n = int(enhancing.sum())
    if n == 0:
        raise InputError("the case has no enhancing tumour (label 4) to remove; choose a high-grade case")
    source = "core"
    reference = t1ce[labels == CORE]
    if reference.size < min_source_voxels:
        source, reference = "edema", t1ce[labels == EDEMA]
    if reference.size < min_source_voxels:
        raise InputError(
            f"too little core and oedema ({reference.size} voxels) to take non-enhancing intensities "
            "from; choose another case"
        )
    values = t1ce[enhancing].astype(np.float64)
    # rank matching: the k-th darkest enhancing voxel takes the core's intensity at the same quantile
    ranks = np.empty(n, dtype=np.float64)
    ranks[np.argsort(values, kind="stable")] = (np.arange(n) + 0.5) / n
    matched = np.quantile(reference.astype(np.float64), ranks)
    brain_median, brain_iqr = _brain_level(t1ce, labels)
    if target_z is not None:
        matched += brain_median + target_z * brain_iqr - float(np.median(matched))
        if t1ce.min() >= 0:  # a non-negative scan stays so (the background is 0)
            matched = np.maximum(matched, 0.0)
    work = t1ce.astype(np.float64)
    work[enhancing] = matched
    if sigma_mm > 0:
        from scipy import ndimage

        sigma = [sigma_mm / float(s) for s in spacing]
        reach = [int(np.ceil(4 * s)) + 1 for s in sigma]
        box = ndimage.find_objects(enhancing.astype(np.uint8))[0]
        box = tuple(
            slice(max(b.start - r, 0), min(b.stop + r, size)) for b, r, size in zip(box, reach, t1ce.shape)
        )
        smooth = ndimage.gaussian_filter(work[box], sigma, mode="nearest")
        inside = enhancing[box]
        region = work[box]
        region[inside] = smooth[inside]
    out = work
    if np.issubdtype(t1ce.dtype, np.integer):
        info = np.iinfo(t1ce.dtype)
        out = np.clip(np.rint(out), info.min, info.max)
    out = out.astype(t1ce.dtype)
    out[~enhancing] = t1ce[~enhancing]  # bit for bit, whatever the float round trip did
    new_labels = labels.copy()
    new_labels[enhancing] = CORE
    summary = {
        "voxels": n,
        "source": source,
        "source_median": float(np.median(reference)),
        "enhancing_median_before": float(np.median(values)),
        "after_median": float(np.median(out[enhancing])),
        "after_z": (float(np.median(out[enhancing])) - brain_median) / brain_iqr,
    }
    return out, new_labels, summary


def _brain_level(t1ce: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(median, interquartile range) of the normal brain's intensities: nonzero voxels outside the tumour."""
    brain = t1ce[(t1ce != 0) & (labels == 0)].astype(np.float64)
    if brain.size < 100:
        raise InputError(
            f"only {brain.size} brain voxels outside the tumour; is the T1ce skull-stripped and labelled?"
        )
    q1, median, q3 = np.percentile(brain, (25, 50, 75))
    return float(median), float(max(q3 - q1, 1e-6))


def robust_z(t1ce: np.ndarray, region: np.ndarray, labels: np.ndarray) -> float:
    """The median intensity of ``region`` in interquartile ranges of the normal brain from its median
    (nonzero voxels outside the tumour, ``labels > 0``): a level that compares across scanners and intensity
    scales.

    Args:
        t1ce: the image.
        region: the mask whose median is taken.
        labels: the case's label map (tumour: > 0).

    Returns:
        (median of the region - median of the brain) / interquartile range of the brain.

    Raises:
        InputError: fewer than 100 brain voxels outside the tumour.
    """
    median, iqr = _brain_level(np.asarray(t1ce), np.asarray(labels))
    return (float(np.median(np.asarray(t1ce)[np.asarray(region, bool)])) - median) / iqr


def write_nonenhancing_variant(
    case: Case, out_dir: str | Path, sigma_mm: float = 1.0, target_z: float | None = None
) -> tuple[Case, dict]:
    """Write the non-enhancing variant of ``case`` as ``out_dir/<case><SUFFIX>/`` in the BraTS layout.

    T1ce and labels are edited by :func:`remove_enhancement` and written on the case's own affine; the other
    channels are copied byte for byte. Each file is written atomically (no half-written file on failure).

    Args:
        case: a labelled BraTS case with a ``t1ce`` channel.
        out_dir: the folder the variant's case folder goes in.
        sigma_mm, target_z: see :func:`remove_enhancement`.

    Returns:
        (the written case, the summary of :func:`remove_enhancement`).

    Raises:
        InputError: no label, no T1ce, a variant of a variant, or what :func:`remove_enhancement` refuses.
    """
    if case.label is None:
        raise InputError(f"case {case.case_id}: has no label map; a variant needs the enhancing region")
    if "t1ce" not in case.channels:
        raise InputError(f"case {case.case_id}: has no T1ce channel ({', '.join(case.channels)})")
    if variant_parent(case.case_id) is not None:
        raise InputError(f"case {case.case_id}: is a variant already; make variants of the original cases")
    image, label = read_volume(case.channels["t1ce"]), read_volume(case.label)
    if image.array.shape != label.array.shape:
        raise InputError(
            f"case {case.case_id}: T1ce {image.array.shape} and label {label.array.shape} differ in "
            "shape; the case is not co-registered"
        )
    new_t1ce, new_labels, summary = remove_enhancement(
        np.asarray(image.array), np.asarray(label.array), image.spacing, sigma_mm, target_z=target_z
    )
    variant_id = case.case_id + VARIANT_SUFFIX
    folder = Path(out_dir) / variant_id
    folder.mkdir(parents=True, exist_ok=True)
    channels = {}
    for modality, path in case.channels.items():
        target = folder / f"{variant_id}_{modality}.nii.gz"
        if modality == "t1ce":
            write_volume(image.with_array(new_t1ce), target)
        else:
            atomic_write(target, lambda tmp, source=path: shutil.copyfile(source, tmp))
        channels[modality] = target
    label_target = folder / f"{variant_id}_seg.nii.gz"
    write_volume(label.with_array(new_labels), label_target)
    return Case(
        variant_id, channels, label_target, {"grade": "synthetic-nonenhancing", "parent": case.case_id}
    ), summary


__all__ = ["VARIANT_SUFFIX", "remove_enhancement", "robust_z", "variant_parent", "write_nonenhancing_variant"]
