"""A cross-validation's held-out cases: segmented as the final model runs, scored, post-processing chosen by
nested cross-validation, calibrated.

* :func:`score_fold`: fold k's model (its members as one ensemble) segments each held-out case with
  :func:`medseg3d.predict.predict`, the function behind ``medseg3d predict`` (windows, precision and
  post-processing as the model file asks), and :func:`medseg3d.evaluate.evaluate` scores them: Dice and HD95
  per class and region, lesion-wise scores, volumes (``RUN/fold<k>/pred-final/metrics.csv``).
* :func:`choose_postprocessing`: test-time mirroring (each fold's held-out cases are also segmented with the
  8 mirrored passes averaged, ``pred-final-mirror``) and the far-component removal (``--max-distance``), the
  inference settings a model file carries, are chosen together per fold on the *other* folds' cases only and
  scored on the fold's own (``pred-final-pp``), so the reported gain is not tuned on the cases it is measured
  on; the final model takes the setting that is best over all cases, one pass and no removal on a tie.
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
from .records import FINAL, MIRRORED

# far-component removal distances tried, in mm (0: off)
DISTANCES_MM = (0.0, 5.0, 10.0, 20.0, 40.0)
# BraTS: the lesion-size rule's thresholds tried (mm^3 per region; components smaller become the next outer
# region, :func:`medseg3d.postprocess.demote_small_region_components`); off first. Issue #40's lever 3 chose
# 1000 / 200 / 100 on v2's held-out maps (docs/results.md).
LESION_RULES_MM3 = (
    {},
    {"WT": 500.0, "TC": 50.0, "ET": 25.0},
    {"WT": 1000.0, "TC": 200.0, "ET": 100.0},
    {"WT": 2000.0, "TC": 500.0, "ET": 200.0},
)


def _hd95_penalty(scheme: LabelScheme) -> bool:
    # BraTS scores one-side-empty HD95 as 373.13 mm (v2's records were scored so); elsewhere it is left out
    return scheme.name in BRATS_FAMILY


def score_fold(
    out: Path, record: dict, k: int, cases_by_id: dict[str, Case], say=print, mirror: bool = False
) -> bool:
    """Segment fold ``k``'s held-out cases as the final model runs and score them.

    Args:
        out: the crossval run folder.
        record: its ``crossval.json``.
        k: the fold.
        cases_by_id: the dataset's cases.
        say: where progress lines go.
        mirror: average the 8 mirrored passes (``pred-final-mirror``, a candidate of
            :func:`choose_postprocessing`) instead of one pass (``pred-final``).

    Returns:
        False if the fold was scored already, else True.

    Raises:
        InputError: the fold model was trained on a held-out case (the split changed).
    """
    from ...evaluate import evaluate
    from ...models import load_model
    from ...predict import PredictOptions, predict

    pred_dir = out / f"fold{k}" / f"pred-{MIRRORED if mirror else FINAL}"
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
    how = "mirrored (8 passes)" if mirror else "as the final model runs"
    say(f"fold {k}: segmenting {len(held)} held-out cases {how}")
    pred_dir.mkdir(parents=True, exist_ok=True)
    for case_id in held:
        case = cases_by_id[case_id].select(loaded.modalities)
        target = pred_dir / f"{case_id}.nii.gz"
        if not target.exists():
            opts = PredictOptions(mirror=mirror)
            predict(loaded, [], target, opts, channel_files=dict(case.channels), progress=False)
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


def _lesion_rules(scheme: LabelScheme) -> tuple[dict, ...]:
    """The lesion-size rules tried for ``scheme``: :data:`LESION_RULES_MM3` for BraTS's regions, else off."""
    enhancing = tuple(scheme.regions.get("ET", ())) == (4,) and {1, 2} <= set(scheme.values)
    return LESION_RULES_MM3 if enhancing and {"WT", "TC"} <= set(scheme.regions) else ({},)


def _dice_table(
    labels: np.ndarray,
    ref: np.ndarray,
    scheme: LabelScheme,
    names: list[str],
    spacing,
    lesion_rules: tuple[dict, ...] = ({},),
) -> np.ndarray:
    """The score per name for every (lesion rule, distance) of ``lesion_rules`` x :data:`DISTANCES_MM` (rows,
    rule-major): Dice, or with lesion rules to choose (BraTS) the mean of the whole-case Dice and the BraTS
    2023 lesion-wise Dice, since the rule is there for false and split lesions, which the whole-case Dice
    barely sees.

    Args:
        labels, ref: the predicted and reference label maps on one grid.
        scheme: the model's label scheme.
        names: the regions or classes scored.
        spacing: the grid's voxel size (mm).
        lesion_rules: region -> mm^3 thresholds per candidate ({}: off).
    """
    from ...lesionwise import lesion_wise_region
    from ...metrics import dice
    from ...postprocess import postprocess, voxels_for_volume

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
    lesion_wise = len(lesion_rules) > 1
    rows = []
    for rule in lesion_rules:
        voxels = {region: voxels_for_volume(mm3, spacing) for region, mm3 in rule.items()}
        for distance in DISTANCES_MM:
            pred = masks(
                postprocess(labels, scheme, spacing=spacing, max_distance_mm=distance, min_lesion=voxels)
            )
            row = []
            for n in names:
                whole = dice(pred[n], reference[n])
                if lesion_wise:
                    lw = lesion_wise_region(pred[n], reference[n], spacing, distances=False)["dice"]
                    whole = (whole + lw) / 2
                row.append(whole)
            rows.append(row)
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
    """Choose test-time mirroring, the far-component removal and (BraTS) the lesion-size rule together by
    nested cross-validation (module docstring); writes ``RUN/postprocess.json`` and
    ``RUN/fold<k>/pred-final-pp/metrics.csv``. Needs the held-out label maps (``pred-final``, and
    ``pred-final-mirror`` where every fold has them: else mirroring is not a candidate).

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
    from ...postprocess import postprocess, voxels_for_volume

    path = out / "postprocess.json"
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    scheme = load_model(out / "fold0" / "model.safetensors", refine="none").scheme
    names = _names(scheme)
    rules = _lesion_rules(scheme)
    fold_of = {}
    for k in range(record["folds"]):
        for pred in sorted((out / f"fold{k}" / f"pred-{FINAL}").glob("*.nii.gz")):
            fold_of[pred.name[: -len(".nii.gz")]] = k
    if not fold_of:
        raise InputError(
            f"{out}: no held-out label maps (fold*/pred-{FINAL}/*.nii.gz) to choose post-processing on"
        )

    def label_map(variant: str, case_id: str) -> Path:
        return out / f"fold{fold_of[case_id]}" / f"pred-{variant}" / f"{case_id}.nii.gz"

    variants = [FINAL] + ([MIRRORED] if all(label_map(MIRRORED, c).is_file() for c in fold_of) else [])
    # rows: every (variant, lesion rule, distance), one pass, no rule and no removal first, so that ties go to
    # the cheaper and gentler setting
    scores = {}
    for case_id in fold_of:
        ref = np.asarray(read_volume(cases_by_id[case_id].label).array)
        tables = []
        for variant in variants:
            volume = read_volume(label_map(variant, case_id))
            tables.append(_dice_table(np.asarray(volume.array), ref, scheme, names, volume.spacing, rules))
        scores[case_id] = np.vstack(tables)
    per_fold, overall = nested_choice(scores, fold_of)
    n, per_variant = len(DISTANCES_MM), len(DISTANCES_MM) * len(rules)

    def setting(row: int) -> tuple[str, dict, float]:
        """(variant, lesion rule in mm^3, distance in mm) of a row."""
        return variants[row // per_variant], rules[(row % per_variant) // n], DISTANCES_MM[row % n]

    for k, row in per_fold.items():
        pp = out / f"fold{k}" / f"pred-{FINAL}-pp"
        pp.mkdir(parents=True, exist_ok=True)
        variant, rule, distance = setting(row)
        for case_id in [c for c in scores if fold_of[c] == k]:
            volume = read_volume(label_map(variant, case_id))
            voxels = {region: voxels_for_volume(mm3, volume.spacing) for region, mm3 in rule.items()}
            labels = postprocess(
                np.asarray(volume.array),
                scheme,
                spacing=volume.spacing,
                max_distance_mm=distance,
                min_lesion=voxels,
            )
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
        for f in pp.glob("*.nii.gz"):  # made again to the voxel from pred-final(-mirror) and the choice
            f.unlink()

    def mean_of_row(i: int) -> float:
        return round(float(np.mean([scores[c][i].mean() for c in scores])), 4)

    nested = [float(scores[c][per_fold[fold_of[c]]].mean()) for c in scores]
    plain = [float(scores[c][0].mean()) for c in scores]
    changed = sorted(c for c in scores if not np.allclose(scores[c][per_fold[fold_of[c]]], scores[c][0]))
    chosen = setting(overall)
    result = {
        "setting": "mirror, max_distance_mm" + (", min_lesion_mm3" if len(rules) > 1 else ""),
        "judged_by": "mean of Dice and lesion-wise Dice" if len(rules) > 1 else "Dice",
        "candidates_mm": list(DISTANCES_MM),
        "candidates_mirror": [v == MIRRORED for v in variants],
        "candidates_lesion_mm3": list(rules),
        "judged_on": names,
        "mean_dice_by_distance": {f"{d:g}": mean_of_row(i) for i, d in enumerate(DISTANCES_MM)},
        "per_fold": {str(k): setting(row)[2] for k, row in per_fold.items()},
        "per_fold_mirror": {str(k): setting(row)[0] == MIRRORED for k, row in per_fold.items()},
        "per_fold_lesion_mm3": {str(k): setting(row)[1] for k, row in per_fold.items()},
        "nested_mean_dice": round(statistics.fmean(nested), 4),
        "none_mean_dice": round(statistics.fmean(plain), 4),
        "cases_changed": changed,
        "chosen_mm": chosen[2],
        "chosen_mirror": chosen[0] == MIRRORED,
        "chosen_lesion_mm3": chosen[1],
        "cases": len(scores),
    }
    if len(rules) > 1:  # one pass, no far removal: what each rule does alone
        result["mean_score_by_lesion_rule"] = [mean_of_row(r * n) for r in range(len(rules))]
    if MIRRORED in variants:
        result["mean_dice_by_distance_mirrored"] = {
            f"{d:g}": mean_of_row(per_variant + i) for i, d in enumerate(DISTANCES_MM)
        }
    write_json_atomic(result, path)
    rule = ", ".join(f"{r} {v:g}" for r, v in result["chosen_lesion_mm3"].items()) or "off"
    say(
        f"post-processing: mirroring {'on' if result['chosen_mirror'] else 'off'}, far-component removal "
        f"{result['chosen_mm']:g} mm (0: off), lesion-size rule {rule} (mm^3); nested CV mean "
        f"{result['judged_by']} {result['none_mean_dice']:.4f} -> {result['nested_mean_dice']:.4f}"
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
