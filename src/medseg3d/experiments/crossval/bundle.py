"""``medseg3d bundle RUN -o model.safetensors``: a cross-validation's members trained on all cases as one
model file with its card.

The file holds the members (one, or an ensemble of several, :func:`medseg3d.models.ensemble.make_ensemble`),
the far-component removal the nested cross-validation chose (``inference.max_distance_mm``, which ``predict``
applies), the temperatures fitted on the held-out cases (``calibration``, as ``medseg3d calibrate`` writes it)
and the card (``card`` in the metadata, and ``<output>.json`` beside the file, the form ``medseg3d models``
reads for a model copied into ``src/medseg3d/weights/``): data, commands, training time, the cross-validated
scores of exactly what the file runs (held-out cases, post-processing chosen without them), per fold, the
worst cases, the post-processing and the calibration.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

from ...errors import InputError
from ...io import write_json_atomic
from .records import FINAL, read_crossval_record
from .scores import collect, mean, read_metrics, regions_of, sd


def card_scores(root: Path, variant: str, worst: int = 3) -> dict:
    """Cross-validated scores of ``variant``: pooled means, mean +- SD over folds, per fold, worst cases.

    Args:
        root: the crossval run folder.
        variant: the scored weights (``fold*/pred-<variant>/metrics.csv``).
        worst: how many worst cases to list per region.

    Returns:
        {"variant", "cases", "folds", "pooled" (Dice and HD95 in mm per region, 4 decimals, None for NaN),
        "lesion_wise" (mean BraTS 2023 lesion-wise Dice per region where the fold scored it, else empty),
        "mean_sd_over_folds" (text), "per_fold", "worst_cases"}.

    Raises:
        InputError: no fold has scored ``variant``.
    """
    folds = collect(root, variant)
    if not folds:
        raise InputError(
            f"{root}: no fold*/pred-{variant}/metrics.csv; run `medseg3d crossval` to the end first"
        )
    regions = regions_of(folds)
    rows = [dict(row, fold=k) for k, rs in folds.items() for row in rs]

    def column_mean(rs, key):
        return mean(float(r[key]) for r in rs if r.get(key) not in (None, ""))

    def rounded(value):
        return None if math.isnan(value) else round(value, 4)

    per_fold = {
        f"fold {k}": {r: rounded(column_mean(rs, f"dice_{r}")) for r in regions} for k, rs in folds.items()
    }
    return {
        "variant": variant,
        "cases": len(rows),
        "folds": len(folds),
        "pooled": {
            f"{m}_{r}": rounded(column_mean(rows, f"{m}_{r}")) for m in ("dice", "hd95") for r in regions
        },
        "lesion_wise": {
            r: rounded(column_mean(rows, f"lesion_dice_{r}"))
            for r in regions
            if any(row.get(f"lesion_dice_{r}") not in (None, "") for row in rows)
        },
        "mean_sd_over_folds": {
            r: f"{mean([v[r] for v in per_fold.values()]):.3f} +- {sd([v[r] for v in per_fold.values()]):.3f}"
            for r in regions
        },
        "per_fold": per_fold,
        "worst_cases": {
            r: [
                f"{x['case']} {float(x[f'dice_{r}']):.3f} (fold {x['fold']})"
                for x in sorted(rows, key=lambda x: float(x[f"dice_{r}"]))[:worst]
            ]
            for r in regions
        },
    }


def _training_time(run: Path, record: dict, timing: dict) -> dict:
    """Wall seconds of every training and of the final members, and CPU core-hours (wall x the threads each
    training ran on, from its model file): what the card says the model cost."""
    from ...checkpoint import read_model_file

    timing = dict(timing)
    # a training whose invocation was killed before it could add its time to timing.json (the end of a
    # sitting): its own log.csv has the seconds it trained, summed over resumes
    for log in sorted(run.glob("members/*/*/log.csv")):
        key = str(log.parent.relative_to(run))
        rows = read_metrics(log)
        logged = float(rows[-1]["seconds"]) if rows and rows[-1].get("seconds") else 0.0
        timing[key] = max(timing.get(key, 0.0), logged)
    core_seconds = 0.0
    for key, seconds in timing.items():
        model = run / key / "model.safetensors"
        threads = (
            (read_model_file(model)[0].get("software") or {}).get("threads", 1) if model.is_file() else 1
        )
        core_seconds += seconds * int(threads or 1)
    return {
        "wall_seconds_all_trainings": round(sum(timing.values()), 1),
        "wall_seconds_final_members": round(sum(v for k, v in timing.items() if k.endswith("/all")), 1),
        # 3 significant figures: a short run costs a few core-seconds, which 2 decimals would call 0
        "cpu_core_hours_all_trainings": float(f"{core_seconds / 3600:.3g}"),
        "trainings": len(timing),
        "members": record["members"],
        "note": "wall clock of each training (trainings may run side by side), summed over resumes "
        "(timing.json, or the training's own log.csv where larger); core-hours: wall clock x the threads it "
        "ran on",
    }


def data_licence(dataset: Path) -> str:
    """What the card says of the terms the model inherits from its training data: the ``licence`` and
    ``reference`` of the dataset's ``dataset.json`` where it states them.

    Args:
        dataset: the training dataset's folder.

    Returns:
        One sentence; where nothing is stated, a sentence asking the bundler to state it.
    """
    info = _json(dataset / "dataset.json") or {}
    licence, reference = info.get("licence") or info.get("license"), info.get("reference")
    if not licence:
        return (
            f"the training data ({dataset.name}) state no licence; the model inherits the data's terms: "
            "state them in this card before sharing the file"
        )
    cite = f"; cite {reference}" if reference else ""
    name = info.get("name") or dataset.name
    return f"trained on {name} data under {licence}, whose terms the model inherits{cite}"


def _json(path: Path) -> dict | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def bundle(run, output, name: str | None = None, force: bool = False) -> Path:
    """Write the run's final model with its card to ``output`` (and the card to ``<output stem>.json``).

    Args:
        run: a ``medseg3d crossval`` folder whose members were trained on all cases (``--final``) and whose
            folds are all scored.
        output: the model file (``.safetensors``).
        name: the model's name (default: the file's stem).
        force: overwrite ``output``.

    Returns:
        the model file's path.

    Raises:
        InputError: not a crossval folder, members not trained on all cases, folds not scored, or an output
            that exists (without ``force``) or is not named ``.safetensors``.
    """
    from ...calibrate import write_calibrated_model
    from ...checkpoint import rewrite_model_metadata
    from ...models.ensemble import make_ensemble

    run, output = Path(run), Path(output)
    record = read_crossval_record(run)
    if record is None or "members" not in record:
        raise InputError(f"{run}: not a `medseg3d crossval` folder (no crossval.json with members)")
    if output.suffix != ".safetensors":
        raise InputError(f"{output}: name the model file .safetensors")
    if output.exists() and not force:
        raise InputError(f"{output}: exists already; add --force to overwrite it")
    if not output.parent.is_dir():
        raise InputError(f"{output.parent}: no such folder; create it first")
    finals = [run / "members" / m / "all" / "model.safetensors" for m in record["members"]]
    missing = [str(f.parent) for f in finals if not f.is_file()]
    if missing:
        raise InputError(
            f"{missing[0]}: not trained on all cases yet; run the crossval command again with --final"
        )
    pp = _json(run / "postprocess.json")
    if pp is None:
        raise InputError(
            f"{run}: folds not all scored (no postprocess.json); run the crossval command to the end"
        )
    variant = f"{FINAL}-pp" if collect(run, f"{FINAL}-pp") else FINAL
    scores = card_scores(run, variant)
    name = name or output.stem
    tmp = output.with_name(output.name + ".part.safetensors")
    if len(finals) == 1:
        shutil.copyfile(finals[0], tmp)
    else:
        make_ensemble([str(f) for f in finals], tmp, name=name)
    calibration = _json(run / "calibration.json")
    if calibration is not None:
        write_calibrated_model(tmp, calibration, tmp)
    plan = _json(run / "plan.json")
    timing = _json(run / "timing.json") or {}
    command = (
        f"medseg3d crossval {record['dataset']} --preset {record['members'][0]}"
        + "".join(f" --members {m}" for m in record["members"][1:])
        + f" --folds {record['folds']}"
        + (f" --epochs {record['epochs']}" if record.get("epochs") else "")
        + f" --out {run} --final; "
        f"medseg3d bundle {run} -o {output}"
    )
    card = {
        "name": name,
        "trained_on": f"{Path(record['dataset']).name}: every labelled case; "
        f"members {', '.join(record['members'])}",
        "dataset": record["dataset"],
        "command": command,
        "settings": record["settings"],
        "plan": plan["reasons"] if plan else None,
        "training_time": _training_time(run, record, timing),
        "licence": data_licence(Path(record["dataset"])),
        "cross_validation": scores
        | {
            "what": "held-out cases of each fold, segmented by that fold's members exactly "
            "as this file runs (windows, precision), post-processing chosen on the "
            "other folds (nested)"
        },
        "postprocessing": {
            "max_distance_mm": pp["chosen_mm"],
            "mirror": bool(pp.get("chosen_mirror")),
            "per_fold": pp["per_fold"],
            "per_fold_mirror": pp.get("per_fold_mirror"),
            "min_lesion_mm3": pp.get("chosen_lesion_mm3") or {},
            "per_fold_lesion_mm3": pp.get("per_fold_lesion_mm3"),
            "min_enhancing_mm3": pp.get("chosen_min_enhancing_mm3", 0.0),
            "per_fold_min_enhancing_mm3": pp.get("per_fold_min_enhancing_mm3"),
            "min_enhancing_score_by_group": pp.get("min_enhancing_score_by_group"),
            "heldout_variants": pp.get("heldout_variants", 0),
            "judged_by": pp.get("judged_by", "Dice"),
            "nested_mean_dice": pp["nested_mean_dice"],
            "none_mean_dice": pp["none_mean_dice"],
        },
        "calibration": (
            {
                "temperatures": calibration["temperatures"],
                "ece": calibration["ece"],
                "cases": len(calibration["cases"]),
            }
            if calibration
            else None
        ),
    }
    inference_updates = {"card": card}
    chosen = {"max_distance_mm": float(pp["chosen_mm"])} if pp["chosen_mm"] > 0 else {}
    if pp.get("chosen_mirror"):
        chosen["mirror"] = True
    if pp.get("chosen_lesion_mm3"):
        chosen["min_lesion_mm3"] = {r: float(v) for r, v in pp["chosen_lesion_mm3"].items()}
    if pp.get("chosen_min_enhancing_mm3"):
        chosen["min_enhancing_mm3"] = float(pp["chosen_min_enhancing_mm3"])
    if chosen:
        from ...checkpoint import read_model_file

        meta, _ = read_model_file(tmp)
        inference_updates["inference"] = dict(meta.get("inference") or {}) | chosen
    inference_updates["name"] = name
    rewrite_model_metadata(tmp, inference_updates, tmp)
    os.replace(tmp, output)
    write_json_atomic(card, output.with_suffix(".json"))
    return output
