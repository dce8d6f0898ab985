"""A cross-validation's held-out cases: segmented as the final model runs, scored, post-processing chosen by
nested cross-validation, calibrated.

* :func:`score_fold`: fold k's model (its members as one ensemble) segments each held-out case with
  :func:`medseg3d.predict.predict`, the function behind ``medseg3d predict`` (windows, precision and
  post-processing as the model file asks), and :func:`medseg3d.evaluate.evaluate` scores them: Dice and HD95
  per class and region, lesion-wise scores, volumes (``RUN/fold<k>/pred-final/metrics.csv``).
* :func:`choose_postprocessing`: the far-component removal (``--max-distance``, the one post-processing a
  model file carries) is chosen per fold on the *other* folds' cases only and scored on the fold's own
  (``pred-final-pp``), so the reported gain is not tuned on the cases it is measured on; the final model
  takes the distance that is best over all cases, if any beats none.
* :func:`calibrate_run`: temperatures fitted on every fold model's held-out cases (:mod:`medseg3d.calibrate`),
  for the model trained on all cases, which has none left (``RUN/calibration.json``).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
from pathlib import Path

import numpy as np

from ...datasets import Case, fold_ids, load_split
from ...errors import InputError
from ...io import read_volume, write_json_atomic, write_volume
from ...labels import BRATS_FAMILY, LabelScheme
from .records import FINAL

# far-component removal distances tried, in mm (0: off)
DISTANCES_MM = (0.0, 5.0, 10.0, 20.0, 40.0)


def _hd95_penalty(scheme: LabelScheme) -> bool:
    # BraTS scores one-side-empty HD95 as 373.13 mm (v2's records were scored so); elsewhere it is left out
    return scheme.name in BRATS_FAMILY


def score_fold(out: Path, record: dict, k: int, cases_by_id: dict[str, Case], say=print) -> bool:
    """Segment fold ``k``'s held-out cases as the final model runs and score them.

    Args:
        out: the crossval run folder.
        record: its ``crossval.json``.
        k: the fold.
        cases_by_id: the dataset's cases.
        say: where progress lines go.

    Returns:
        False if the fold was scored already, else True.

    Raises:
        InputError: the fold model was trained on a held-out case (the split changed).
    """
    from ...evaluate import evaluate
    from ...models import load_model
    from ...predict import predict

    pred_dir = out / f"fold{k}" / f"pred-{FINAL}"
    if (pred_dir / "metrics.csv").is_file():
        return False
    model_file = fold_model(out, record, k)
    loaded = load_model(model_file, refine="none")
    seen = set(loaded.meta.train_cases or [])
    held = fold_ids(load_split(out / "split.json"), k)[1]
    if seen & set(held):
        raise InputError(
            f"{model_file}: was trained on held-out case(s) {sorted(seen & set(held))[:3]}; "
            "the split changed: start the cross-validation in a new --out"
        )
    say(f"fold {k}: segmenting {len(held)} held-out cases as the final model runs")
    pred_dir.mkdir(parents=True, exist_ok=True)
    for case_id in held:
        case = cases_by_id[case_id].select(loaded.modalities)
        target = pred_dir / f"{case_id}.nii.gz"
        if not target.exists():
            predict(loaded, [], target, channel_files=dict(case.channels), progress=False)
    evaluate(
        pred_dir,
        record["dataset"],
        loaded.scheme,
        out_csv=pred_dir / "metrics.csv",
        hd95_penalty=_hd95_penalty(loaded.scheme),
        progress=False,
        lesion_wise=True,
    )
    return True


def fold_model(out: Path, record: dict, k: int) -> Path:
    """``RUN/fold<k>/model.safetensors``: the fold's members' final weights as the final model combines them.

    Args:
        out: the crossval run folder.
        record: its ``crossval.json`` (the members).
        k: the fold.

    Returns:
        The file, made (copied or ensembled) if it was not there.
    """
    from ...models.ensemble import make_ensemble

    target = out / f"fold{k}" / "model.safetensors"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    sources = [out / "members" / name / f"fold{k}" / "last.safetensors" for name in record["members"]]
    if len(sources) == 1:
        tmp = target.with_name(target.name + ".tmp")
        shutil.copyfile(sources[0], tmp)
        os.replace(tmp, target)
    else:
        make_ensemble([str(s) for s in sources], target, name=f"fold{k}")
    return target


def _names(scheme: LabelScheme) -> list[str]:
    """What a choice is judged on: the scheme's regions for region models (BraTS WT / TC / ET), else its
    classes."""
    if scheme.region_training or scheme.name in BRATS_FAMILY:
        return list(scheme.regions)
    return list(scheme.class_names[1:])


def _dice_table(
    labels: np.ndarray, ref: np.ndarray, scheme: LabelScheme, names: list[str], spacing
) -> np.ndarray:
    """Dice per name for every distance of :data:`DISTANCES_MM` (rows)."""
    from ...metrics import dice
    from ...postprocess import remove_far_components

    def masks(values):
        classes = scheme.to_classes(values)
        out = {}
        for name in names:
            if name in scheme.regions:
                out[name] = np.isin(classes, [scheme.values.index(v) for v in scheme.regions[name]])
            else:
                out[name] = classes == scheme.class_names.index(name)
        return out

    reference = masks(ref)
    rows = []
    for distance in DISTANCES_MM:
        pred = masks(remove_far_components(labels, spacing, distance))
        rows.append([dice(pred[n], reference[n]) for n in names])
    return np.asarray(rows)


def nested_choice(scores: dict[str, np.ndarray], fold_of: dict[str, int]) -> tuple[dict[int, int], int]:
    """For each fold, the candidate (row) with the best mean score over the *other* folds' cases; and the one
    best over all cases. Ties go to the earlier candidate (the gentler setting; row 0 is "off").

    Args:
        scores: case -> (candidates, names) array of scores (higher is better).
        fold_of: case -> its fold.

    Returns:
        ({fold: chosen row}, row chosen on all cases).
    """
    cases = sorted(scores)

    def best(subset):
        means = np.mean([scores[c].mean(axis=1) for c in subset], axis=0)
        return int(np.flatnonzero(means >= means.max() - 1e-12)[0])

    per_fold = {}
    for k in sorted(set(fold_of.values())):
        others = [c for c in cases if fold_of[c] != k]
        per_fold[k] = best(others) if others else 0
    return per_fold, best(cases)


def choose_postprocessing(out: Path, record: dict, cases_by_id: dict[str, Case], say=print) -> dict:
    """Choose the far-component removal by nested cross-validation (module docstring); writes
    ``RUN/postprocess.json`` and ``RUN/fold<k>/pred-final-pp/metrics.csv``. Needs the held-out label maps.

    Args:
        out: the crossval run folder (its folds scored by :func:`score_fold`).
        record: its ``crossval.json``.
        cases_by_id: the dataset's cases (their reference labels).
        say: where progress lines go.

    Returns:
        The choice as written to ``postprocess.json`` (read back if it exists already).

    Raises:
        InputError: no fold has held-out predictions to choose from.
    """
    from ...evaluate import evaluate
    from ...models import load_model

    path = out / "postprocess.json"
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    scheme = load_model(out / "fold0" / "model.safetensors", refine="none").scheme
    names = _names(scheme)
    scores, fold_of, spacing_of = {}, {}, {}
    for k in range(record["folds"]):
        for pred in sorted((out / f"fold{k}" / f"pred-{FINAL}").glob("*.nii.gz")):
            case_id = pred.name[: -len(".nii.gz")]
            volume, ref = read_volume(pred), read_volume(cases_by_id[case_id].label)
            labels = np.asarray(volume.array)
            scores[case_id] = _dice_table(labels, np.asarray(ref.array), scheme, names, volume.spacing)
            fold_of[case_id] = k
            spacing_of[case_id] = volume.spacing
    if not scores:
        raise InputError(
            f"{out}: no held-out label maps (fold*/pred-{FINAL}/*.nii.gz) to choose post-processing on"
        )
    per_fold, overall = nested_choice(scores, fold_of)
    for k, row in per_fold.items():
        pp = out / f"fold{k}" / f"pred-{FINAL}-pp"
        pp.mkdir(parents=True, exist_ok=True)
        from ...postprocess import remove_far_components

        for case_id in [c for c in scores if fold_of[c] == k]:
            volume = read_volume(out / f"fold{k}" / f"pred-{FINAL}" / f"{case_id}.nii.gz")
            labels = remove_far_components(np.asarray(volume.array), volume.spacing, DISTANCES_MM[row])
            write_volume(
                volume.with_array(labels.astype(np.asarray(volume.array).dtype)), pp / f"{case_id}.nii.gz"
            )
        evaluate(
            pp,
            record["dataset"],
            scheme,
            out_csv=pp / "metrics.csv",
            hd95_penalty=_hd95_penalty(scheme),
            progress=False,
            lesion_wise=True,
        )
        for f in pp.glob("*.nii.gz"):  # made again to the voxel from pred-final and the choice
            f.unlink()
    means = {
        f"{d:g}": round(float(np.mean([scores[c][i].mean() for c in scores])), 4)
        for i, d in enumerate(DISTANCES_MM)
    }
    nested = [float(scores[c][per_fold[fold_of[c]]].mean()) for c in scores]
    plain = [float(scores[c][0].mean()) for c in scores]
    changed = sorted(c for c in scores if not np.allclose(scores[c][per_fold[fold_of[c]]], scores[c][0]))
    result = {
        "setting": "max_distance_mm",
        "candidates_mm": list(DISTANCES_MM),
        "judged_on": names,
        "mean_dice_by_distance": means,
        "per_fold": {str(k): DISTANCES_MM[row] for k, row in per_fold.items()},
        "nested_mean_dice": round(statistics.fmean(nested), 4),
        "none_mean_dice": round(statistics.fmean(plain), 4),
        "cases_changed": changed,
        "chosen_mm": DISTANCES_MM[overall],
        "cases": len(scores),
    }
    write_json_atomic(result, path)
    say(
        f"post-processing: far-component removal {DISTANCES_MM[overall]:g} mm (0: off); nested CV mean Dice "
        f"{result['none_mean_dice']:.4f} -> {result['nested_mean_dice']:.4f}"
    )
    return result


def calibrate_run(out: Path, record: dict, cases_by_id: dict[str, Case], say=print) -> dict | None:
    """Temperatures from every fold model on its held-out cases (``RUN/calibration.json``).

    Args:
        out: the crossval run folder.
        record: its ``crossval.json`` (the number of folds).
        cases_by_id: the dataset's cases.
        say: where the result line goes.

    Returns:
        The calibration summary (read back if it exists already), or None when the cross-validation holds
            fewer
        than 3 cases.
    """
    from ...calibrate import calibrate_pairs
    from ...models import load_model

    path = out / "calibration.json"
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    split = load_split(out / "split.json")
    pairs = []
    for k in range(record["folds"]):
        model = load_model(out / f"fold{k}" / "model.safetensors", refine="none")
        pairs.append((model, [cases_by_id[c].select(model.modalities) for c in fold_ids(split, k)[1]]))
    passes = "members" if pairs[0][0].runnable_members > 1 else 2
    if sum(len(c) for _, c in pairs) < 3:
        return None
    summary = calibrate_pairs(pairs, passes=passes, progress=None)
    write_json_atomic(summary, path)
    say(
        f"calibration: temperatures {', '.join(f'{t:.3f}' for t in summary['temperatures'])} on "
        f"{len(summary['cases'])} held-out cases"
    )
    return summary
