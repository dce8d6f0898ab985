"""The report as one self-contained HTML page: findings first, in the order a clinician reads them.

Patient and study, findings in sentences, volumes and diameters, location, lesions, follow-up, pictures,
uncertainty, quality checks; then the technical record (preprocessing, transforms, timings, model card) in a
folded ``<details>`` section, rendered as tables, never as a JSON dump. Styles inline and pictures as base64
PNG: the page opens offline and fetches nothing.
"""

from __future__ import annotations

import base64
from html import escape

from .location import DEEP, LOBES
from .pictures import LABEL_COLOURS
from .summary import TITLE, jsonable, quality_sentences, region_name, size_rows, summary_sentences

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:24px;color:#222;\
max-width:1100px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:16px;margin:22px 0 6px;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:13px;margin:4px 0} \
td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f2f2f2} td.num{text-align:right;font-variant-numeric:tabular-nums}
.pics{display:flex;gap:8px;flex-wrap:wrap;background:#000;padding:6px;border-radius:4px} \
.pics img{height:260px}
.warn{background:#fff4ce;border:1px solid #e0b000;padding:6px 10px;margin:4px 0;border-radius:3px}
.ok{padding:2px 0} .note{color:#666;font-size:12px} .findings li{margin:3px 0}
.swatch{display:inline-block;width:11px;height:11px;margin-right:4px;vertical-align:-1px}
.patient td{border:none;padding:1px 14px 1px 0} .patient{margin:6px 0 2px}
details{margin-top:22px;border:1px solid #ccc;border-radius:4px;padding:6px 10px} \
summary{cursor:pointer;font-weight:600}
"""


def _table(header, rows, numeric=()) -> str:
    head = "".join(f"<th>{escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td class='num'>{escape(str(c))}</td>" if i in numeric else f"<td>{escape(str(c))}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _scalar(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if value is None:
        return "-"
    return str(value)


def record_html(value, depth: int = 0) -> str:
    """A nested record (dicts, lists, numbers) as readable HTML tables: keys in words, matrices as rows of
    numbers, lists of records as tables; deeper than three levels it is summarised.

    Args:
        value: the record (escaped for HTML).
        depth: how deep this value sits (the recursion's level; callers pass 0).
    """
    if isinstance(value, dict):
        if not value:
            return "-"
        if depth >= 3 or (depth >= 1 and len(value) > 12):  # e.g. a card's per-case scores: the JSON has them
            return escape(f"({len(value)} items, in the JSON)")
        rows = "".join(
            f"<tr><th>{escape(str(k).replace('_', ' '))}</th><td>{record_html(v, depth + 1)}</td></tr>"
            for k, v in value.items()
        )
        return f"<table>{rows}</table>"
    if isinstance(value, (list, tuple)):
        if not value:
            return "-"
        if all(isinstance(r, (list, tuple)) and all(isinstance(x, (int, float)) for x in r) for r in value):
            # a matrix
            return "<br>".join(
                escape("  ".join(f"{x:9.4f}" if isinstance(x, float) else str(x) for x in r)) for r in value
            )
        if all(isinstance(r, dict) for r in value) and depth < 3:
            keys = list(dict.fromkeys(k for r in value for k in r))
            head = "".join(f"<th>{escape(str(k).replace('_', ' '))}</th>" for k in keys)
            body = "".join(
                "<tr>" + "".join(f"<td>{record_html(r.get(k), depth + 1)}</td>" for k in keys) + "</tr>"
                for r in value
            )
            return f"<table><tr>{head}</tr>{body}</table>"
        if len(value) > 12:
            return escape(f"{len(value)} items (in the JSON)")
        return escape(", ".join(_scalar(v) if not isinstance(v, (dict, list)) else "..." for v in value))
    return escape(_scalar(value))


def _header(report: dict) -> str:
    study = report.get("study")
    if report.get("anonymised"):
        who = "<p class='note'>Patient and study details left out (<code>--anonymise</code>).</p>"
    elif not study:
        who = "<p class='note'>The input held no patient details (image files, not DICOM).</p>"
    else:
        p, s = study["patient"], study["study"]
        rows = [
            ("Patient", p.get("name")),
            ("Patient ID", p.get("id")),
            ("Born", p.get("birth_date")),
            ("Sex", p.get("sex")),
            ("Study date", s.get("date")),
            ("Study", s.get("description")),
            ("Accession", s.get("accession")),
        ]
        who = (
            "<table class='patient'>"
            + "".join(f"<tr><td><b>{escape(k)}</b></td><td>{escape(str(v))}</td></tr>" for k, v in rows if v)
            + "</table>"
        )
        series = [
            f"{escape(m)}: {escape(info.get('description') or 'no description')}"
            + (f" (series {escape(info['number'])})" if info.get("number") else "")
            for m, info in study["series"].items()
        ]
        who += f"<p class='note'>Series used: {'; '.join(series)}.</p>"
    return (
        f"<h1>{escape(TITLE)}</h1>{who}<p class='note'>Automatic segmentation for research use, not a "
        "diagnosis: a radiologist reviews it before any clinical use.</p>"
    )


def _location_table(location: dict) -> str:
    if not location.get("available"):
        return f"<p>{escape('Not given: ' + str(location.get('reason')))}.</p>"
    rows = []
    for region, e in location["regions"].items():
        if not e.get("hemisphere"):
            continue
        lobes = ", ".join(
            f"{k} {v:.0%}" for k, v in sorted(e["lobes"].items(), key=lambda kv: -kv[1]) if v >= 0.05
        )
        rows.append(
            (
                region_name(region),
                (f"{e['hemisphere']} (R {e['side_share']['right']:.0%} / L {e['side_share']['left']:.0%})"),
                "yes" if e["crosses_midline"] else "no",
                lobes,
                ", ".join(e["deep_structures"]) or "none",
                "yes" if e["ventricles"]["contact"] else "no",
                "yes" if e["cortex"]["contact"] else "no",
            )
        )
    html = _table(
        [
            "region",
            "side",
            "crosses midline",
            "lobes (share)",
            "deep structures",
            "reaches ventricles",
            "reaches cortex",
        ],
        rows,
    )
    many = [
        (
            region_name(r),
            i,
            le["volume_ml"],
            le["hemisphere"],
            le["main_lobe"] or "-",
            ", ".join(le["lobes_involved"]) or "-",
            ", ".join(le["deep_structures"]) or "-",
        )
        for r, e in location["regions"].items()
        if len(e.get("lesions", [])) > 1
        for i, le in enumerate(e["lesions"], start=1)
    ]
    if many:
        html += (
            "<p>Each lesion of the regions with more than one, found in atlas space (resampling there can "
            "split or join small parts, so the count may differ from the lesion table's):</p>"
        ) + _table(
            ["region", "#", "volume (ml)", "side", "main lobe", "lobes", "deep structures"], many, (1, 2)
        )
    return html + (
        f"<p class='note'>In the {escape(location['space'])} atlas (lobes: {', '.join(LOBES)}; deep: "
        f"{', '.join(DEEP)}). Atlas-level: a registration maps the brain, not the tumour's mass "
        "effect.</p>"
    )


def _size_tables(report: dict) -> str:
    volumes = report["volumes_ml"]
    diam = report.get("diameters") or {}
    rows = size_rows(report)
    html = _table(
        [
            "region",
            "volume (ml)",
            "lesions",
            "largest: axial x perpendicular (mm)",
            "product (mm²)",
            "measurable",
            "longest 3D (mm)",
        ],
        rows,
        (1, 2, 4, 6),
    )
    html += (
        "<p class='note'>Per label: "
        + escape(", ".join(f"{k} {v:.1f} ml" for k, v in volumes["labels"].items()))
        + ". Diameters as RANO measures them: the longest diameter in an axial slice and the longest "
        "perpendicular to it; measurable when both are at least 10 mm.</p>"
    )
    lesions = [
        (
            region_name(r),
            i,
            f"{le['volume_ml']:.2f}",
            f"{le['axial_mm']:.1f}",
            f"{le['perpendicular_mm']:.1f}",
            f"{le['product_mm2']:.0f}",
            "yes" if le["measurable"] else "no",
            f"{le['longest_3d_mm']:.1f}",
            ", ".join(f"{c:.0f}" for c in le["centre_mm"]),
        )
        for r, d in diam.items()
        for i, le in enumerate(d.get("lesions", []), start=1)
    ]
    if lesions:
        html += "<h2>Lesions</h2>" + _table(
            [
                "region",
                "#",
                "volume (ml)",
                "axial (mm)",
                "perpendicular (mm)",
                "product (mm²)",
                "measurable",
                "3D (mm)",
                "centre (mm, RAS)",
            ],
            lesions,
            (1, 2, 3, 4, 5, 7),
        )
        small = {r: d["n_small"] for r, d in diam.items() if d.get("n_small")}
        html += (
            f"<p class='note'>Lesions larger than {report['lesions']['min_lesion_mm3']:g} mm³, fragments "
            "close together counted as one (BraTS 2023's rule)"
            + (
                " (smaller ones left out: " + ", ".join(f"{r} {n}" for r, n in small.items()) + ")"
                if small
                else ""
            )
            + ".</p>"
        )
    return html


def _pictures(report: dict, pictures: dict) -> str:
    legend = " ".join(
        f"<span><span class='swatch' style='background:{LABEL_COLOURS.get(int(k.split()[0]), '#0ff')}'>"
        f"</span>{escape(k)}</span>"
        for k in report["volumes_ml"]["labels"]
    )
    imgs = "".join(
        f"<img alt='{escape(v)}' src='data:image/png;base64,{base64.b64encode(png).decode('ascii')}'>"
        for v, png in pictures.items()
    )
    return (
        f"<h2>Pictures</h2><p class='note'>Through the largest lesion, over "
        f"{escape(str(report['picture_channel'] or 'no image'))}, the patient's right on the viewer's left"
        + ("; RANO: the axial slice where the diameter (cyan) was measured. " if "RANO" in pictures else ". ")
        + f"{legend}</p><div class='pics'>{imgs}</div>"
    )


def _uncertainty(uncertainty: dict, report: dict, uncertainty_pngs) -> str:
    from ..uncertainty import describe_passes

    calibrated = (
        f"calibrated by temperature scaling (T = {', '.join(f'{t:g}' for t in uncertainty['temperatures'])})"
        if uncertainty.get("calibrated")
        else "not calibrated (the model carries no calibration)"
    )
    rank, low = uncertainty.get("held_out_share_less_confident"), uncertainty.get("low_confidence_below")
    compared = (
        f"It is above {rank:.0%} of the {escape(str(uncertainty.get('reference')))}; below {low:.3f} "
        "the report warns."
        if rank is not None and low is not None
        else escape(str(uncertainty.get("reference") or ""))
    )
    over = describe_passes(uncertainty.get("passes"), uncertainty.get("source", "mirrored"))
    html = (
        f"<h2>Uncertainty</h2><p>Confidence <b>{uncertainty['confidence']:.3f}</b>: 1 minus the mean "
        f"normalised entropy of the mean of {escape(over)} in the tumour zone (the segmented tumour grown by "
        f"2 voxels). {compared} Probabilities {escape(calibrated)}.</p>"
    )
    members = uncertainty.get("member_volumes_ml")
    if members:
        ensemble = report["volumes_ml"]["regions"]
        html += "<p>Each member of the ensemble alone, measured as the ensemble is:</p>" + _table(
            ["region", "ensemble (ml)", "members, least to most (ml)", "spread (ml)"],
            [
                (
                    r,
                    f"{ensemble.get(r, float('nan')):.1f}",
                    ", ".join(f"{x:.1f}" for x in sorted(v)),
                    f"{max(v) - min(v):.1f}",
                )
                for r, v in members.items()
            ],
            (1, 3),
        )
    if uncertainty_pngs:
        html += (
            "<p class='note'>Normalised entropy, black 0 (certain) to yellow 1 (uniform), the segmented "
            "tumour outlined in cyan, through the same slices.</p><div class='pics'>"
            + "".join(
                f"<img alt='uncertainty {escape(v)}' src='data:image/png;base64,"
                f"{base64.b64encode(png).decode('ascii')}'>"
                for v, png in uncertainty_pngs.items()
            )
            + "</div>"
        )
    return html


def _technical(report: dict, extra: dict) -> str:
    parts = ["<details><summary>Technical record (preprocessing, transforms, timings, model)</summary>"]
    grid = report["grid"]
    parts.append(
        f"<p>Segmentation grid {' x '.join(map(str, grid['shape']))} voxels of "
        f"{' x '.join(f'{s:g}' for s in grid['spacing_mm'])} mm, orientation {escape(grid['axcodes'])}. "
        f"Location took {report['seconds']['location']:.2f} s, "
        f"diameters {report['seconds']['diameters']:.2f} s.</p>"
    )
    if report["preprocessing"]:
        steps = [
            (
                i,
                s.get("step", s.get("name", "")),
                _scalar(s.get("seconds")),
                "; ".join(
                    f"{k.replace('_', ' ')} {_scalar(v)}"
                    for k, v in s.items()
                    if k not in ("step", "name", "seconds") and not isinstance(v, (dict, list))
                ),
            )
            for i, s in enumerate(report["preprocessing"], start=1)
        ]
        parts.append(
            "<h3>Preprocessing that ran</h3>" + _table(["#", "step", "seconds", "details"], steps, (0, 2))
        )
    raw = extra.get("raw_input") or {}
    if raw.get("transforms"):
        parts.append("<h3>Transforms</h3>" + record_html(jsonable(raw["transforms"])))
    if raw.get("seconds"):
        parts.append("<h3>Timings (s)</h3>" + record_html(jsonable(raw["seconds"])))
    rest = {k: v for k, v in extra.items() if k not in ("raw_input", "uncertainty", "followup")}
    if raw:
        rest["inputs"] = raw.get("inputs")
        rest["quality measures"] = {
            k: raw[k] for k in ("template_fit", "brain_uncovered", "brain_ml") if k in raw
        }
    if rest:
        parts.append("<h3>Other records</h3>" + record_html(jsonable(rest)))
    card = dict(report.get("model_card") or {})
    if card:
        note = card.pop("note", None)
        parts.append("<h3>Model</h3>" + record_html(jsonable(card)))
        if note:
            parts.append(f"<p class='note'>Model card note: {escape(str(note))}</p>")
    loc = report.get("location") or {}
    if loc.get("available"):
        parts.append(
            "<h3>Location atlas</h3>"
            + record_html({"atlas": loc["atlas"], "space": loc["space"], "rules": loc["rules"]})
        )
    parts.append("</details>")
    return "".join(parts)


def render_html(
    report: dict, pictures: dict[str, bytes], uncertainty_pngs: dict[str, bytes] | None = None
) -> str:
    """The report (:func:`medseg3d.clinical.report.case_report`) as one self-contained HTML page.

    Args:
        report: the report dict.
        pictures: {view: PNG bytes} of the overlays, embedded inline.
        uncertainty_pngs: {view: PNG bytes} of the uncertainty map, for the uncertainty section (None: none).
    """
    parts = [
        (
            f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{escape(TITLE)}</title>"
            f"<style>{_CSS}</style></head><body>"
        ),
        _header(report),
    ]
    parts.append(
        "<h2>Findings</h2><ul class='findings'>"
        + "".join(f"<li>{escape(s)}</li>" for s in summary_sentences(report))
        + "</ul>"
    )
    parts.append("<h2>Volumes and diameters</h2>" + _size_tables(report))
    if report.get("location"):
        parts.append("<h2>Location</h2>" + _location_table(report["location"]))
    extra = dict(report.get("extra") or {})
    follow = extra.get("followup")
    parts.append(
        "<h2>Follow-up</h2>"
        + (
            record_html(follow)
            if isinstance(follow, dict)
            else "<p class='note'>No earlier scan was compared. <code>medseg3d compare PRIOR CURRENT -o "
            "DIR</code> reports the change since an earlier scan.</p>"
        )
    )
    if pictures:
        parts.append(_pictures(report, pictures))
    uncertainty = extra.get("uncertainty")
    if isinstance(uncertainty, dict) and uncertainty.get("confidence") is not None:
        parts.append(_uncertainty(uncertainty, report, uncertainty_pngs))
    checks = quality_sentences(report)
    warned = set(report["warnings"])
    parts.append(
        "<h2>Quality checks</h2>"
        + "".join(
            f"<div class='warn'>{escape(s)}</div>" if s in warned else f"<div class='ok'>{escape(s)}</div>"
            for s in checks
        )
    )
    parts.append(_technical(report, extra))
    parts.append("</body></html>")
    return "\n".join(parts)
