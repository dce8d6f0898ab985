"""What a person reads first about a segmentation: volumes per region and per label, in millilitres.

One home for the numbers that every per-case summary (``predict``'s raw-input JSON, the report page) shows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .labels import LabelScheme


def voxel_volume_ml(spacing) -> float:
    """Volume of one voxel in ml (spacing in mm; 1 ml = 1000 mm^3)."""
    return float(np.prod([float(s) for s in spacing])) / 1000.0


def volumes_line(regions: dict) -> str:
    """``"WT 31.2 ml, TC 10.1 ml, ET 4.0 ml"``: :func:`volume_summary`'s regions as the console says them."""
    return ", ".join(f"{name} {ml:.1f} ml" for name, ml in regions.items())


def volume_summary(labels: np.ndarray, spacing, scheme: LabelScheme) -> dict:
    """Volumes in ml of each evaluation region (e.g. WT, TC, ET) and of each non-background label value.

    Args:
        labels: label map in the scheme's file values (X, Y, Z).
        spacing: voxel size in mm of the grid ``labels`` lies on.
        scheme: the label scheme (which values exist, which values make each region).

    Returns:
        ``{"regions": {name: ml}, "labels": {"<value> <class name>": ml}}``, rounded to 0.001 ml.

    Example:
        >>> volume_summary(np.array([[[0, 4], [2, 1]]]), (1, 1, 1), get_scheme("brats"))["regions"]["TC"]
        0.002
    """
    ml = voxel_volume_ml(spacing)
    counts = np.bincount(np.asarray(labels).astype(np.int64).ravel().clip(0), minlength=max(scheme.values) + 1)
    regions = {name: round(float(sum(counts[v] for v in members if v < len(counts))) * ml, 3)
               for name, members in scheme.regions.items()}
    per_label = {f"{v} {n}": round(float(counts[v]) * ml, 3)
                 for v, n in zip(scheme.values, scheme.class_names) if v != 0}
    return {"regions": regions, "labels": per_label}


# ---------------------------------------------------------------------------------------------------------------
# Lesions, pictures and the one-page report (``predict --report``)
# ---------------------------------------------------------------------------------------------------------------

MIN_LESION_MM3 = 50.0
"""Connected components of at most this volume are not counted as lesions (BraTS 2023's 50 mm^3 for gliomas)."""

LABEL_COLOURS = {1: "#e41a1c", 2: "#4daf4a", 3: "#984ea3", 4: "#ffd92f"}
PICTURE_CHANNELS = ("flair", "t2f", "t1ce", "t1c", "t1gd", "t2", "t2w", "t1", "t1n")
_CONNECTIVITY_26 = np.ones((3, 3, 3), dtype=bool)


def lesion_summary(labels: np.ndarray, affine, scheme: LabelScheme, min_lesion_mm3: float = MIN_LESION_MM3) -> dict:
    """The lesions of each region: connected components (26-connectivity) larger than ``min_lesion_mm3``.

    Args:
        labels: label map in the scheme's file values (X, Y, Z).
        affine: its 4x4 voxel-to-world matrix (RAS+, mm).
        scheme: the label scheme (which values make each region).
        min_lesion_mm3: components of at most this volume are counted in ``n_small`` only.

    Returns:
        ``{region: {"count", "n_small", "lesions": [{"volume_ml", "centre_mm", "centre_voxel"}, ...]}}`` with
        lesions largest first; ``centre_mm`` is the centroid in world (RAS) millimetres, ``centre_voxel`` the
        nearest voxel index. Without regions in the scheme, each non-background label is a region.
    """
    from scipy import ndimage

    labels = np.asarray(labels)
    affine = np.asarray(affine, dtype=float)
    voxel_mm3 = voxel_volume_ml(np.linalg.norm(affine[:3, :3], axis=0)) * 1000.0
    regions = scheme.regions or {n: (v,) for v, n in zip(scheme.values[1:], scheme.class_names[1:])}
    has_tumour = bool(labels.any())
    if has_tumour:  # every count below runs on the tumour's bounding box, not the whole volume
        box = [np.flatnonzero(labels.any(axis=tuple(a for a in range(3) if a != axis))) for axis in range(3)]
        box = tuple(slice(int(b[0]), int(b[-1]) + 1) for b in box)
        offset = np.array([b.start for b in box], dtype=float)
        crop = labels[box]
    out = {}
    for name, members in regions.items():
        found = []
        n = 0
        if has_tumour:
            cc, n = ndimage.label(np.isin(crop, members), structure=_CONNECTIVITY_26)
        if n:
            flat = cc.ravel()
            sizes = np.bincount(flat, minlength=n + 1)[1:]
            grid = np.indices(cc.shape, dtype=np.float64).reshape(3, -1)
            sums = np.stack([np.bincount(flat, weights=g, minlength=n + 1)[1:] for g in grid], axis=1)
            for size, total in zip(sizes, sums):
                if size * voxel_mm3 <= min_lesion_mm3:
                    continue
                centre = total / size + offset
                world = affine @ np.array([*centre, 1.0])
                found.append({"volume_ml": round(float(size) * voxel_mm3 / 1000.0, 3),
                              "centre_mm": [round(float(v), 1) for v in world[:3]],
                              "centre_voxel": [round(float(v)) for v in centre]})
        found.sort(key=lambda le: -le["volume_ml"])
        out[name] = {"count": len(found), "n_small": int(n) - len(found), "lesions": found}
    return out


def _picture_channel(image_channels: dict, labels_grid) -> tuple[str | None, np.ndarray | None]:
    """The channel drawn under the labels: FLAIR first, on the labels' grid (None when no channel fits)."""
    on_grid = {k: v for k, v in image_channels.items() if labels_grid is None or v.same_grid(labels_grid)}
    for wanted in PICTURE_CHANNELS:
        for name, vol in on_grid.items():
            if name.lower() == wanted:
                return name, np.asarray(vol.array, dtype=np.float32)
    if on_grid:
        name, vol = next(iter(on_grid.items()))
        return name, np.asarray(vol.array, dtype=np.float32)
    return None, None


def _to_ras(array: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """``array`` transposed and flipped so that its axes point (nearly) to Right, Anterior, Superior."""
    import nibabel as nib

    return nib.orientations.apply_orientation(array, nib.orientations.io_orientation(affine))


def radiological_slices(data: np.ndarray, labels: np.ndarray, affine, centre_voxel) -> dict:
    """Axial, coronal and sagittal slices through ``centre_voxel``, oriented for display (radiological).

    Returns ``{view: (image slice, label slice, pixel aspect, (left, right, top) letters)}``; row 0 of a slice
    is its top. The volumes are reoriented to RAS first and cropped to the head (nonzero image or labels, plus
    4 voxels), so the tumour is drawn large whatever the grid's orientation.
    """
    import nibabel as nib

    affine = np.asarray(affine, dtype=float)
    marker = np.zeros(labels.shape, dtype=bool)  # the centre, followed through the reorientation
    marker[tuple(int(v) for v in centre_voxel)] = True
    data, labels, marker = (_to_ras(a, affine) for a in (data, labels, marker))
    centre = [int(v) for v in np.argwhere(marker)[0]]
    spacing = np.empty(3)
    for axis, (to, _) in enumerate(nib.orientations.io_orientation(affine)):
        spacing[int(to)] = np.linalg.norm(affine[:3, axis])
    shown = (data != 0) | (labels != 0)
    if shown.any():
        box = []
        for axis in range(3):
            hit = np.flatnonzero(shown.any(axis=tuple(a for a in range(3) if a != axis)))
            box.append(slice(max(int(hit[0]) - 4, 0), min(int(hit[-1]) + 5, shown.shape[axis])))
        data, labels = data[tuple(box)], labels[tuple(box)]
        centre = [min(max(c - b.start, 0), b.stop - b.start - 1) for c, b in zip(centre, box)]
    ci, cj, ck = centre
    sx, sy, sz = (float(v) for v in spacing)
    # RAS axes -> rows top to bottom, columns left to right: axial A..P x R..L, coronal S..I x R..L,
    # sagittal S..I x A..P
    cuts = {
        "axial": (lambda a: a[::-1, ::-1, ck].T, sy / sx, ("R", "L", "A")),
        "coronal": (lambda a: a[::-1, cj, ::-1].T, sz / sx, ("R", "L", "S")),
        "sagittal": (lambda a: a[ci, ::-1, ::-1].T, sz / sy, ("A", "P", "S")),
    }
    return {view: (cut(data), cut(labels), aspect, letters) for view, (cut, aspect, letters) in cuts.items()}


def overlay_pictures(image: np.ndarray | None, labels: np.ndarray, scheme: LabelScheme, centre_voxel,
                     affine=None) -> dict[str, bytes]:
    """Axial, coronal and sagittal PNGs through ``centre_voxel``: the image in grey, labels as filled outlines.

    Drawn in radiological convention whatever the grid's orientation: axial and coronal with the patient's
    right on the viewer's left, anterior (axial) or superior (coronal, sagittal) at the top, sagittal with
    anterior on the left; letters at the edges say which side is which.

    Args:
        image: the background channel on the labels' grid (X, Y, Z), or None for a black background.
        labels: label map in the scheme's file values.
        scheme: gives the label values and colours' order.
        centre_voxel: (i, j, k) on the labels' grid that the three slices pass through.
        affine: the grid's 4x4 voxel-to-world matrix (RAS+); default identity. Its spacing gives thick slices
            their true aspect.

    Returns:
        ``{"axial": png, "coronal": png, "sagittal": png}`` (PNG file bytes).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    affine = np.eye(4) if affine is None else np.asarray(affine, dtype=float)
    labels = np.asarray(labels)
    data = np.zeros(labels.shape, dtype=np.float32) if image is None else np.asarray(image, dtype=np.float32)
    nonzero = data[data != 0]
    lo, hi = (np.percentile(nonzero, [1, 99.5]) if nonzero.size else (0.0, 1.0))
    views = radiological_slices(data, labels, affine, centre_voxel)
    out = {}
    for view, (picture, sl, aspect, letters) in views.items():
        fig, ax = plt.subplots(figsize=(3.4, 3.4), dpi=80)
        fig.patch.set_facecolor("black")
        ax.imshow(picture, cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1, aspect=aspect,
                  interpolation="nearest")
        for value in scheme.values[1:]:
            inside = sl == value
            if inside.any():
                colour = LABEL_COLOURS.get(value, "#00ffff")
                ax.imshow(np.ma.masked_where(~inside, inside), cmap=ListedColormap([colour]), alpha=0.35,
                          aspect=aspect, interpolation="nearest")
                ax.contour(inside, levels=[0.5], colors=[colour], linewidths=0.8)
        out[view] = _finish_png(fig, ax, view, letters)
    return out


def _finish_png(fig, ax, view: str, letters) -> bytes:
    """Orientation letters, title, no axes; the figure as PNG bytes (closed)."""
    import io as _io

    import matplotlib.pyplot as plt

    left, right, top = letters
    for x, y, letter, ha, va in ((0.01, 0.5, left, "left", "center"), (0.99, 0.5, right, "right", "center"),
                                 (0.5, 0.99, top, "center", "top")):
        ax.text(x, y, letter, transform=ax.transAxes, color="#9fd3ff", fontsize=9, ha=ha, va=va, fontweight="bold")
    ax.set_title(view, color="white", fontsize=9)
    ax.axis("off")
    buffer = _io.BytesIO()
    fig.savefig(buffer, format="png", facecolor="black", bbox_inches="tight", pad_inches=0.02)
    plt.close(fig)
    return buffer.getvalue()


def uncertainty_pictures(entropy: np.ndarray, labels: np.ndarray, centre_voxel, affine=None) -> dict[str, bytes]:
    """The uncertainty map (normalised entropy, 0 black to 1 white-yellow, ``magma``) through the same three
    slices as :func:`overlay_pictures`, with the segmented tumour's outline in cyan."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    affine = np.eye(4) if affine is None else np.asarray(affine, dtype=float)
    views = radiological_slices(np.asarray(entropy, dtype=np.float32), np.asarray(labels), affine, centre_voxel)
    out = {}
    for view, (picture, sl, aspect, letters) in views.items():
        fig, ax = plt.subplots(figsize=(3.4, 3.4), dpi=80)
        fig.patch.set_facecolor("black")
        ax.imshow(picture, cmap="magma", vmin=0.0, vmax=1.0, aspect=aspect, interpolation="nearest")
        if (sl > 0).any():
            ax.contour(sl > 0, levels=[0.5], colors=["#00e5ff"], linewidths=0.7)
        out[view] = _finish_png(fig, ax, view, letters)
    return out


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None  # JSON has no NaN; a missing number reads as null
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def case_report(labels, image_channels: dict | None, scheme: LabelScheme, model_card: dict | None = None,
                preprocessing: list[dict] | None = None, extra: dict | None = None,
                min_lesion_mm3: float = MIN_LESION_MM3) -> dict:
    """Everything the report shows, as a JSON-ready dict (see :func:`write_case_report`)."""
    volumes = volume_summary(labels.array, labels.spacing, scheme)
    lesions = lesion_summary(labels.array, labels.affine, scheme, min_lesion_mm3)
    extra = dict(extra or {})
    warnings = [str(w) for w in extra.pop("warnings", [])]
    uncertainty = extra.get("uncertainty")
    if isinstance(uncertainty, dict) and uncertainty.get("confidence") is not None:
        from .uncertainty import confidence_warning

        low = confidence_warning(float(uncertainty["confidence"]), uncertainty.get("low_confidence_below"),
                                 uncertainty.get("source", "mirrored"))
        if low:
            warnings.append(low)
    if not np.any(np.asarray(labels.array)):
        warnings.append("No tumour was segmented. If a tumour is visible, the input may not match what the model "
                        "was trained on (channels, preprocessing).")
    channel, _ = _picture_channel(image_channels or {}, labels)
    if image_channels and channel is None:
        warnings.append("No input channel lies on the segmentation's grid; the pictures show the labels alone.")
    return {
        "grid": {"shape": list(labels.shape), "spacing_mm": [round(s, 4) for s in labels.spacing],
                 "axcodes": "".join(labels.axcodes)},
        "volumes_ml": volumes,
        "lesions": {"min_lesion_mm3": min_lesion_mm3, "connectivity": 26, "regions": lesions},
        "model_card": model_card or {},
        "preprocessing": list(preprocessing or []),
        "picture_channel": channel,
        "warnings": warnings,
        "extra": extra,
    }


def _largest_lesion_centre(report: dict, labels: np.ndarray) -> tuple[int, int, int]:
    best = None
    for region in report["lesions"]["regions"].values():
        for lesion in region["lesions"]:
            if best is None or lesion["volume_ml"] > best["volume_ml"]:
                best = lesion
    if best is not None:
        return tuple(best["centre_voxel"])
    return tuple(int(s) // 2 for s in labels.shape)


def _card_rows(card: dict) -> list[tuple[str, str]]:
    """Model card fields that read well in a table: scalars, small dicts of scalars; long lists as counts."""
    rows = []
    for key, value in card.items():
        if isinstance(value, dict):
            if all(not isinstance(v, (dict, list)) for v in value.values()) and len(value) <= 12:
                text = ", ".join(f"{k} {v}" for k, v in value.items())
            else:
                text = f"({len(value)} entries, in the JSON)"
        elif isinstance(value, list):
            text = ", ".join(map(str, value)) if len(value) <= 6 else f"{len(value)} items (in the JSON)"
        else:
            text = str(value)
        rows.append((key.replace("_", " "), text))
    return rows


_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:24px;color:#222;max-width:1100px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:16px;margin:22px 0 6px;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:13px;margin:4px 0} td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f2f2f2} td.num{text-align:right;font-variant-numeric:tabular-nums}
.pics{display:flex;gap:8px;flex-wrap:wrap;background:#000;padding:6px;border-radius:4px} .pics img{height:260px}
.warn{background:#fff4ce;border:1px solid #e0b000;padding:6px 10px;margin:4px 0;border-radius:3px}
.note{color:#666;font-size:12px} .swatch{display:inline-block;width:11px;height:11px;margin-right:4px;vertical-align:-1px}
"""


def render_html(report: dict, pictures: dict[str, bytes], title: str,
                uncertainty_pngs: dict[str, bytes] | None = None) -> str:
    """The report as one self-contained HTML page (styles inline, pictures as base64 PNG; no network)."""
    import base64
    import json
    from html import escape

    def table(header, rows, numeric=()):
        head = "".join(f"<th>{escape(str(h))}</th>" for h in header)
        body = "".join("<tr>" + "".join(
            f"<td class='num'>{escape(str(c))}</td>" if i in numeric else f"<td>{escape(str(c))}</td>"
            for i, c in enumerate(row)) + "</tr>" for row in rows)
        return f"<table><tr>{head}</tr>{body}</table>"

    parts = [(f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>"
              f"<style>{_CSS}</style></head><body>"), f"<h1>{escape(title)}</h1>",
             ("<p class='note'>Automatic segmentation for research use, not for clinical decisions. "
             f"Grid {' x '.join(map(str, report['grid']['shape']))} voxels of "
             f"{' x '.join(f'{s:g}' for s in report['grid']['spacing_mm'])} mm, "
             f"orientation {escape(report['grid']['axcodes'])}.</p>")]
    if report["warnings"]:
        parts.append("<h2>Warnings</h2>" + "".join(f"<div class='warn'>{escape(w)}</div>" for w in report["warnings"]))
    volumes = report["volumes_ml"]
    parts.append("<h2>Volumes</h2>")
    parts.append(table(["region", "volume (ml)"], [(k, f"{v:.3f}") for k, v in volumes["regions"].items()], (1,)))
    parts.append(table(["label", "volume (ml)"], [(k, f"{v:.3f}") for k, v in volumes["labels"].items()], (1,)))
    les = report["lesions"]
    parts.append(f"<h2>Lesions</h2><p class='note'>Connected components (26-connectivity) larger than "
                 f"{les['min_lesion_mm3']:g} mm<sup>3</sup>; centres in world coordinates (RAS, mm).</p>")
    rows = []
    for region, info in les["regions"].items():
        for i, lesion in enumerate(info["lesions"], start=1):
            rows.append((region, i, f"{lesion['volume_ml']:.3f}", ", ".join(f"{c:.1f}" for c in lesion["centre_mm"]),
                         ", ".join(map(str, lesion["centre_voxel"]))))
    counts = ", ".join(f"{r}: {info['count']}" + (f" (+{info['n_small']} smaller)" if info["n_small"] else "")
                       for r, info in les["regions"].items())
    parts.append(f"<p>Lesion count: {escape(counts)}</p>")
    if rows:
        parts.append(table(["region", "#", "volume (ml)", "centre (mm, RAS)", "centre (voxel)"], rows, (1, 2)))
    if pictures:
        legend = " ".join(f"<span><span class='swatch' style='background:{LABEL_COLOURS.get(int(k.split()[0]), '#0ff')}'>"
                          f"</span>{escape(k)}</span>" for k in volumes["labels"])
        parts.append(f"<h2>Pictures</h2><p class='note'>Through the largest lesion, over "
                     f"{escape(str(report['picture_channel'] or 'no image'))}. {legend}</p><div class='pics'>")
        for view, png in pictures.items():
            data = base64.b64encode(png).decode("ascii")
            parts.append(f"<img alt='{escape(view)}' src='data:image/png;base64,{data}'>")
        parts.append("</div>")
    extra = dict(report.get("extra") or {})
    uncertainty = extra.pop("uncertainty", None)
    if isinstance(uncertainty, dict) and uncertainty.get("confidence") is not None:
        calibrated = (f"calibrated by temperature scaling (T = {', '.join(f'{t:g}' for t in uncertainty['temperatures'])})"
                      if uncertainty.get("calibrated") else "not calibrated (the model carries no calibration)")
        rank, low = uncertainty.get("held_out_share_less_confident"), uncertainty.get("low_confidence_below")
        compared = (f"It is above {rank:.0%} of the {escape(str(uncertainty.get('reference')))}; below {low:.3f} "
                    "the report warns." if rank is not None and low is not None
                    else escape(str(uncertainty.get("reference") or "")))
        from .uncertainty import describe_passes

        over = describe_passes(uncertainty.get("passes"), uncertainty.get("source", "mirrored"))
        parts.append(f"<h2>Uncertainty</h2><p>Confidence <b>{uncertainty['confidence']:.3f}</b>: 1 minus the mean "
                     f"normalised entropy of the mean of {escape(over)} in the tumour zone (the "
                     f"segmented tumour grown by 2 voxels). {compared} Probabilities {escape(calibrated)}.</p>")
        members = uncertainty.get("member_volumes_ml")
        if members:
            ensemble = report["volumes_ml"]["regions"]
            parts.append("<p>Each member of the ensemble alone, measured as the ensemble is:</p>" + table(
                ["region", "ensemble (ml)", "members, least to most (ml)", "spread (ml)"],
                [(r, f"{ensemble.get(r, float('nan')):.1f}", ", ".join(f"{x:.1f}" for x in sorted(v)),
                  f"{max(v) - min(v):.1f}") for r, v in members.items()], (1, 3)))
        if uncertainty_pngs:
            parts.append("<p class='note'>Normalised entropy, black 0 (certain) to yellow 1 (uniform), the "
                         "segmented tumour outlined in cyan, through the same slices.</p><div class='pics'>")
            for view, png in uncertainty_pngs.items():
                data = base64.b64encode(png).decode("ascii")
                parts.append(f"<img alt='uncertainty {escape(view)}' src='data:image/png;base64,{data}'>")
            parts.append("</div>")
    if extra:
        parts.append("<h2>More</h2>")
        parts.append(table(["item", "value"], [(k, json.dumps(_jsonable(v)) if isinstance(v, (dict, list)) else v)
                                               for k, v in extra.items()]))
    if report["model_card"]:
        parts.append("<h2>Model</h2>" + table(["field", "value"], _card_rows(report["model_card"])))
    if report["preprocessing"]:
        steps = [(i, step.get("step", step.get("name", "")),
                  ", ".join(f"{k}={v}" for k, v in step.items() if k not in ("step", "name")))
                 for i, step in enumerate(report["preprocessing"], start=1)]
        parts.append("<h2>Preprocessing that ran</h2>" + table(["#", "step", "details"], steps, (0,)))
    parts.append("</body></html>")
    return "\n".join(parts)


def write_case_report(labels, image_channels: dict, scheme: LabelScheme, out_stem, model_card: dict,
                      preprocessing: list[dict], extra: dict | None = None,
                      uncertainty_map: np.ndarray | None = None) -> tuple[Path, Path]:
    """Write ``<out_stem>.json`` and ``<out_stem>.report.html`` for one segmented case.

    Args:
        labels: the segmentation as a :class:`~medseg3d.io.Volume` (file values, its own grid and affine).
        image_channels: modality name -> input :class:`~medseg3d.io.Volume`; the pictures are drawn over FLAIR
            (else T1c, T2, T1, or the first channel) among those on the labels' grid.
        scheme: the label scheme (regions and label names).
        out_stem: path without suffix, e.g. ``out/case`` for ``out/case.nii.gz``.
        model_card: the model's card (``medseg3d.models.model_card``), shown and saved as given.
        preprocessing: the steps that ran, one dict each (``{"step": "resample", ...}``), in order.
        extra: more items to save and show; ``extra["warnings"]`` (a list of strings) is shown at the top of
            the page with the report's own warnings; ``extra["uncertainty"]`` (what
            :func:`medseg3d.uncertainty.case_confidence` returns) adds a warning below its confidence threshold
            and an Uncertainty section.
        uncertainty_map: the voxel-wise normalised entropy on the labels' grid, drawn in that section.

    Returns:
        (JSON path, HTML path). Both are written atomically (temporary file, then rename).

    Raises:
        InputError: the output folder does not exist or cannot be written.
    """
    import json

    from .errors import InputError
    from .io import Volume, write_text_atomic

    out_stem = Path(out_stem)
    if not isinstance(labels, Volume):
        raise InputError("write_case_report needs the labels as a Volume (array + affine)")
    if not out_stem.parent.is_dir():
        raise InputError(f"{out_stem.parent}: output folder does not exist; create it first")
    report = case_report(labels, image_channels, scheme, model_card, preprocessing, extra)
    _, image = _picture_channel(image_channels or {}, labels)
    centre = _largest_lesion_centre(report, labels)
    report["pictures_through_voxel"] = list(centre)
    pictures = overlay_pictures(image, labels.array, scheme, centre, labels.affine)
    uncertainty_pngs = None
    if uncertainty_map is not None and np.shape(uncertainty_map) == labels.shape:
        uncertainty_pngs = uncertainty_pictures(uncertainty_map, labels.array, centre, labels.affine)
    title = f"Segmentation report: {out_stem.name}"
    json_path = out_stem.with_name(out_stem.name + ".json")
    html_path = out_stem.with_name(out_stem.name + ".report.html")
    try:
        write_text_atomic(json.dumps(_jsonable(report), indent=1), json_path)
        write_text_atomic(render_html(report, pictures, title, uncertainty_pngs), html_path)
    except OSError as exc:
        raise InputError(f"{out_stem.parent}: cannot write the report ({exc.strerror}); choose another folder") from exc
    return json_path, html_path
