"""Everything ``medseg3d predict`` writes beside a segmentation, and only here.

Beside ``<stem>.<suffix>`` (the labels, in the input's format and on its grid):

- ``<stem>_probabilities<suffix>`` (``--probabilities``), ``<stem>_uncertainty<suffix>`` (``--uncertainty``);
- ``<stem>.json``, one layout for every case (:func:`case_record`, :data:`CASE_SCHEMA`, docs/report.md),
  written for an aligned (raw) case, with ``--report``, with ``--uncertainty`` or when a quality check fired;
- ``<stem>.png``, the alignment picture of an aligned case (:mod:`medseg3d.raw.summary`);
- ``<stem>.report.html``, ``.report.pdf`` and ``.report.dcm`` (DICOM input) with ``--report``
  (:mod:`medseg3d.clinical.report`);
- ``<stem>.seg.dcm``, a DICOM Segmentation, when the input is a DICOM series (docs/report.md).

Every file is written atomically (a temporary file, then a rename), so a killed run leaves no half-written
output.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from ..datasets import Case
from ..errors import InputError
from ..io import Volume, image_suffix, output_stem, write_json_atomic, write_volume
from ..models import LoadedModel
from ..review import fire
from ..uncertainty import (
    apply_temperature,
    confidence_rank,
    confidence_reference,
    confidence_warning,
    describe_passes,
    describe_source,
)
from ..volumes import volume_summary, volumes_line
from .options import PredictOptions
from .pipeline import CaseResult

CASE_SCHEMA = "medseg3d.case/2"
"""The version of ``<stem>.json``'s layout (docs/report.md, "The case's JSON"). 2: one layout for every case
(version 1, unnamed, had three: the aligned case's summary, the report's with its items under ``extra``, and a
short one for ``--uncertainty`` alone)."""
PAGE_ITEMS = ("postprocessing", "uncertainty", "refinement", "checks", "sequence_identification")
"""What of the case's record the report page shows beside its own measurements."""
REPORT_ITEMS = (
    "title",
    "study",
    "anonymised",
    "lesions",
    "location",
    "diameters",
    "model_card",
    "picture_channel",
    "pictures_through_voxel",
)
"""What the report measured that the case's JSON records too."""


def warn(line: str) -> None:
    """A warning, on standard error."""
    print(line, file=sys.stderr, flush=True)


def companions(target: Path) -> list[str]:
    """The names of the files predict may write beside ``target`` (probabilities, uncertainty, JSON,
    report...)."""
    suffix, stem = image_suffix(target), output_stem(target).name
    return [
        f"{stem}_probabilities{suffix}",
        f"{stem}_uncertainty{suffix}",
        f"{stem}.json",
        f"{stem}.png",
        f"{stem}.report.html",
        f"{stem}.report.pdf",
        f"{stem}.report.dcm",
        f"{stem}.seg.dcm",
    ]


def dicom_channels(case: Case) -> list[str]:
    """The case's channels that are DICOM series folders."""
    from ..io import is_dicom_folder

    return [m for m, p in case.channels.items() if Path(p).is_dir() and is_dicom_folder(p)]


def check_dicom_source(case: Case, output_format: str | None) -> None:
    """Refuse ``--output-format dicom-seg`` for a case without a DICOM series (one line).

    Args:
        case: the case (its channels).
        output_format: the requested format; only "dicom-seg" is checked.

    Raises:
        InputError: dicom-seg for a case whose channels are image files.
    """
    if output_format == "dicom-seg" and not dicom_channels(case):
        raise InputError(
            f"{case.case_id}: --output-format dicom-seg needs DICOM series as input (a DICOM SEG "
            "references the images it was drawn on); these channels are image files"
        )


def write_case_outputs(
    loaded: LoadedModel,
    case: Case,
    target: Path,
    result: CaseResult,
    volumes: dict,
    opts: PredictOptions,
    *,
    save_probabilities: bool = False,
    report: bool = False,
    output_format: str | None = None,
    read_seconds: float = 0.0,
    say=None,
    anonymise: bool = False,
    checks: list | None = None,
    sequences: dict | None = None,
) -> Path:
    """Write the segmentation ``target`` and what goes beside it (see the module docstring).

    Args:
        loaded: the model that segmented the case.
        case: the case (its channels' paths, for the records and the DICOM SEG).
        target: the labels' file.
        result: what :func:`~.pipeline.segment_volumes` returned.
        volumes: the channels as read (modality -> Volume), for the pictures and the DICOM SEG.
        opts: the resolved options the case was segmented with (recorded).
        save_probabilities, report, output_format: what else to write; ``anonymise``: the report leaves the
            patient, study and series out.
        read_seconds: how long reading the channels took (recorded).
        say: a callable given one line per step, or None (quiet).
        checks: the list the case's quality checks are collected in (:func:`medseg3d.review.collecting`): the
            alignment's and the confidence's are fired here; all are recorded in the case's JSON (one is
            written for a case with checks), and with ``opts.strict`` any refuses the case before a file.
        sequences: the content reading of the channels' sequences, recorded in the JSON.

    Returns:
        ``target``, once everything is written.

    Raises:
        InputError: ``--output-format dicom-seg`` where the labels do not lie on a DICOM series' grid, an
            output that cannot be written, or (``opts.strict``) a quality check that fired.
    """
    from ..raw.summary import summary_warnings

    checks = [] if checks is None else checks
    aligned = result.prepared.mode != "none"
    # the alignment's checks and the tumour against the brain mask
    warnings = summary_warnings(result.labels, result.prepared, loaded.scheme) if aligned else []
    for line in warnings:
        fire(case.case_id, f"{case.case_id}: {line}")
    uncertainty = uncertainty_record(loaded, result, output_stem(target), image_suffix(target))
    low = uncertainty and confidence_warning(
        uncertainty["confidence"],
        uncertainty.get("low_confidence_below"),
        uncertainty.get("source", "mirrored"),
    )
    if low:
        fire(case.case_id, f"{case.case_id}: {low}")
    if opts.strict and checks:
        raise InputError(
            f"case {case.case_id}: refused by --strict, nothing written: {len(checks)} quality "
            f"check(s) fired ({', '.join(dict.fromkeys(c.name for c in checks))}): {checks[0].message}"
        )
    record = {"checks": [c.to_dict() for c in checks], "sequence_identification": sequences}
    if say and aligned:
        say(f"{case.case_id}: preprocessing '{result.prepared.mode}': {result.prepared.reason}")
    # the JSON's record
    post = {
        "min_component": opts.min_component,
        "min_enhancing": opts.min_enhancing,
        "min_enhancing_mm3": opts.min_enhancing_mm3,
        "min_lesion_mm3": opts.min_lesion or {},
        "max_distance_mm": opts.max_distance,
        "far_removed_ml": result.far_removed_ml,
        "small_removed_ml": result.small_removed_ml,
    }
    if say and result.far_removed_ml > 0:
        say(
            f"{case.case_id}: removed {result.far_removed_ml:.3g} ml of tumour farther than "
            f"{post['max_distance_mm']:g} mm from the largest component (--max-distance 0 keeps it)"
        )
    if say and result.small_removed_ml > 0:
        say(
            f"{case.case_id}: removed {result.small_removed_ml:.3g} ml of tumour in components under "
            f"{post['min_lesion_mm3'].get('WT', 0):g} mm^3 (--min-lesion 0 keeps them)"
        )
    grid = result.labels
    suffix, stem = image_suffix(target), output_stem(target)
    if save_probabilities:
        probs = result.probabilities
        if result.confidence and result.confidence.get("temperatures"):
            probs = apply_temperature(probs, result.confidence["temperatures"], loaded.kind)
        write_volume(
            Volume(np.moveaxis(probs, 0, -1).astype(np.float32), grid.affine),
            stem.with_name(stem.name + "_probabilities" + suffix),
        )
    if result.uncertainty is not None:
        # 3 decimals are more than the map means and shrink the file about fourfold
        write_volume(
            grid.with_array(np.round(result.uncertainty, 3).astype(np.float32)),
            stem.with_name(stem.name + "_uncertainty" + suffix),
        )
    t0 = time.perf_counter()
    written = write_volume(result.labels, target)
    if uncertainty:
        _say_uncertainty(case.case_id, uncertainty, say)
    seconds = dict(read=round(read_seconds, 2), **result.seconds, write=round(time.perf_counter() - t0, 2))
    case_json = case_record(loaded, case, target, result, seconds, warnings) | {
        "postprocessing": post,
        **record,
    }
    if uncertainty:
        case_json["uncertainty"] = uncertainty
    if result.refinement:
        case_json["refinement"] = result.refinement
    if post["far_removed_ml"] > 0:
        case_json["warnings"].append(
            f"{post['far_removed_ml']:.3g} ml of tumour farther than "
            f"{post['max_distance_mm']:g} mm from the largest component was removed; if "
            "it may be a second lesion, segment again with --max-distance 0"
        )
    if say:
        brain_ml = result.prepared.details.get("brain_ml")
        say(
            f"{case.case_id}: {volumes_line(case_json['volumes_ml'])}"
            + (f"; brain {brain_ml:.0f} ml" if brain_ml else "")
        )
    json_path = stem.with_name(stem.name + ".json")
    if aligned:
        from ..raw.summary import write_qc_picture

        png = write_qc_picture(
            result.labels, result.prepared, loaded.scheme, stem.with_name(stem.name + ".png")
        )
        if say:
            say(f"wrote {png}")
    _write_dicom_seg_if_dicom(loaded, case, result, volumes, stem, target, output_format, say)
    if report:
        case_json = _write_report(
            loaded,
            result,
            volumes,
            stem,
            case_json,
            say,
            {m: case.channels[m] for m in dicom_channels(case)},
            anonymise,
        )
    if aligned or report or uncertainty or checks:  # a case flagged for review says why in its JSON
        write_json_atomic(case_json, json_path)
        if say:
            say(f"wrote {json_path}")
    return written


def case_record(
    loaded: LoadedModel, case: Case, target: Path, result: CaseResult, seconds: dict, warnings: list[str]
) -> dict:
    """The case's ``<stem>.json`` (schema :data:`CASE_SCHEMA`, docs/report.md), before post-processing,
    checks, uncertainty and the report add their items.

    Args:
        loaded: the model (its card).
        case: the case (its inputs).
        target: the segmentation file.
        result: the segmentation and how the input was aligned.
        seconds: {step: seconds} of reading, the pipeline's steps and writing.
        warnings: the quality warnings.

    Returns:
        The record: the model, inputs and output, the output grid, the tumour volumes (ml), how the input was
        aligned (mode, reason, reference, steps, transforms, details such as the brain volume), the warnings
            and
        the seconds each step took.
    """
    from ..raw.summary import on_native_grid

    labels, aligned = result.labels, result.prepared
    on_native = on_native_grid(labels, aligned)
    steps = {s["step"]: s["seconds"] for s in aligned.steps}
    return {
        "schema": CASE_SCHEMA,
        "model": loaded.pipeline_name,
        "inputs": {m: str(p) for m, p in case.channels.items()},
        "output": str(target),
        "output_grid": {
            "space": "native" if on_native else "atlas",
            "shape": list(labels.shape),
            "spacing_mm": [round(s, 4) for s in labels.spacing],
            "axcodes": "".join(labels.axcodes),
        },
        "volumes_ml": volume_summary(labels.array, labels.spacing, loaded.scheme),
        **aligned.summary(),
        "warnings": list(warnings),
        "seconds": dict(
            seconds, preprocessing=steps, total=round(sum(steps.values()) + sum(seconds.values()), 2)
        ),
    }


def _say_uncertainty(case_id: str, uncertainty: dict, say) -> None:
    rank = uncertainty.get("held_out_share_less_confident")
    if say:
        say(
            f"{case_id}: confidence {uncertainty['confidence']:.3f} over "
            f"{describe_passes(uncertainty['passes'], uncertainty.get('source', 'mirrored'))}"
            + (f", above {rank:.0%} of the held-out cases" if rank is not None else "")
        )
        spread = member_spread(uncertainty)
        if spread:
            say(f"{case_id}: {spread}")


def _write_dicom_seg_if_dicom(
    loaded: LoadedModel,
    case: Case,
    result: CaseResult,
    volumes: dict,
    stem: Path,
    target: Path,
    output_format: str | None,
    say,
) -> None:
    """``<stem>.seg.dcm`` when the case has DICOM series (unless ``output_format`` is ``nifti``); refused in
    one line where ``dicom-seg`` was asked and cannot be written, else a warning."""
    dicom = dicom_channels(case) if output_format != "nifti" else []
    if not dicom:
        return
    asked = output_format == "dicom-seg"
    try:
        seg_path = _write_dicom_seg(loaded, case, dicom, result, volumes, stem)
    except InputError as exc:
        if asked:
            raise
        seg_path = None  # written by default beside the NIfTI: a series that cannot take one is not fatal
        warn(f"warning: {case.case_id}: no DICOM SEG written: {exc}")
    if seg_path is None and asked:
        raise InputError(
            f"{case.case_id}: the labels do not lie on an input DICOM series' grid (they were written "
            f"to {target}); use --space native"
        )
    if seg_path is not None and say:
        say(f"wrote {seg_path}")


def _write_dicom_seg(
    loaded: LoadedModel, case: Case, dicom: list[str], result: CaseResult, volumes: dict, stem: Path
) -> Path | None:
    """``<stem>.seg.dcm`` referencing the DICOM series (among the ``dicom`` channels) the labels lie on (the
    T1ce for raw input), if any."""
    from ..dicom.seg import write_dicom_seg

    order = sorted(dicom, key=lambda m: m != result.prepared.reference)
    source = next((m for m in order if volumes[m].same_grid(result.labels)), None)
    if source is None:
        return None
    return write_dicom_seg(
        result.labels,
        case.channels[source],
        stem.with_name(stem.name + ".seg.dcm"),
        loaded.scheme,
        model_name=f"medseg3d {loaded.pipeline_name}",
    )


def uncertainty_record(loaded: LoadedModel, result: CaseResult, stem: Path, suffix: str) -> dict | None:
    """What the case's JSON says about its uncertainty: confidence, passes, how it compares with the held-out
    cases of the model's calibration, and the map's file.

    Args:
        loaded: the model (its calibration).
        result: the segmentation (its confidence).
        stem: the output's path without suffix; the map is ``<stem>_uncertainty<suffix>``.
        suffix: the image suffix of the outputs.

    Returns:
        The record, or None without uncertainty.
    """
    if result.confidence is None:
        return None
    source = result.confidence.get("source", "mirrored")
    record = dict(
        result.confidence,
        map=str(stem.with_name(stem.name + "_uncertainty" + suffix)),
        map_meaning=f"normalised entropy of the mean of {describe_source(source)}: 0 certain, 1 uniform",
    )
    reference = confidence_reference(loaded.meta.calibration, result.confidence["passes"], source)
    if reference is None:
        record["low_confidence_below"] = None
        record["reference"] = (
            f"none for {describe_passes(result.confidence['passes'], source)}: run `medseg3d "
            "calibrate` with --passes the same as --uncertainty to compare cases with held-out ones"
        )
    else:
        record["low_confidence_below"] = reference["low_below"]
        record["held_out_share_less_confident"] = confidence_rank(result.confidence["confidence"], reference)
        record["reference"] = f"{len(reference['held_out'])} held-out cases of the model's calibration"
    return record


def member_spread(uncertainty: dict | None) -> str | None:
    """``"the 5 members' volumes: WT 31.2-35.0 ml, TC 10.1-12.3 ml, ET 4.0-4.9 ml"``, or None without them."""
    volumes = (uncertainty or {}).get("member_volumes_ml")
    if not volumes:
        return None
    n = len(next(iter(volumes.values())))
    return f"the {n} members' volumes: " + ", ".join(
        f"{r} {min(v):.1f}-{max(v):.1f} ml" for r, v in volumes.items()
    )


def _write_report(
    loaded: LoadedModel,
    result: CaseResult,
    volumes: dict,
    stem: Path,
    case_json: dict,
    say,
    dicom: dict | None = None,
    anonymise: bool = False,
) -> dict:
    """The report's files (:func:`medseg3d.clinical.report.write_case_report`); returns ``case_json`` with
    what the report measured (location, diameters, lesions, the study) and its warnings.

    Args:
        case_json: the case's record (:func:`case_record` and what was added to it).
        dicom: modality -> DICOM series folder of the input.
        anonymise: leave the patient, study and series out.
    """
    from ..clinical.report import write_case_report

    on_grid = {m: v for m, v in volumes.items() if v.same_grid(result.labels)}
    if not on_grid:  # labels on the atlas grid: show the preprocessed channels there
        on_grid = {m: Volume(a, result.prepared.affine) for m, a in result.prepared.channels.items()}
    steps = [{"step": "preprocess", "mode": result.prepared.mode, "reason": result.prepared.reason}]
    steps += list(result.prepared.steps)
    extra = {k: v for k, v in case_json.items() if k in PAGE_ITEMS}
    extra["warnings"] = list(case_json["warnings"])
    if result.prepared.mode != "none":
        extra["raw_input"] = case_json
    # prepared: the way into atlas space
    files = write_case_report(
        result.labels,
        on_grid,
        loaded.scheme,
        stem,
        loaded.card or loaded.meta.to_dict(),
        steps,
        extra,
        uncertainty_map=result.uncertainty,
        dicom_series=dicom,
        anonymise=anonymise,
        prepared=result.prepared,
    )
    page = files.record
    out = dict(case_json, **{k: page[k] for k in REPORT_ITEMS}, warnings=page["warnings"])
    out["seconds"] = dict(case_json["seconds"], **page["seconds"])
    out["report"] = {
        k: str(v) for k, v in (("html", files.html), ("pdf", files.pdf), ("dcm", files.dcm)) if v
    }
    if say:
        say("wrote " + ", ".join(str(f) for f in (files.html, files.pdf, files.dcm) if f))
    return out
