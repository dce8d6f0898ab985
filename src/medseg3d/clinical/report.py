"""The case report a clinician reads (``predict --report``): what it holds, in words, and the files it is.

:func:`case_report` gathers everything as one JSON-ready dict: who and what was scanned (from the DICOM
headers, left out with ``anonymise``), volumes, lesions, the location in atlas space (:mod:`.location`), the
RANO diameters (:mod:`.diameters`), the quality checks and the technical record. :func:`summary_sentences` and
:func:`quality_sentences` say it in plain sentences, which the HTML page (:mod:`.page`) and the PDF
(:mod:`.pdf`) both show. :func:`write_case_report` writes ``<stem>.report.html``, ``<stem>.report.pdf`` and,
for a DICOM input, ``<stem>.report.dcm`` (an Encapsulated PDF in the input study,
:mod:`medseg3d.dicom.report`); ``predict`` records the dict in the case's ``<stem>.json``
(:mod:`medseg3d.predict.outputs`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..labels import LabelScheme
from ..volumes import MIN_LESION_MM3, lesion_summary, volume_summary
from .pictures import picture_channel
from .summary import TITLE, jsonable


@dataclass
class ReportFiles:
    """The files one report wrote (``pdf`` and ``dcm`` None when not written) and what the page shows
    (:func:`case_report`'s dict, JSON-ready), which ``predict`` records in the case's ``<stem>.json``."""

    html: Path
    record: dict
    pdf: Path | None = None
    dcm: Path | None = None


def case_report(
    labels,
    image_channels: dict | None,
    scheme: LabelScheme,
    model_card: dict | None = None,
    preprocessing: list[dict] | None = None,
    extra: dict | None = None,
    min_lesion_mm3: float = MIN_LESION_MM3,
    *,
    to_atlas: np.ndarray | None = None,
    study: dict | None = None,
    anonymise: bool = False,
) -> dict:
    """Everything the report shows, as a JSON-ready dict.

    Args:
        labels, image_channels, scheme, model_card, preprocessing, extra, to_atlas, anonymise: as
            :func:`write_case_report`.
        min_lesion_mm3: connected components smaller than this (mm³, 26-connected) are not counted as lesions.
        study: the DICOM patient and study details (None: none; left out when anonymising).

    Returns:
        ``{"title", "study", "anonymised", "grid", "volumes_ml", "lesions", "location", "diameters",
        "model_card", "preprocessing", "picture_channel", "warnings", "extra", "seconds"}``; ``location`` is
        :func:`~medseg3d.clinical.location.case_location`'s (keys ``hemisphere``, ``main_lobe``, ``lobes``...
        per region), ``diameters`` :func:`~medseg3d.clinical.diameters.case_diameters`'s.
    """
    from .diameters import case_diameters
    from .location import case_location, on_atlas_grid

    volumes = volume_summary(labels.array, labels.spacing, scheme)
    lesions = lesion_summary(labels.array, labels.affine, scheme, min_lesion_mm3)
    t0 = time.perf_counter()
    location = case_location(on_atlas_grid(labels, to_atlas), scheme, min_lesion_mm3)
    t1 = time.perf_counter()
    diameters = case_diameters(labels.array, labels.affine, scheme, min_lesion_mm3=min_lesion_mm3)
    t2 = time.perf_counter()
    extra = dict(extra or {})
    warnings = [str(w) for w in extra.pop("warnings", [])]
    uncertainty = extra.get("uncertainty")
    if isinstance(uncertainty, dict) and uncertainty.get("confidence") is not None:
        from ..uncertainty import confidence_warning

        low = confidence_warning(
            float(uncertainty["confidence"]),
            uncertainty.get("low_confidence_below"),
            uncertainty.get("source", "mirrored"),
        )
        if low:
            warnings.append(low)
    if not np.any(np.asarray(labels.array)):
        warnings.append(
            "No tumour was segmented. If a tumour is visible, the input may not match what the model "
            "was trained on (channels, preprocessing)."
        )
    channel, _ = picture_channel(image_channels or {}, labels)
    if image_channels and channel is None:
        warnings.append(
            "No input channel lies on the segmentation's grid; the pictures show the labels alone."
        )
    return {
        "title": TITLE,
        "study": None if anonymise else study,
        "anonymised": bool(anonymise),
        "grid": {
            "shape": list(labels.shape),
            "spacing_mm": [round(s, 4) for s in labels.spacing],
            "axcodes": "".join(labels.axcodes),
        },
        "volumes_ml": volumes,
        "lesions": {"min_lesion_mm3": min_lesion_mm3, "connectivity": 26, "regions": lesions},
        "location": location,
        "diameters": diameters,
        "model_card": model_card or {},
        "preprocessing": list(preprocessing or []),
        "picture_channel": channel,
        "warnings": warnings,
        "extra": extra,
        "seconds": {"location": round(t1 - t0, 3), "diameters": round(t2 - t1, 3)},
    }


def _largest_lesion_centre(report: dict, shape) -> tuple[int, int, int]:
    best = None
    for region in report["lesions"]["regions"].values():
        for lesion in region["lesions"]:
            if best is None or lesion["volume_ml"] > best["volume_ml"]:
                best = lesion
    if best is not None:
        return tuple(best["centre_voxel"])
    return tuple(int(s) // 2 for s in shape)


def _rano_picture(report: dict, image, labels, scheme: LabelScheme) -> dict[str, bytes]:
    """The axial slice where the largest enhancing (else core) lesion's RANO diameter was measured, with that
    diameter drawn: ``{"RANO": png}``, or nothing without such a lesion or on a grid not sliced axially."""
    from .pictures import overlay_pictures

    for region in ("ET", "TC"):
        lesions = (report.get("diameters") or {}).get(region, {}).get("lesions") or []
        top = lesions[0] if lesions else None
        if top and top.get("axial_ends_voxel"):
            p1, p2 = (np.asarray(p, dtype=float) for p in top["axial_ends_voxel"])
            centre = np.clip(np.round((p1 + p2) / 2).astype(int), 0, np.asarray(labels.shape) - 1)
            centre[top["slice_axis"]] = top["slice"]
            title = f"{region}: {top['axial_mm']:.0f} x {top['perpendicular_mm']:.0f} mm"
            return {
                "RANO": overlay_pictures(
                    image,
                    labels.array,
                    scheme,
                    tuple(int(v) for v in centre),
                    labels.affine,
                    views=("axial",),
                    line=(p1, p2),
                    title=title,
                )["axial"]
            }
    return {}


def write_case_report(
    labels,
    image_channels: dict,
    scheme: LabelScheme,
    out_stem,
    model_card: dict,
    preprocessing: list[dict],
    extra: dict | None = None,
    uncertainty_map: np.ndarray | None = None,
    *,
    to_atlas: np.ndarray | None = None,
    dicom_series: dict | None = None,
    anonymise: bool = False,
    pdf: bool = True,
    dicom_reference: str | None = None,
    prepared=None,
) -> ReportFiles:
    """Write ``<out_stem>.report.html``, ``.report.pdf`` and (DICOM input) ``.report.dcm``.

    Args:
        labels: the segmentation as a :class:`~medseg3d.io.Volume` (file values, its own grid and affine).
        image_channels: modality name -> input :class:`~medseg3d.io.Volume`; the pictures are drawn over FLAIR
            (else T1c, T2, T1, or the first channel) among those on the labels' grid.
        scheme: the label scheme (regions and label names).
        out_stem: path without suffix, e.g. ``out/case`` for ``out/case.nii.gz``.
        model_card: the model's card (``medseg3d.models.model_card``), shown in the technical record.
        preprocessing: the steps that ran, one dict each (``{"step": "resample", ...}``), in order.
        extra: more items to save and show; ``extra["warnings"]`` (a list of strings) join the quality
            checks; ``extra["uncertainty"]`` (what :func:`medseg3d.uncertainty.case_confidence` returns) adds
            a warning below its confidence threshold and an uncertainty section; ``extra["raw_input"]`` (the
            raw pipeline's summary) adds its checks; ``extra["followup"]`` (``{"summary": str, ...}``) a
            follow-up line.
        uncertainty_map: the voxel-wise normalised entropy on the labels' grid, drawn in that section.
        to_atlas: for labels not on the BraTS grid, the LPS map from BraTS-grid points to the labels' points
            (``--preprocess full``), which the location needs; None: located only if already on that grid.
        dicom_series: modality -> DICOM series folder of the input, for the patient, study and series.
        anonymise: leave patient, study and series details out of every file (no ``.dcm`` then: a PACS
            object without its patient cannot join the study).
        pdf: also write the PDF (and, with ``dicom_series``, the DICOM object).
        dicom_reference: the modality whose series the ``.dcm`` lists as its source (the one the labels lie
            on); default: the first of ``dicom_series``.
        prepared: how ``predict`` prepared the case (:class:`medseg3d.raw.pipeline.Aligned`): after the full
            alignment it gives ``to_atlas``; its reference channel is ``dicom_reference``.

    Returns:
        :class:`ReportFiles`. Every file is written atomically (temporary file, then rename).

    Raises:
        InputError: the labels are no Volume, or the output folder does not exist or cannot be written.
    """

    from ..errors import InputError
    from ..io import Volume, atomic_write, write_text_atomic
    from .page import render_html
    from .pictures import overlay_pictures, uncertainty_pictures

    out_stem = Path(out_stem)
    if prepared is not None:
        dicom_reference = prepared.reference
        if prepared.mode == "full" and prepared.grid_from_native is not None:
            to_atlas = np.linalg.inv(prepared.grid_from_native)  # BraTS-grid points -> the labels' points
    if not isinstance(labels, Volume):
        raise InputError("write_case_report needs the labels as a Volume (array + affine)")
    if not out_stem.parent.is_dir():
        raise InputError(f"{out_stem.parent}: output folder does not exist; create it first")
    study = None
    if dicom_series and not anonymise:
        from ..dicom.report import study_details

        study = study_details(dicom_series)
    report = case_report(
        labels,
        image_channels,
        scheme,
        model_card,
        preprocessing,
        extra,
        to_atlas=to_atlas,
        study=study,
        anonymise=anonymise,
    )
    _, image = picture_channel(image_channels or {}, labels)
    centre = _largest_lesion_centre(report, labels.shape)
    report["pictures_through_voxel"] = list(centre)
    pictures = overlay_pictures(image, labels.array, scheme, centre, labels.affine)
    pictures.update(_rano_picture(report, image, labels, scheme))
    uncertainty_pngs = None
    if uncertainty_map is not None and np.shape(uncertainty_map) == labels.shape:
        uncertainty_pngs = uncertainty_pictures(uncertainty_map, labels.array, centre, labels.affine)
    name = out_stem.name
    files = ReportFiles(out_stem.with_name(name + ".report.html"), jsonable(report))
    try:
        write_text_atomic(render_html(report, pictures, uncertainty_pngs), files.html)
        if pdf:
            from .pdf import render_pdf

            document = render_pdf(report, pictures)
            files.pdf = atomic_write(
                out_stem.with_name(name + ".report.pdf"), lambda tmp: Path(tmp).write_bytes(document)
            )
            if dicom_series and not anonymise:
                from ..dicom.report import write_report_dicom

                source = dicom_series.get(dicom_reference) or next(iter(dicom_series.values()))
                files.dcm = write_report_dicom(
                    document, source, out_stem.with_name(name + ".report.dcm"), title=TITLE
                )
    except OSError as exc:
        raise InputError(
            f"{out_stem.parent}: cannot write the report ({exc.strerror}); choose another folder"
        ) from exc
    return files
