"""Calibrating a model's probabilities on labelled cases it never saw (``medseg3d calibrate``).

Brain-tumour networks say 0.0001 or 0.9999 almost everywhere, also where they are wrong. Temperature scaling
(Guo et al. 2017) softens them with one number per output, fitted to minimise the negative log-likelihood on
held-out predictions. :func:`calibrate` runs the model on every case exactly as ``predict --uncertainty``
does, and measures, leave-one-case-out (the temperature scoring a case was fitted on the other cases):

* the expected calibration error (ECE, 15 equal-width bins) over the brain and over the tumour zone (reference
  or predicted tumour grown by 5 voxels), before and after;
* each case's Dice (WT/TC/ET for BraTS) and its confidence (as ``predict --uncertainty`` measures it), and the
  Spearman rank correlation between them: does a low confidence flag a bad segmentation?

It then fits the temperatures on all cases and writes a copy of the model file with ``calibration`` in its
metadata, with the held-out confidences: ``predict --uncertainty`` applies the temperatures to the
probabilities it writes and ranks each new case's confidence among the held-out ones (warning for the least
confident tenth). The labels a model gives never change: temperature scaling
moves no probability across 0.5 and no class past another.

    medseg3d calibrate MODEL HELD_OUT_DATASET -o calibrated.safetensors [--passes 2] [--json report.json]
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .errors import InputError

ZONE_MARGIN = 5
"""Voxels by which the reference and predicted tumour grow into the zone whose calibration matters."""


def _case_record(loaded, case, passes: int) -> dict:
    """Per case, as ``predict --uncertainty`` sees it: the first pass's probabilities and the references over
    the brain, the tumour zone, the confidence and the Dice."""
    from scipy import ndimage

    from .metrics import region_dice
    from .predict import grid_prediction, probabilities_to_labels

    image, ref_vol, label = case.load(with_label=True)
    prediction = grid_prediction(loaded, image, ref_vol.affine, passes=passes)
    probs = prediction.probabilities
    pred_values = probabilities_to_labels(loaded, probs)
    scheme = loaded.scheme
    classes = scheme.to_classes(label)
    region = loaded.kind == "region"
    reference = scheme.region_masks(classes) if region else classes
    brain = np.any(image != 0, axis=0)
    zone = ndimage.binary_dilation((label > 0) | (pred_values > 0), iterations=ZONE_MARGIN) & brain
    dice = region_dice(pred_values, label, scheme.regions) if scheme.regions else {}
    return {
        "case": case.case_id,
        "probs": probs[:, brain],
        "ref": reference[:, brain] if region else reference[brain],
        "zone": zone[brain],
        "confidence": prediction.confidence["confidence"],
        "dice": {k: round(float(v), 4) for k, v in dice.items()},
    }


def calibrate(model, dataset, *, passes: int | str = 2, exclude_trained: bool = True, progress=print) -> dict:
    """Fit and measure temperature scaling of ``model`` on the labelled cases of ``dataset``.

    Args:
        model: a bundled name, run folder, model file or :class:`~medseg3d.models.LoadedModel`.
        dataset: a labelled dataset folder of cases the model never saw.
        passes: mirrored passes for the confidence (as ``predict --uncertainty PASSES``), or ``"members"``
            for an ensemble's members.
        exclude_trained: leave out the cases the model's card or metadata lists as trained on.
        progress: called with one line per case, or None.

    Returns:
        ``{"temperatures", "passes", "cases", "ece", "spearman", "per_case"}``: the temperatures fitted on all
        cases and the leave-one-case-out measurements.
    """
    from .datasets import find_cases
    from .models import as_loaded

    loaded = as_loaded(model)
    trained = (
        set(loaded.meta.train_cases) | set(loaded.card.get("train_cases", [])) if exclude_trained else set()
    )
    cases = [c.select(loaded.modalities) for c in find_cases(Path(dataset)) if c.case_id not in trained]
    if len(cases) < 3:
        raise InputError(
            f"{dataset}: {len(cases)} labelled case(s) the model did not see; calibration needs at "
            "least 3 (leave-one-case-out)"
        )
    return calibrate_pairs([(loaded, cases)], passes=passes, progress=progress)


def check_alike(models: list) -> None:
    """Refuse, in one line, models whose calibrations cannot stand for each other: different output kind,
    number of outputs or number of ensemble members."""
    kinds = {(m.kind, m.meta.n_outputs, m.meta.members) for m in models}
    if len(kinds) != 1:
        raise InputError(
            f"the models to calibrate together differ in kind, outputs or members: {sorted(kinds)}"
        )


def calibrate_pairs(pairs: list, *, passes: int | str = 2, progress=print) -> dict:
    """:func:`calibrate` over several models, each with the labelled cases it never saw, e.g. every fold's
    model (or ensemble) of a cross-validation with its held-out cases, which together stand for a model
    trained alike on all of them. The measurements pool every case.

    Args:
        pairs: ``[(LoadedModel, [Case, ...]), ...]``; the models must be alike (the same outputs, kind and,
            for ``"members"``, member count).
        passes: the mirrored passes per case, or "members" (an ensemble's members).
        progress: called with a line per case (None: silent).

    Returns:
        ``{"temperatures", "source", "passes", "cases", "ece", "spearman", "per_case"}``: the temperatures
        fitted on all cases (one per output) and the leave-one-case-out measurements (ECE in the brain and the
        tumour zone, before and after).

    Raises:
        InputError: fewer than 3 cases, models that differ, or passes the models cannot run.
    """
    from scipy.stats import spearmanr

    from .uncertainty import apply_temperature, check_passes, expected_calibration_error, fit_temperature

    loaded = pairs[0][0]
    check_alike([m for m, _ in pairs])
    check_passes(passes, members=loaded.runnable_members)
    total = sum(len(cases) for _, cases in pairs)
    if total < 3:
        raise InputError(f"{total} labelled case(s); calibration needs at least 3 (leave-one-case-out)")
    kind = loaded.kind
    records = []
    for model, cases in pairs:
        for case in cases:
            t0 = time.perf_counter()
            records.append(_case_record(model, case, passes))
            if progress:
                progress(
                    f"[{len(records)}/{total}] {case.case_id}: Dice {records[-1]['dice']} "
                    f"({time.perf_counter() - t0:.1f} s)"
                )
    probs, refs, zones = (
        [r["probs"] for r in records],
        [r["ref"] for r in records],
        [r["zone"] for r in records],
    )
    calibrated, rows = [], []
    # leave-one-case-out: case i is scored with temperatures fitted without it
    for i, rec in enumerate(records):
        others = [j for j in range(len(records)) if j != i]
        temps = fit_temperature([probs[j] for j in others], [refs[j] for j in others], kind)
        calibrated.append(apply_temperature(probs[i], temps, kind))
        rows.append(
            {
                "case": rec["case"],
                "confidence": rec["confidence"],
                **{f"dice_{k}": v for k, v in rec["dice"].items()},
                "temperatures": temps,
            }
        )
    ece = {
        "brain_before": expected_calibration_error(probs, refs, kind),
        "brain_after": expected_calibration_error(calibrated, refs, kind),
        "tumour_zone_before": expected_calibration_error(probs, refs, kind, mask=zones),
        "tumour_zone_after": expected_calibration_error(calibrated, refs, kind, mask=zones),
    }
    spearman = {}
    for region in loaded.scheme.regions:
        rho, p = spearmanr([r["confidence"] for r in rows], [r[f"dice_{region}"] for r in rows])
        # a constant column (every Dice 1, say) has no rank correlation: null, not NaN, in the JSON
        spearman[region] = {
            "rho": round(float(rho), 3) if np.isfinite(rho) else None,
            "p": round(float(p), 3) if np.isfinite(p) else None,
        }
    source = "members" if passes == "members" else "mirrored"
    return {
        "temperatures": fit_temperature(probs, refs, kind),
        "source": source,
        "passes": loaded.runnable_members if source == "members" else passes,
        "cases": [r["case"] for r in rows],
        "ece": {k: round(v, 5) for k, v in ece.items()},
        "spearman": spearman,
        "per_case": rows,
    }


def write_calibrated_model(model_path, summary: dict, out) -> Path:
    """A copy of the model file with ``calibration`` in its metadata (checked as any model file is).

    Args:
        model_path: the model file.
        summary: :func:`calibrate_pairs`'s summary.
        out: the new model file (its folder must exist).

    Returns:
        ``out``.

    Raises:
        InputError: the output folder does not exist.
        ModelError: the model file is not a valid model.
    """
    from .checkpoint import read_model_file, rewrite_model_metadata, validate_model

    calibration = {
        "temperatures": summary["temperatures"],
        "method": "temperature scaling (NLL, per output)",
        "fitted_on": summary["cases"],
        "ece_leave_one_case_out": summary["ece"],
        # the held-out confidences: predict --uncertainty with as many passes ranks a case among them
        "confidence": {
            "passes": summary["passes"],
            "source": summary.get("source", "mirrored"),
            "held_out": [r["confidence"] for r in summary["per_case"]],
            "spearman_with_dice": summary["spearman"],
        },
    }
    out = Path(out)
    if not out.parent.is_dir():
        raise InputError(f"{out.parent}: output folder does not exist; create it first")
    meta, _state = read_model_file(model_path)
    validate_model(meta | {"calibration": calibration}, None, out)
    return rewrite_model_metadata(model_path, {"calibration": calibration}, out)


def summary_lines(summary: dict) -> list[str]:
    """The measurements as lines for the terminal."""
    e = summary["ece"]
    from .uncertainty import describe_passes

    lines = [
        (
            f"{len(summary['cases'])} cases, "
            f"{describe_passes(summary['passes'], summary.get('source', 'mirrored'))}; "
            f"temperatures {', '.join(f'{t:.3f}' for t in summary['temperatures'])}"
        ),
        (
            f"ECE over the brain {e['brain_before']:.4f} -> {e['brain_after']:.4f}; in the tumour zone "
            f"{e['tumour_zone_before']:.4f} -> {e['tumour_zone_after']:.4f} (leave-one-case-out)"
        ),
        "Spearman(confidence, Dice): "
        + ", ".join(
            f"{k} {v['rho']:+.2f} (p {v['p']:.2f})" if v["rho"] is not None else f"{k} undefined"
            for k, v in summary["spearman"].items()
        ),
    ]
    worst = sorted(summary["per_case"], key=lambda r: r["confidence"])[:3]
    lines.append(
        "least confident: "
        + "; ".join(
            f"{r['case']} {r['confidence']:.3f} ("
            + ", ".join(f"{k[5:]} {v:.2f}" for k, v in r.items() if k.startswith("dice_"))
            + ")"
            for r in worst
        )
    )
    return lines
