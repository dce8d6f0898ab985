"""Overlap and distance metrics for evaluating label maps (NumPy in, Python floats out).

Conventions for empty masks follow the BraTS evaluation:

* Dice, Jaccard, sensitivity, precision: both masks empty -> 1.0 (nothing to find, nothing found); exactly one
  empty -> 0.0. Sensitivity with an empty reference is 0/0 in the formula; it is set to 1.0 when the
  prediction is empty too and to 0.0 otherwise, so a false-positive-only case is penalised.
* Specificity: 1.0 when the reference has no negative voxel (nothing to be specific about).
* HD95: both empty -> 0.0; exactly one empty -> NaN by default, or the ``one_empty`` value you pass (the
  BraTS challenge uses :data:`BRATS_HD95_PENALTY` = 373.13 mm, the diagonal of its 240x240x155 volume).

:func:`score_case` reports the reference volume as ``vol_ref_<name>`` (mL), so an empty reference can be
recognised in a results table (``vol_ref_ET == 0``).

Example (``pred`` and ``ref`` are integer label maps of one case)::

    regions = {"WT": (1, 2, 4), "TC": (1, 4), "ET": (4,)}
    classes = {"NCR": (1,), "ED": (2,), "ET_label": (4,)}
    row = score_case(pred, ref, classes, regions, spacing=(1.0, 1.0, 1.0))
    row["dice_WT"], row["hd95_ET"]
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence

import numpy as np

from medseg3d.errors import InputError
from medseg3d.labels import value_masks
from medseg3d.preprocess import bounding_box

BRATS_HD95_PENALTY = 373.13
"""HD95 (mm) the BraTS challenge assigns when exactly one of prediction and reference is empty."""


def _pair(pred_mask, ref_mask) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred_mask)
    ref = np.asarray(ref_mask)
    if pred.shape != ref.shape:
        raise InputError(
            f"prediction shape {pred.shape} differs from reference shape {ref.shape}; "
            "resample or paste the prediction onto the reference grid first"
        )
    return (pred if pred.dtype == bool else pred != 0), (ref if ref.dtype == bool else ref != 0)


def _counts(pred: np.ndarray, ref: np.ndarray) -> tuple[int, int, int, int]:
    """True positives, false positives, false negatives, true negatives."""
    tp = int(np.count_nonzero(pred & ref))
    n_pred = int(np.count_nonzero(pred))
    n_ref = int(np.count_nonzero(ref))
    fp, fn = n_pred - tp, n_ref - tp
    return tp, fp, fn, pred.size - tp - fp - fn


def _ratio(numerator: int, denominator: int, both_empty: float) -> float:
    return numerator / denominator if denominator else both_empty


def dice(pred_mask, ref_mask) -> float:
    """Dice ``2|P & R| / (|P| + |R|)`` of two masks (nonzero = inside). Both empty -> 1.0, one empty -> 0.0.

    Args:
        pred_mask, ref_mask: arrays of one shape.
    """
    tp, fp, fn, _ = _counts(*_pair(pred_mask, ref_mask))
    return _ratio(2 * tp, 2 * tp + fp + fn, 1.0)


def jaccard(pred_mask, ref_mask) -> float:
    """Jaccard ``|P & R| / |P | R|``. Both empty -> 1.0, one empty -> 0.0.

    Args:
        pred_mask, ref_mask: arrays of one shape (nonzero = inside).
    """
    tp, fp, fn, _ = _counts(*_pair(pred_mask, ref_mask))
    return _ratio(tp, tp + fp + fn, 1.0)


def _sensitivity(tp: int, fp: int, fn: int) -> float:
    if tp + fn == 0:
        return 1.0 if fp == 0 else 0.0
    return tp / (tp + fn)


def _precision(tp: int, fp: int, fn: int) -> float:
    if tp + fp == 0:
        return 1.0 if fn == 0 else 0.0
    return tp / (tp + fp)


def sensitivity(pred_mask, ref_mask) -> float:
    """Sensitivity (recall) ``TP / (TP + FN)``. Empty reference: 1.0 if the prediction is empty, else 0.0.

    Args:
        pred_mask, ref_mask: arrays of one shape (nonzero = inside).
    """
    tp, fp, fn, _ = _counts(*_pair(pred_mask, ref_mask))
    return _sensitivity(tp, fp, fn)


def specificity(pred_mask, ref_mask) -> float:
    """Specificity ``TN / (TN + FP)``; 1.0 when the reference has no negative voxel.

    Args:
        pred_mask, ref_mask: arrays of one shape (nonzero = inside).
    """
    _, fp, _, tn = _counts(*_pair(pred_mask, ref_mask))
    return _ratio(tn, tn + fp, 1.0)


def precision(pred_mask, ref_mask) -> float:
    """Precision ``TP / (TP + FP)``. Empty prediction: 1.0 if the reference is empty, else 0.0.

    Args:
        pred_mask, ref_mask: arrays of one shape (nonzero = inside).
    """
    tp, fp, fn, _ = _counts(*_pair(pred_mask, ref_mask))
    return _precision(tp, fp, fn)


def _voxel_volume(spacing, ndim: int) -> float:
    spacing = _check_spacing(spacing, ndim)
    return float(np.prod(spacing))


def volume_difference(
    pred_mask, ref_mask, spacing: Sequence[float] = (1.0, 1.0, 1.0), relative: bool = False
) -> float:
    """Signed volume difference ``V(P) - V(R)``.

    Args:
        spacing: voxel size in mm along each array axis.
        relative: if False, return millilitres (``(|P| - |R|) * voxel volume / 1000``); if True, return
            ``(|P| - |R|) / |R|`` (0.0 when both are empty, NaN when only the reference is).
    """
    pred, ref = _pair(pred_mask, ref_mask)
    n_pred, n_ref = int(np.count_nonzero(pred)), int(np.count_nonzero(ref))
    if relative:
        if n_ref == 0:
            return 0.0 if n_pred == 0 else math.nan
        return (n_pred - n_ref) / n_ref
    return (n_pred - n_ref) * _voxel_volume(spacing, pred.ndim) / 1000.0


def _check_spacing(spacing, ndim: int) -> tuple[float, ...]:
    values = tuple(float(s) for s in np.atleast_1d(np.asarray(spacing, dtype=float)))
    if len(values) == 1:
        values = values * ndim
    if len(values) != ndim or not all(math.isfinite(s) and s > 0 for s in values):
        raise InputError(
            f"spacing {tuple(np.atleast_1d(spacing))} must give one positive size (mm) per array axis "
            f"({ndim}); take it from the image header"
        )
    return values


def hausdorff95(
    pred_mask,
    ref_mask,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    one_empty: float = math.nan,
) -> float:
    """95th-percentile symmetric Hausdorff distance between the mask surfaces, in millimetres.

    Surfaces are the mask voxels with a neighbour outside the mask (what is left after a binary erosion;
    voxels on the array border count as surface). For each direction (prediction -> reference and back) the
    95th percentile of the surface-to-nearest-surface distances is taken with linear interpolation between
    ranks (``torch.quantile``), and the larger of the two is returned. The computation is MONAI's
    :func:`monai.metrics.compute_hausdorff_distance` (``percentile=95``) on the two masks cropped to their
    joint bounding box plus one voxel, which gives the same result far faster on whole volumes.

    Args:
        pred_mask, ref_mask: masks of equal shape (nonzero = inside), 2D or 3D.
        spacing: voxel size in mm along each array axis (one number = isotropic).
        one_empty: value returned when exactly one mask is empty: NaN by default (the distance is undefined;
            :func:`summarize` counts NaNs separately), or e.g. :data:`BRATS_HD95_PENALTY` (373.13 mm) to
            score as the BraTS challenge does.

    Returns:
        The distance in mm; 0.0 when both masks are empty.
    """
    pred, ref = _pair(pred_mask, ref_mask)
    spacing = _check_spacing(spacing, pred.ndim)
    has_pred, has_ref = bool(pred.any()), bool(ref.any())
    if not has_pred and not has_ref:
        return 0.0
    if has_pred != has_ref:
        return float(one_empty)
    start, stop = bounding_box(pred | ref, margin=1)
    box = tuple(slice(a, b) for a, b in zip(start, stop))
    pred, ref = pred[box], ref[box]

    import torch
    from monai.metrics import compute_hausdorff_distance

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        distance = compute_hausdorff_distance(
            torch.from_numpy(np.ascontiguousarray(pred))[None, None],
            torch.from_numpy(np.ascontiguousarray(ref))[None, None],
            include_background=True,
            percentile=95,
            spacing=list(spacing),
        )
    return float(distance.reshape(-1)[0])


def region_dice(pred_labels: np.ndarray, ref_labels: np.ndarray, groups: Mapping[str, Sequence[int]]) -> dict:
    """Dice per named group of label values (e.g. BraTS WT/TC/ET regions), rounded to 4 digits.

    Args:
        pred_labels, ref_labels: label maps (file values) of one shape.
        groups: {name: the values the group holds}.
    """
    pred, ref = value_masks(pred_labels, groups), value_masks(ref_labels, groups)
    return {name: round(dice(pred[name], ref[name]), 4) for name in groups}


def _integer_labels(labels: np.ndarray, what: str) -> np.ndarray:
    if labels.dtype.kind in "iub":
        return labels
    as_int = labels.astype(np.int64)
    if labels.dtype.kind != "f" or not np.array_equal(as_int, labels):
        raise InputError(
            f"{what} label map must hold integer label values, got dtype {labels.dtype}; round it"
        )
    return as_int


def _present_values(labels: np.ndarray) -> list[int]:
    if labels.size and labels.dtype.kind in "iub" and labels.min() >= 0 and labels.max() < 2**16:
        return np.flatnonzero(np.bincount(labels.ravel().astype(np.intp, copy=False))).tolist()  # much faster
    return np.unique(labels).tolist()


def _check_labels(labels: np.ndarray, allowed: set[int], what: str) -> None:
    present = _present_values(labels)
    unknown = sorted(int(v) for v in present if v not in allowed)
    if unknown:
        raise InputError(
            f"{what} holds label values {unknown} that belong to no class (known: {sorted(allowed)}); "
            "fix the label mapping or add them to `classes`"
        )


def score_case(
    pred_labels,
    ref_labels,
    classes: Mapping[str, Sequence[int]],
    regions: Mapping[str, Sequence[int]] | None = None,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    hd95_one_empty: float = math.nan,
) -> dict[str, float]:
    """Score one predicted label map against its reference, per class and per region.

    Args:
        pred_labels, ref_labels: integer label maps of equal shape, in the dataset's own label values.
        classes: name -> label values making up that class, e.g. ``{"NCR": (1,), "ED": (2,), "ET": (4,)}``.
            Label 0 is background: always allowed, scored only if you list it.
        regions: name -> label values of (possibly overlapping) regions, e.g.
            ``{"WT": (1, 2, 4), "TC": (1, 4), "ET": (4,)}``. Names must not repeat class names.
        spacing: voxel size in mm along each array axis, for HD95 and volumes.
        hd95_one_empty: HD95 when exactly one mask is empty (NaN, or :data:`BRATS_HD95_PENALTY`).

    Returns:
        For every class and region ``<name>``: ``dice_``, ``jaccard_``, ``sens_``, ``spec_``, ``prec_``,
        ``hd95_`` (mm), ``voldiff_`` (predicted minus reference volume, mL) and ``vol_ref_`` (reference
        volume, mL; 0 marks an empty reference).

    Raises:
        InputError: shapes differ, a name repeats, or either map holds a value outside every class.
    """
    pred = np.asarray(pred_labels)
    ref = np.asarray(ref_labels)
    if pred.shape != ref.shape:
        raise InputError(
            f"prediction shape {pred.shape} differs from reference shape {ref.shape}; "
            "resample or paste the prediction onto the reference grid first"
        )
    pred, ref = _integer_labels(pred, "prediction"), _integer_labels(ref, "reference")
    regions = dict(regions or {})
    clash = sorted(set(classes) & set(regions))
    if clash:
        raise InputError(f"names {clash} are used for both a class and a region; rename one of them")
    spacing = _check_spacing(spacing, pred.ndim)
    allowed = {0} | {int(v) for values in classes.values() for v in np.atleast_1d(values)}
    _check_labels(pred, allowed, "prediction")
    _check_labels(ref, allowed, "reference")
    groups = {**classes, **regions}
    return score_masks(value_masks(pred, groups), value_masks(ref, groups), spacing, hd95_one_empty)


def score_masks(
    pred_masks: Mapping[str, np.ndarray],
    ref_masks: Mapping[str, np.ndarray],
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    hd95_one_empty: float = math.nan,
) -> dict[str, float]:
    """Score boolean masks by name (the columns of :func:`score_case`), for maps read with different
    label numberings: each side's masks come from its own scheme.

    Args:
        pred_masks, ref_masks: {name: mask}, the same names in the same order.
        spacing: voxel size in mm, (X, Y, Z).
        hd95_one_empty: the HD95 (mm) where exactly one side is empty (NaN, or the BraTS penalty).

    Returns:
        Per name: ``dice_``, ``jaccard_``, ``sens_``, ``spec_``, ``prec_``, ``hd95_`` (mm), ``voldiff_``
            (predicted
        minus reference, ml) and ``vol_ref_`` (ml).

    Raises:
        InputError: the names or shapes of the two sides differ, or a bad spacing.
    """
    if list(pred_masks) != list(ref_masks):
        raise InputError(f"prediction masks {list(pred_masks)} and reference masks {list(ref_masks)} differ")
    spacing = _check_spacing(spacing, next(iter(pred_masks.values())).ndim) if pred_masks else tuple(spacing)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    row: dict[str, float] = {}
    for name in pred_masks:
        p, r = np.asarray(pred_masks[name], bool), np.asarray(ref_masks[name], bool)
        if p.shape != r.shape:
            raise InputError(f"{name}: prediction shape {p.shape} differs from reference shape {r.shape}")
        tp, fp, fn, tn = _counts(p, r)
        row[f"dice_{name}"] = _ratio(2 * tp, 2 * tp + fp + fn, 1.0)
        row[f"jaccard_{name}"] = _ratio(tp, tp + fp + fn, 1.0)
        row[f"sens_{name}"] = _sensitivity(tp, fp, fn)
        row[f"spec_{name}"] = _ratio(tn, tn + fp, 1.0)
        row[f"prec_{name}"] = _precision(tp, fp, fn)
        row[f"hd95_{name}"] = hausdorff95(p, r, spacing, one_empty=hd95_one_empty)
        row[f"voldiff_{name}"] = (fp - fn) * voxel_ml
        row[f"vol_ref_{name}"] = (tp + fn) * voxel_ml
    return row


def _numeric_columns(rows: Sequence[Mapping]) -> list[str]:
    columns: list[str] = []
    for row in rows:
        for key, value in row.items():
            if key in columns or key == "case":
                continue
            if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
                columns.append(key)
    return columns


def summarize(rows: Sequence[Mapping]) -> dict[str, dict[str, float]]:
    """Per-metric statistics over cases: ``{metric: {"mean", "median", "std", "min", "max", "n", "n_nan"}}``.

    Every numeric column except ``case`` is summarised. NaNs (and cases missing the column) are left out of
    the statistics and counted in ``n_nan``; ``n`` counts the values used. ``std`` is the population
    standard deviation (``ddof=0``). A column with no finite value gets NaN statistics.
    """
    summary: dict[str, dict[str, float]] = {}
    for column in _numeric_columns(rows):
        values = np.array([float(row.get(column, math.nan)) for row in rows], dtype=float)
        kept = values[~np.isnan(values)]
        if kept.size:
            stats = {
                "mean": float(kept.mean()),
                "median": float(np.median(kept)),
                "std": float(kept.std()),
                "min": float(kept.min()),
                "max": float(kept.max()),
            }
        else:
            stats = dict.fromkeys(("mean", "median", "std", "min", "max"), math.nan)
        summary[column] = {**stats, "n": int(kept.size), "n_nan": int(values.size - kept.size)}
    return summary


def _fmt(value: float) -> str:
    return "nan" if math.isnan(value) else f"{value:.4f}"


def markdown_summary(rows: Sequence[Mapping], worst: Sequence[str] | None = None, n_worst: int = 3) -> str:
    """A Markdown report: a table of metrics x (mean, median, std, min, NaN count), then the worst cases.

    Args:
        rows: one dict per case, as returned by :func:`score_case`, optionally with a ``"case"`` id.
        worst: Dice columns to list worst cases for; default every ``dice_*`` column. Only used when the
            rows have ``"case"`` keys.
        n_worst: how many of the lowest-scoring cases to list per column.
    """
    summary = summarize(rows)
    lines = [
        f"Cases: {len(rows)}",
        "",
        "| metric | mean | median | std | min | NaN |",
        "|---|---|---|---|---|---|",
    ]
    for column, stats in summary.items():
        cells = " | ".join(_fmt(stats[key]) for key in ("mean", "median", "std", "min"))
        lines.append(f"| {column} | {cells} | {stats['n_nan']} |")
    if rows and all("case" in row for row in rows):
        columns = list(worst) if worst is not None else [c for c in summary if c.startswith("dice_")]
        if columns:
            lines += ["", "Worst cases:", ""]
        for column in columns:
            scored = [(float(row.get(column, math.nan)), str(row["case"])) for row in rows]
            scored.sort(key=lambda item: (math.isnan(item[0]), item[0]))
            listed = ", ".join(f"{case} ({_fmt(value)})" for value, case in scored[:n_worst])
            lines.append(f"- {column}: {listed}")
    return "\n".join(lines) + "\n"


__all__ = [
    "BRATS_HD95_PENALTY",
    "dice",
    "hausdorff95",
    "jaccard",
    "markdown_summary",
    "precision",
    "score_case",
    "score_masks",
    "sensitivity",
    "specificity",
    "summarize",
    "volume_difference",
]
