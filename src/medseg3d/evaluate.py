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
from pathlib import Path

import numpy as np

from .datasets import find_cases
from .errors import InputError
from .io import image_suffix, is_image_file, read_volume
from .labels import LabelScheme, get_scheme
from .metrics import BRATS_HD95_PENALTY, markdown_summary, score_case, write_rows


def _strip(name: str) -> str:
    suffix = image_suffix(name)
    return name[: -len(suffix)] if suffix else name


def find_references(ref: Path) -> dict[str, Path]:
    """case id -> reference label file, from a folder of label files or a dataset folder."""
    if not ref.exists():
        raise InputError(f"{ref}: no such reference folder; check the path")
    files = {_strip(p.name): p for p in sorted(ref.iterdir()) if is_image_file(p)} if ref.is_dir() else {}
    if files:
        return files
    cases = find_cases(ref)
    return {c.case_id: c.label for c in cases if c.label is not None}


def evaluate(
    pred_dir,
    ref,
    labels: str | LabelScheme = "brats",
    out_csv=None,
    hd95_penalty: bool = False,
    progress: bool = True,
    lesion_wise: bool = False,
) -> tuple[list[dict], str]:
    """Score every prediction in ``pred_dir`` that has a reference; returns (rows, Markdown summary).

    ``lesion_wise=True`` adds the BraTS 2023 lesion-wise columns per region (:mod:`medseg3d.lesionwise`).

    ``metrics.csv`` is written to ``out_csv`` (default ``pred_dir/metrics.csv``) atomically.
    """
    from tqdm import tqdm

    scheme = get_scheme(labels) if isinstance(labels, str) else labels
    pred_dir, ref = Path(pred_dir), Path(ref)
    if not pred_dir.is_dir():
        raise InputError(f"{pred_dir}: not a folder of predictions; give the folder written by medseg3d predict")
    preds = {_strip(p.name): p for p in sorted(pred_dir.iterdir()) if is_image_file(p) and "_probabilities" not in p.name}
    if not preds:
        raise InputError(f"{pred_dir}: holds no prediction files (.nii.gz, .mha...)")
    refs = find_references(ref)
    matched = [c for c in preds if c in refs]
    if not matched:
        raise InputError(f"no prediction in {pred_dir} has a reference in {ref} (case ids differ, e.g. {next(iter(preds))})")
    classes = {name: (v,) for name, v in zip(scheme.class_names[1:], scheme.values[1:])}
    allowed = set(scheme.values) | set(scheme.merge)
    rows = []
    for case_id in tqdm(matched, desc="evaluate", unit="case", disable=not progress):
        p, r = read_volume(preds[case_id]), read_volume(refs[case_id])
        if p.shape != r.shape:
            raise InputError(f"case {case_id}: prediction grid {p.shape} differs from the reference's {r.shape}")
        ref_values = r.array
        bad = sorted(set(np.unique(ref_values).tolist()) - allowed)
        if bad:
            raise InputError(f"case {case_id}: reference holds labels {bad} unknown to the '{scheme.name}' scheme; "
                             "choose the right --labels")
        # merged values (BraTS 2015's 3 read as 1) are scored as the class they merge into
        ref_values = scheme.to_values(scheme.to_classes(ref_values, where=f"case {case_id} reference"))
        pred_values = scheme.to_values(scheme.to_classes(p.array, where=f"case {case_id} prediction"))
        row = {"case": case_id}
        row.update(score_case(pred_values, ref_values, classes, scheme.regions, spacing=r.spacing,
                              hd95_one_empty=BRATS_HD95_PENALTY if hd95_penalty else math.nan))
        if lesion_wise:
            from .lesionwise import lesion_wise_scores

            row.update(lesion_wise_scores(pred_values, ref_values, scheme.regions, spacing=r.spacing))
        rows.append(row)
    out_csv = Path(out_csv) if out_csv else pred_dir / "metrics.csv"
    write_rows(rows, out_csv)
    missing = sorted(set(preds) - set(matched))
    summary = markdown_summary(rows)
    note = ("\nEmpty references: both empty -> Dice 1, HD95 0; one empty -> Dice 0, HD95 "
            + ("373.13 mm (BraTS penalty)." if hd95_penalty else "NaN (left out of the statistics, counted)."))
    if missing:
        note += f"\nNo reference for {len(missing)} prediction(s): {', '.join(missing[:5])}"
    return rows, summary + "\n" + note
