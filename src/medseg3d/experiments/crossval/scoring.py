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

from ...datasets import Case, find_cases, fold_ids, load_split
from ...errors import InputError
from ...io import read_volume, write_json_atomic, write_volume
from ...labels import BRATS_FAMILY, LabelScheme
from .enhancing import (
    ENHANCING_MM3,
    VARIANTS,
    choose_threshold,
    enhancing_scores,
    group_means,
    has_enhancing_rule,
    heldout_variants,
)
from .records import FINAL, MIRRORED
from .scores import nested_choice

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
    from ...models import load_model

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
    segment_and_score(loaded, [cases_by_id[c] for c in held], pred_dir, record["dataset"], mirror)
    return True


def score_variants(out: Path, record: dict, k: int, say=print, mirror: bool = False) -> bool:
    """Segment the held-out synthetic variants of fold ``k`` (``record["heldout_variants"]``: those whose
    parent the fold holds out, :func:`.enhancing.heldout_variants`) with the fold's model and score them
    (``pred-variants[-mirror]/metrics.csv``): the enhancing rule's benefit, measured where it can be seen.

    Args:
        out: the crossval run folder.
        record: its ``crossval.json``.
        k: the fold.
        say: where progress lines go.
        mirror: average the 8 mirrored passes.

    Returns:
        False if there is nothing to do (no variants, none of this fold's, or scored already), else True.
    """
    from ...models import load_model

    pred_dir = out / f"fold{k}" / f"pred-{VARIANTS}{'-mirror' if mirror else ''}"
    if not record.get("heldout_variants") or (pred_dir / "metrics.csv").is_file():
        return False
    cases = heldout_variants(record["heldout_variants"], fold_ids(load_split(out / "split.json"), k)[1])
    if not cases:
        return False
    loaded = load_model(fold_model(out, record, k), refine="none")
    how = "mirrored (8 passes)" if mirror else "as the final model runs"
    say(f"fold {k}: segmenting {len(cases)} held-out synthetic variants {how}")
    segment_and_score(loaded, cases, pred_dir, record["heldout_variants"], mirror)
    return True


def fold_scored(out: Path, record: dict, k: int) -> bool:
    """Whether fold ``k``'s held-out cases (and its held-out variants, if the run has them) are scored both
    ways.

    Args:
        out: the crossval run folder.
        record: its ``crossval.json``.
        k: the fold.
    """
    names = [FINAL] + ([VARIANTS] if record.get("heldout_variants") else [])
    for name in names:
        if name == VARIANTS and not heldout_variants(
            record["heldout_variants"], fold_ids(load_split(out / "split.json"), k)[1]
        ):
            continue
        if not all((out / f"fold{k}" / f"pred-{name}{m}" / "metrics.csv").is_file() for m in ("", "-mirror")):
            return False
    return True


def segment_and_score(loaded, cases: list[Case], pred_dir: Path, references, mirror: bool) -> None:
    """Segment ``cases`` with ``loaded`` as ``medseg3d predict`` runs it (labels already there are kept) and
    score them against ``references`` into ``pred_dir/metrics.csv`` (whole-case and lesion-wise).

    Args:
        loaded: the fold's model.
        cases: the cases to segment.
        pred_dir: where the label maps and ``metrics.csv`` go.
        references: the dataset folder holding the cases' labels.
        mirror: average the 8 mirrored passes.
    """
    from ...evaluate import evaluate
    from ...predict import PredictOptions, predict

    pred_dir.mkdir(parents=True, exist_ok=True)
    for case in cases:
        case = case.select(loaded.modalities)
        target = pred_dir / f"{case.case_id}.nii.gz"
        if not target.exists():
            predict(
                loaded,
                [],
                target,
                PredictOptions(mirror=mirror),
                channel_files=dict(case.channels),
                progress=False,
            )
    evaluate(
        pred_dir,
        references,
        loaded.scheme,
        out_csv=pred_dir / "metrics.csv",
        hd95_penalty=_hd95_penalty(loaded.scheme),
        progress=False,
        lesion_wise=True,
    )


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


def choose_postprocessing(out: Path, record: dict, cases_by_id: dict[str, Case], say=print) -> dict:
    """Choose test-time mirroring, the far-component removal and (BraTS) the lesion-size rule together by
    nested cross-validation (module docstring), then (BraTS) the enhancing-tumour rule
    (:mod:`.enhancing`, on the held-out variants too where the run has them); writes ``RUN/postprocess.json``
    and ``RUN/fold<k>/pred-final-pp/metrics.csv`` (and ``pred-variants-pp``). Needs the held-out label maps
    (``pred-final``, and ``pred-final-mirror`` where every fold has them: else mirroring is not a candidate).

    Args:
        out: the crossval run folder (its folds scored by :func:`score_fold`).
        record: its ``crossval.json`` (``heldout_variants``: the variants' dataset, if any).
        cases_by_id: the dataset's cases (their reference labels).
        say: where progress lines go.

    Returns:
        The choice as written to ``postprocess.json`` (read back if it exists already).

    Raises:
        InputError: no fold has held-out predictions to choose from.
    """
    from ...models import load_model

    path = out / "postprocess.json"
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    scheme = load_model(out / "fold0" / "model.safetensors", refine="none").scheme
    names = _names(scheme)
    rules = _lesion_rules(scheme)
    fold_of = _held_out_maps(out, record, FINAL)
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

    enhancing = _choose_enhancing(out, record, scheme, cases_by_id, fold_of, setting, per_fold, overall)
    for k, row in per_fold.items():
        threshold = enhancing["per_fold"][k] if enhancing else 0.0
        real = [(c, cases_by_id[c].label) for c in scores if fold_of[c] == k]
        _write_pp(out, record["dataset"], scheme, k, FINAL, real, setting(row), threshold)
        if enhancing and enhancing["variants"].get(k):
            _write_pp(
                out,
                record["heldout_variants"],
                scheme,
                k,
                VARIANTS,
                enhancing["variants"][k],
                setting(row),
                threshold,
            )

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
    if enhancing:
        result |= {
            "candidates_min_enhancing_mm3": list(ENHANCING_MM3),
            "per_fold_min_enhancing_mm3": {str(k): v for k, v in enhancing["per_fold"].items()},
            "chosen_min_enhancing_mm3": enhancing["chosen"],
            "min_enhancing_judged_by": "mean of enhancing tumour's Dice and lesion-wise Dice",
            "min_enhancing_score_by_group": enhancing["by_group"],
            "heldout_variants": sum(len(v) for v in enhancing["variants"].values()),
        }
    write_json_atomic(result, path)
    rule = ", ".join(f"{r} {v:g}" for r, v in result["chosen_lesion_mm3"].items()) or "off"
    say(
        f"post-processing: mirroring {'on' if result['chosen_mirror'] else 'off'}, far-component removal "
        f"{result['chosen_mm']:g} mm (0: off), lesion-size rule {rule} (mm^3)"
        + (
            f", enhancing tumour under {result['chosen_min_enhancing_mm3']:g} mm^3 -> necrosis (0: off; "
            f"{result['heldout_variants']} held-out variants)"
            if enhancing
            else ""
        )
        + f"; nested CV mean {result['judged_by']} {result['none_mean_dice']:.4f} -> "
        f"{result['nested_mean_dice']:.4f}"
    )
    return result


def _held_out_maps(out: Path, record: dict, variant: str) -> dict[str, int]:
    """case -> fold, for every held-out label map ``fold<k>/pred-<variant>/<case>.nii.gz``."""
    fold_of = {}
    for k in range(record["folds"]):
        for pred in sorted((out / f"fold{k}" / f"pred-{variant}").glob("*.nii.gz")):
            fold_of[pred.name[: -len(".nii.gz")]] = k
    return fold_of


def _postprocessed(path: Path, scheme: LabelScheme, setting: tuple, min_enhancing_mm3: float = 0.0):
    """The label map ``path`` as the final model would leave it under ``setting`` (variant, lesion rule,
    distance) and the enhancing threshold: (volume, labels)."""
    from ...postprocess import postprocess, voxels_for_volume

    volume = read_volume(path)
    _, rule, distance = setting
    voxels = {region: voxels_for_volume(mm3, volume.spacing) for region, mm3 in rule.items()}
    labels = postprocess(
        np.asarray(volume.array),
        scheme,
        spacing=volume.spacing,
        max_distance_mm=distance,
        min_lesion=voxels,
        min_enhancing=voxels_for_volume(min_enhancing_mm3, volume.spacing) if min_enhancing_mm3 else 0,
    )
    return volume, labels


def _write_pp(out, references, scheme, k: int, name: str, cases: list, setting: tuple, threshold: float):
    """Fold ``k``'s maps ``pred-<name>[-mirror]`` post-processed by the fold's choice, scored into
    ``pred-<name>-pp/metrics.csv`` against ``references`` (the maps themselves are not kept: they are made
    again to the voxel from the kept ones and the choice).

    Args:
        out: the crossval run folder.
        references: the dataset with the cases' labels.
        scheme: the label scheme.
        k: the fold.
        name: ``final`` (the real held-out cases) or ``variants``.
        cases: (case id, its label file) of the fold.
        setting: the fold's (variant, lesion rule, distance).
        threshold: the fold's enhancing threshold in mm^3 (0: off).
    """
    from ...evaluate import evaluate

    source = name if setting[0] == FINAL else f"{name}-mirror"
    pp = out / f"fold{k}" / f"pred-{name}-pp"
    pp.mkdir(parents=True, exist_ok=True)
    for case_id, _ in cases:
        volume, labels = _postprocessed(
            out / f"fold{k}" / f"pred-{source}" / f"{case_id}.nii.gz", scheme, setting, threshold
        )
        write_volume(
            volume.with_array(labels.astype(np.asarray(volume.array).dtype)), pp / f"{case_id}.nii.gz"
        )
    evaluate(
        pp,
        references,
        scheme,
        out_csv=pp / "metrics.csv",
        hd95_penalty=_hd95_penalty(scheme),
        progress=False,
        lesion_wise=True,
    )
    for f in pp.glob("*.nii.gz"):
        f.unlink()


def _choose_enhancing(out, record, scheme, cases_by_id, fold_of, setting, per_fold, overall) -> dict | None:
    """The enhancing threshold per fold and overall (:mod:`.enhancing`), or None for a scheme without
    BraTS's enhancing tumour.

    Returns:
        {"per_fold": {fold: mm^3}, "chosen": mm^3, "by_group": {"real"/"variants": mean score per
        threshold under the overall setting}, "variants": {fold: [(variant id, label file)]}}.
    """
    if not has_enhancing_rule(scheme):
        return None
    refs = {c: cases_by_id[c].label for c in fold_of}
    variant_fold: dict[str, int] = {}
    variants: dict[int, list] = {}
    if record.get("heldout_variants"):
        by_id = {c.case_id: c for c in find_cases(Path(record["heldout_variants"]), require_label=True)}
        variant_fold = _held_out_maps(out, record, VARIANTS)
        for case_id, k in variant_fold.items():
            refs[case_id] = by_id[case_id].label
            variants.setdefault(k, []).append((case_id, by_id[case_id].label))
    all_folds = fold_of | variant_fold
    tables: dict[int, dict[str, np.ndarray]] = {}
    for row in sorted(set(per_fold.values()) | {overall}):
        variant, rule, distance = setting(row)
        tables[row] = {}
        for case_id, k in all_folds.items():
            name = FINAL if case_id in fold_of else VARIANTS
            source = name if variant == FINAL else f"{name}-mirror"
            volume, labels = _postprocessed(
                out / f"fold{k}" / f"pred-{source}" / f"{case_id}.nii.gz", scheme, (variant, rule, distance)
            )
            ref = np.asarray(read_volume(refs[case_id]).array)
            tables[row][case_id] = enhancing_scores(labels, ref, scheme, volume.spacing)
    chosen, best = choose_threshold(tables, all_folds, per_fold, overall)
    return {
        "per_fold": {k: ENHANCING_MM3[i] for k, i in chosen.items()},
        "chosen": ENHANCING_MM3[best],
        "by_group": group_means(tables[overall], set(variant_fold)),
        "variants": variants,
    }


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
