"""The report's findings and quality checks in plain sentences, shared by the HTML page and the PDF."""

from __future__ import annotations

import numpy as np

TITLE = "Brain tumour MRI: automatic segmentation report"
REGION_NAMES = {"WT": "whole tumour", "TC": "tumour core", "ET": "enhancing tumour"}


def jsonable(value):
    """``value`` with numpy types, tuples and non-finite floats made JSON-ready (NaN -> null)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None  # JSON has no NaN; a missing number reads as null
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def region_name(region: str) -> str:
    """``"WT"`` -> ``"whole tumour (WT)"``; other names as they are."""
    return f"{REGION_NAMES[region]} ({region})" if region in REGION_NAMES else region


def size_rows(report: dict) -> list[tuple]:
    """One row per region of the case record for the report's size table (the page and the PDF): name,
    volume (ml), lesion count, the largest lesion's two axial diameters, their product, whether it is
    measurable by RANO and its longest 3D extent ("-" where there is no lesion).

    Args:
        report: the case record (``volumes_ml`` and, if measured, ``diameters``).
    """
    diam = report.get("diameters") or {}
    rows = []
    for region, ml in report["volumes_ml"]["regions"].items():
        d = diam.get(region, {})
        top = (d.get("lesions") or [None])[0]
        rows.append(
            (
                region_name(region),
                f"{ml:.1f}",
                d.get("count", "-"),
                f"{top['axial_mm']:.0f} x {top['perpendicular_mm']:.0f}" if top else "-",
                f"{top['product_mm2']:.0f}" if top else "-",
                ("yes" if top["measurable"] else "no") if top else "-",
                f"{top['longest_3d_mm']:.0f}" if top else "-",
            )
        )
    return rows


def _mm(v: float) -> str:
    return f"{v:.0f}" if v >= 10 else f"{v:.1f}"


def diameters_phrase(region: dict) -> str:
    """``"1 lesion, 32 x 21 mm (product 672 mm2), measurable"``: a region's lesions as RANO reads them."""
    lesions = region.get("lesions") or []
    if not lesions:
        return "no lesion"
    top = lesions[0]
    text = (
        f"{len(lesions)} lesion{'s' if len(lesions) > 1 else ''}; largest {_mm(top['axial_mm'])} x "
        f"{_mm(top['perpendicular_mm'])} mm (product {top['product_mm2']:.0f} mm²), "
        + ("measurable" if top["measurable"] else "not measurable (under 10 mm)")
    )
    if region.get("multifocal"):
        text += f"; multifocal, centres up to {region['max_distance_mm']:.0f} mm apart"
    if region.get("n_measurable", 0) > 1:
        text += (
            f"; sum of products of the {min(region['n_measurable'], 5)} largest measurable "
            f"{region['sum_products_mm2']:.0f} mm²"
        )
    return text


def summary_sentences(report: dict) -> list[str]:
    """The findings in a few plain sentences: volumes, location, diameters, follow-up."""
    from .location import location_sentence

    regions = report["volumes_ml"]["regions"]
    if not regions:
        regions = report["volumes_ml"]["labels"]
    lines = []
    if not any(v > 0 for v in regions.values()):
        return ["No tumour was segmented."]
    lines.append("Volumes: " + ", ".join(f"{region_name(r)} {ml:.1f} ml" for r, ml in regions.items()) + ".")
    loc = report.get("location") or {}
    if loc.get("available"):
        for r in ("WT", "ET"):
            entry = loc["regions"].get(r)
            if entry and entry.get("hemisphere"):
                lines.append(f"Location of the {REGION_NAMES[r]}: {location_sentence(entry)}")
    elif loc:
        lines.append(f"Location: not given, {loc.get('reason', 'the atlas could not be used')}.")
    diam = report.get("diameters") or {}
    for r in ("ET", "TC"):
        if r in diam:
            lines.append(f"Diameters of the {REGION_NAMES[r]} (RANO): {diameters_phrase(diam[r])}.")
    if "ET" in diam and not diam["ET"].get("lesions"):
        lines.append(
            "Without enhancing tumour nothing is measurable by RANO 2010's bidimensional rule; "
            "non-enhancing disease is followed on T2/FLAIR."
        )
    follow = (report.get("extra") or {}).get("followup")
    if isinstance(follow, dict) and follow.get("summary"):
        lines.append("Follow-up: " + str(follow["summary"]))
    return lines


def quality_sentences(report: dict) -> list[str]:
    """The quality checks in plain sentences: every warning, then what was checked and found fine."""
    lines = list(report["warnings"])
    extra = report.get("extra") or {}
    raw = extra.get("raw_input") or {}
    fit = raw.get("template_fit") or {}
    if fit.get("brain_overlap") is not None:
        lines.append(
            f"The brain was aligned to the atlas template with a brain overlap (Dice) of "
            f"{fit['brain_overlap']:.2f}."
        )
    if raw.get("brain_ml"):
        lines.append(f"Skull stripping found a brain of {raw['brain_ml']:.0f} ml.")
    uncertainty = extra.get("uncertainty")
    if isinstance(uncertainty, dict) and uncertainty.get("confidence") is not None:
        rank = uncertainty.get("held_out_share_less_confident")
        lines.append(
            f"The model's confidence in this segmentation is {uncertainty['confidence']:.2f}"
            + (f", above that of {rank:.0%} of the held-out test cases." if rank is not None else ".")
        )
    loc = report.get("location") or {}
    if loc and not loc.get("available"):
        lines.append(f"The location could not be given: {loc.get('reason')}.")
    if not report["warnings"]:
        lines.append("No quality check raised a concern.")
    return lines
