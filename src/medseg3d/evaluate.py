"""Scoring a folder of predictions against references (``medseg3d evaluate``).

Predictions are matched to references by case id: ``PRED_DIR/<case>.<suffix>`` against either a folder of
label files with the same names or a dataset folder (its cases' label files). Each case is scored per class
and per region (Dice, Jaccard, sensitivity, specificity, precision, HD95 in mm, volumes); ``metrics.csv``
gets one row per case and a Markdown summary (mean, median, std, min, worst cases) is returned.

Empty references follow the BraTS convention: both empty -> Dice 1 and HD95 0; exactly one empty -> Dice 0
and HD95 NaN (or the BraTS penalty of 373.13 mm with ``hd95_penalty=True``).
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np

from .datasets import dataset_labels, find_cases
from .errors import InputError
from .io import Volume, is_image_file, read_volume, strip_image_suffix, write_rows
from .labels import LabelScheme, LabelStats, get_scheme, resolve_convention, scheme_from_labels
from .metrics import BRATS_HD95_PENALTY, markdown_summary, score_masks
from .preprocess import bounding_box


def find_references(ref: Path, wanted=None) -> dict[str, Path]:
    """case id -> reference label file, from a folder of label files or a dataset folder.

    Args:
        ref: a folder of label files, or a dataset folder (its cases' labels).
        wanted: the case ids to score (None: any); a folder of files holding none of them is read as a
            dataset.

    Raises:
        InputError: ``ref`` does not exist.
    """
    if not ref.exists():
        raise InputError(f"{ref}: no such reference folder; check the path")
    files = (
        {strip_image_suffix(p.name): p for p in sorted(ref.iterdir()) if is_image_file(p)}
        if ref.is_dir()
        else {}
    )
    if files and (wanted is None or set(files) & set(wanted)):
        return files
    try:  # a case folder of images (BRATS 2012 .mha) holds files too: its cases' labels are the references
        cases = find_cases(ref)
    except InputError:
        if files:
            return files
        raise
    return {c.case_id: c.label for c in cases if c.label is not None} or files


# Largest difference between the prediction's and the reference's affine entries, in mm (and relative 1e-5
# of each entry, so origins far from zero still compare): what resampling round-off leaves, far below a voxel.
AFFINE_TOLERANCE_MM = 1e-3


def _grid_problem(case_id: str, pred: Volume, ref: Volume) -> str | None:
    if pred.shape != ref.shape:
        return f"case {case_id}: prediction grid {pred.shape} differs from the reference's {ref.shape}"
    if np.allclose(pred.affine, ref.affine, rtol=1e-5, atol=AFFINE_TOLERANCE_MM):
        return None
    what = []
    if not np.allclose(pred.origin, ref.origin, rtol=1e-5, atol=AFFINE_TOLERANCE_MM):
        what.append(f"origin {_fmt(pred.origin)} against {_fmt(ref.origin)} mm")
    if not np.allclose(pred.spacing, ref.spacing, rtol=1e-5, atol=AFFINE_TOLERANCE_MM):
        what.append(f"spacing {_fmt(pred.spacing)} against {_fmt(ref.spacing)} mm")
    if not what:
        what.append(
            f"orientation {''.join(pred.axcodes)} against {''.join(ref.axcodes)} (axis directions differ)"
        )
    return (
        f"case {case_id}: prediction and reference lie on different grids ({'; '.join(what)}, tolerance "
        f"{AFFINE_TOLERANCE_MM:g} mm); predict from the reference's own images or resample onto its grid"
    )


def _fmt(values) -> str:
    return "(" + ", ".join(f"{v + 0.0:.6g}" for v in values) + ")"


def _crop(pred: np.ndarray, ref: np.ndarray) -> tuple[tuple[slice, ...], np.ndarray, np.ndarray]:
    """Both maps cut to the box around their labels (kept between the passes instead of whole volumes)."""
    labelled = (pred != 0) | (ref != 0)
    if not labelled.any():
        box = tuple(slice(0, 0) for _ in pred.shape)
    else:
        start, stop = bounding_box(labelled)
        box = tuple(slice(a, b) for a, b in zip(start, stop))
    return box, pred[box].copy(), ref[box].copy()


def _uncrop(shape, box, part: np.ndarray) -> np.ndarray:
    full = np.zeros(shape, dtype=part.dtype)
    full[box] = part
    return full


def _masks(scheme: LabelScheme, labels: np.ndarray, names: list[str], where: str) -> dict[str, np.ndarray]:
    classes = scheme.to_classes(labels, where=where)
    out = {}
    for name in names:
        if name in scheme.class_names:
            out[name] = classes == scheme.class_names.index(name)
        else:
            out[name] = np.isin(classes, [scheme.values.index(v) for v in scheme.regions[name]])
    return out


def _shared_names(pred: LabelScheme, ref: LabelScheme) -> list[str]:
    """Classes (by name, background left out) and regions that both numberings define, prediction's order."""
    names = [n for n in pred.class_names[1:] if n in ref.class_names[1:]]
    names += [n for n in pred.regions if n in ref.regions and n not in names]
    if not names:
        raise InputError(
            f"the '{pred.name}' predictions and '{ref.name}' references share no class or region; "
            "choose --labels and --ref-labels that describe the same structures"
        )
    return names


def volume_agreement(rows: list[dict], names) -> str:
    """A Markdown table: per region, mean reference and predicted volume (ml), their Pearson correlation over
    cases (NaN for one case or a constant volume) and the mean absolute difference.

    Args:
        rows: the per-case rows (``vol_ref_<name>``, ``vol_pred_<name>`` in ml).
        names: the regions.
    """
    lines = [
        "| region | reference ml (mean) | predicted ml (mean) | Pearson r | mean abs. difference ml |",
        "|---|---|---|---|---|",
    ]
    for name in names:
        ref = np.array([row[f"vol_ref_{name}"] for row in rows], dtype=float)
        pred = np.array([row[f"vol_pred_{name}"] for row in rows], dtype=float)
        if ref.size >= 2 and ref.std() > 0 and pred.std() > 0:
            r = float(np.corrcoef(ref, pred)[0, 1])
        else:
            r = math.nan  # undefined for one case or a constant volume
        lines.append(
            f"| {name} | {ref.mean():.2f} | {pred.mean():.2f} | {r:.3f} | {np.abs(pred - ref).mean():.2f} |"
        )
    return "\n".join(lines)


def _check_csv_target(out_csv: Path) -> None:
    if out_csv.is_dir():
        raise InputError(f"{out_csv}: is a folder; give --csv a file name such as metrics.csv")
    if not out_csv.parent.is_dir():
        raise InputError(
            f"{out_csv.parent}: folder for the metrics does not exist; create it or choose another --csv"
        )
    if not os.access(out_csv.parent, os.W_OK) or (out_csv.exists() and not os.access(out_csv, os.W_OK)):
        raise InputError(f"{out_csv}: cannot be written (permission denied); choose another --csv")


# a dataset.json class name with one of these words makes the references a brain tumour's, scored with the
# BraTS scheme and its regions: words starting with a stem, or equal to a short name
_TUMOUR_STEMS = ("tumo", "edema", "oedema", "enhanc", "necro")
_TUMOUR_NAMES = {"core", "ncr", "net", "et", "tc", "wt"}


def default_labels(ref) -> str | LabelScheme:
    """The numbering of the references at ``ref`` when none is named: the classes of the ``dataset.json`` of
    the dataset they belong to (``ref`` itself, or the dataset folder above ``ref`` = ``labelsTr``) when they
    are not a brain tumour's (e.g. anterior / posterior hippocampus), else ``"brats"``.

    Args:
        ref: a folder of reference label files or a dataset folder.

    Returns:
        ``"brats"`` or a :class:`LabelScheme` built from the dataset's ``labels``.
    """
    ref = Path(ref)
    for root in (ref, ref.parent):
        labels = dataset_labels(root) if (root / "dataset.json").is_file() else None
        if labels:
            words = re.findall(r"[a-z]+", " ".join(str(name).lower() for name in labels))
            if any(w.startswith(_TUMOUR_STEMS) or w in _TUMOUR_NAMES for w in words):
                return "brats"
            return scheme_from_labels(labels, name="dataset")
    return "brats"


def evaluate(
    pred_dir,
    ref,
    labels: str | LabelScheme | None = None,
    out_csv=None,
    hd95_penalty: bool = False,
    progress: bool = True,
    ref_labels: str | LabelScheme | None = None,
    lesion_wise: bool = False,
) -> tuple[list[dict], str]:
    """Score every prediction in ``pred_dir`` that has a reference.

    Each prediction must lie on its reference's grid: same shape and the same affine to
    :data:`AFFINE_TOLERANCE_MM` (a moved origin or another spacing is refused). For the BraTS family the
    numbering each side really uses is checked from its values (:func:`medseg3d.labels.resolve_convention`):
    BRATS 2012 or nnU-Net-numbered references are read as such, with a note in the summary, and values that
    fit two numberings are refused with the choices to pass. Classes and regions both numberings define are
    scored.

    Args:
        pred_dir: the folder of predicted label files.
        ref: the references (:func:`find_references`).
        labels: the numbering of the predictions (None: :func:`default_labels`, a non-tumour dataset's own
            classes, else BraTS's).
        out_csv: where ``metrics.csv`` is written, atomically (None: ``pred_dir/metrics.csv``).
        hd95_penalty: where one side of a region is empty, HD95 is the BraTS penalty (373.13 mm), not NaN.
        progress: show a progress bar.
        ref_labels: the numbering of the references (None: as ``labels``).
        lesion_wise: add the BraTS 2023 lesion-wise columns per region (:mod:`medseg3d.lesionwise`).

    Returns:
        (rows, Markdown summary); rows hold Dice, HD95 (mm) and ``vol_pred_<name>``, ``vol_ref_<name>`` (ml)
        per region; the summary adds their Pearson correlation and mean absolute difference per region.

    Raises:
        InputError: missing or unreadable files, grids that differ, label values that fit no numbering, or
            a metrics file that cannot be written (one line each).
    """
    from tqdm import tqdm

    if labels is None:
        labels = default_labels(ref)
    declared_pred = get_scheme(labels) if isinstance(labels, str) else labels
    if ref_labels is None:
        declared_ref = declared_pred
    else:
        declared_ref = get_scheme(ref_labels) if isinstance(ref_labels, str) else ref_labels
    pred_dir, ref = Path(pred_dir), Path(ref)
    if not pred_dir.is_dir():
        raise InputError(
            f"{pred_dir}: not a folder of predictions; give the folder written by medseg3d predict"
        )
    preds = {
        strip_image_suffix(p.name): p
        for p in sorted(pred_dir.iterdir())
        if is_image_file(p) and "_probabilities" not in p.name
    }
    if not preds:
        raise InputError(f"{pred_dir}: holds no prediction files (.nii.gz, .mha...)")
    refs = find_references(ref, wanted=preds)
    matched = [c for c in preds if c in refs]
    if not matched:
        raise InputError(
            f"no prediction in {pred_dir} has a reference in {ref} (case ids differ, e.g. "
            f"{next(iter(preds))})"
        )
    out_csv = Path(out_csv) if out_csv else pred_dir / "metrics.csv"
    _check_csv_target(out_csv)

    # pass 1: read every pair, check grids, pool the label statistics that tell the numbering apart
    pred_stats, ref_stats = LabelStats(), LabelStats()
    kept = {}
    for case_id in tqdm(matched, desc="read", unit="case", disable=not progress):
        p, r = read_volume(preds[case_id]), read_volume(refs[case_id])
        problem = _grid_problem(case_id, p, r)
        if problem:
            raise InputError(problem)
        if p.array.ndim != 3 or r.array.ndim != 3:
            raise InputError(
                f"case {case_id}: prediction or reference is not a 3D label map "
                f"({p.array.shape}, {r.array.shape})"
            )
        pred_stats.add(p.array)
        ref_stats.add(r.array)
        kept[case_id] = (r.shape, r.spacing, *_crop(p.array, r.array))
    pred_scheme, pred_note = resolve_convention(
        declared_pred, pred_stats, f"predictions in {pred_dir}", by_shape=False
    )
    ref_option = "--ref-labels" if ref_labels is not None else "--labels"
    ref_scheme, ref_note = resolve_convention(
        declared_ref, ref_stats, f"references in {ref}", option=ref_option
    )
    names = _shared_names(pred_scheme, ref_scheme)

    # pass 2: score
    rows = []
    for case_id in tqdm(matched, desc="evaluate", unit="case", disable=not progress):
        shape, spacing, box, p_part, r_part = kept.pop(case_id)
        p_full, r_full = _uncrop(shape, box, p_part), _uncrop(shape, box, r_part)
        pm = _masks(pred_scheme, p_full, names, f"case {case_id} prediction")
        rm = _masks(ref_scheme, r_full, names, f"case {case_id} reference")
        scores = score_masks(
            pm, rm, spacing=spacing, hd95_one_empty=BRATS_HD95_PENALTY if hd95_penalty else math.nan
        )
        voxel_ml = float(np.prod(spacing)) / 1000.0
        row: dict = {"case": case_id}
        for key, value in scores.items():
            row[key] = value
            if key.startswith("vol_ref_"):
                name = key[len("vol_ref_") :]
                row[f"vol_pred_{name}"] = int(np.count_nonzero(pm[name])) * voxel_ml
        if lesion_wise:
            from .lesionwise import lesion_wise_masks

            row.update(lesion_wise_masks(pm, rm, [n for n in names if n in pred_scheme.regions], spacing))
        rows.append(row)
    try:
        write_rows(rows, out_csv)
    except OSError as exc:
        raise InputError(
            f"{out_csv}: cannot write the metrics ({exc.strerror or exc}); choose another --csv or free space"
        ) from exc
    missing = sorted(set(preds) - set(matched))
    regions = [n for n in names if n in pred_scheme.regions] or names
    summary = markdown_summary(rows)
    summary += f"\nVolume agreement over {len(rows)} case(s):\n\n" + volume_agreement(rows, regions) + "\n"
    note = "\nEmpty references: both empty -> Dice 1, HD95 0; one empty -> Dice 0, HD95 " + (
        "373.13 mm (BraTS penalty)." if hd95_penalty else "NaN (left out of the statistics, counted)."
    )
    for label_note in (pred_note, ref_note):
        if label_note:
            note += f"\nNote: {label_note}."
    if pred_scheme.name != ref_scheme.name:
        note += (
            f"\nScored what '{pred_scheme.name}' predictions and '{ref_scheme.name}' references share: "
            f"{', '.join(names)}."
        )
    if missing:
        note += f"\nNo reference for {len(missing)} prediction(s): {', '.join(missing[:5])}"
    return rows, summary + "\n" + note
