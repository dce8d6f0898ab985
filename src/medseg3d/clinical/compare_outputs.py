"""What ``medseg3d compare`` writes besides ``compare.json``: the change map, the pictures and the HTML page.

Split from :mod:`.compare` (which re-exports these names): that module reads, registers and measures the two
time points; this one turns its record and label maps into what a reader looks at.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..io import Volume

if TYPE_CHECKING:
    from .compare import TimePoint

CHANGE_CODES = {
    0: "no tumour",
    1: "tumour at both scans",
    2: "tumour new at the current scan",
    3: "tumour gone at the current scan",
    4: "enhancing at both scans",
    5: "enhancing new at the current scan",
    6: "enhancing gone at the current scan",
}
"""Values of ``change_map.nii.gz`` (tumour = WT; an enhancing code wins where both apply)."""


def change_map(prior_labels: np.ndarray, current_labels: np.ndarray) -> np.ndarray:
    """Voxel-wise change of the tumour (WT) and the enhancing tumour (ET) as :data:`CHANGE_CODES` (uint8).

    Args:
        prior_labels, current_labels: BraTS label maps (0/1/2/4) on one grid (the current registered).
    """
    before, now = np.asarray(prior_labels) > 0, np.asarray(current_labels) > 0
    et_before, et_now = np.asarray(prior_labels) == 4, np.asarray(current_labels) == 4
    out = np.zeros(before.shape, dtype=np.uint8)
    out[before & now] = 1
    out[now & ~before] = 2
    out[before & ~now] = 3
    out[et_before & et_now] = 4
    out[et_now & ~et_before] = 5
    out[et_before & ~et_now] = 6
    return out


def _display(array: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """An array turned so that axial slices ``[:, :, z]`` show as radiologists look at them (patient's right
    on the left of the picture, anterior at the top) once transposed: the LPS orientation of the BraTS
    grid."""
    import nibabel as nib

    ornt = nib.orientations.ornt_transform(nib.io_orientation(affine), nib.orientations.axcodes2ornt("LPS"))
    return nib.orientations.apply_orientation(array, ornt)


def _picture_slices(prior_labels: np.ndarray, aligned: np.ndarray, count: int = 3) -> list[int]:
    """Axial slices (of the LPS-oriented arrays) to show: the largest tumour area at either scan, and the
    slices halfway to the tumour's top and bottom."""
    tumour = (prior_labels > 0) | (aligned > 0)
    if not tumour.any():
        z = prior_labels.shape[2] // 2
        return [z]
    area = tumour.sum(axis=(0, 1))
    rows = np.flatnonzero(area)
    peak = int(np.argmax(area))
    picks = [int((rows[0] + peak) // 2), peak, int((peak + rows[-1]) // 2)]
    return sorted(dict.fromkeys(picks))[:count]


def write_pictures(
    prior: TimePoint, aligned_labels: np.ndarray, aligned_image: Volume | None, path: Path
) -> Path:
    """``compare.png``: rows of axial slices, columns prior | current (registered) | change, outlines on the
    T1ce. Written atomically.

    Args:
        prior: the earlier time point (its labels and grid).
        aligned_labels: the current labels resampled onto the prior's grid.
        aligned_image: the current T1ce on the prior's grid (None: the outlines are drawn without an image).
        path: the PNG file.

    Returns:
        ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    from ..io import atomic_write

    affine = prior.labels.affine
    before = _display(np.asarray(prior.labels.array), affine)
    now = _display(aligned_labels, affine)
    images = [
        None if v is None else _display(np.asarray(v.array, dtype=np.float32), affine)
        for v in (prior.image, aligned_image)
    ]
    change = change_map(before, now)
    slices = _picture_slices(before, now)
    colours = {1: "#e41a1c", 2: "#4daf4a", 4: "#ffd92f"}
    change_cmap = ListedColormap(["none", "#9e9e9e", "#d7301f", "#2b8cbe", "#fdd49e", "#b30000", "#0570b0"])
    fig, axes = plt.subplots(len(slices), 3, figsize=(10.5, 3.6 * len(slices)), squeeze=False)
    for row, z in enumerate(slices):
        for col, (labels, image, title) in enumerate(
            [(before, images[0], "prior"), (now, images[1], "current"), (None, images[0], "change")]
        ):
            ax = axes[row, col]
            if image is not None:
                sl = image[:, :, z].T
                hi = np.percentile(sl[sl > 0], 99.5) if np.any(sl > 0) else 1.0
                ax.imshow(sl, cmap="gray", vmin=0, vmax=hi, interpolation="nearest")
            else:
                ax.imshow(np.zeros(before.shape[:2]).T, cmap="gray")
            if labels is not None:
                for value, colour in colours.items():
                    mask = (labels[:, :, z] == value).T
                    if mask.any():
                        ax.contour(mask, levels=[0.5], colors=[colour], linewidths=0.9)
            else:
                shown = np.ma.masked_equal(change[:, :, z].T, 0)
                ax.imshow(shown, cmap=change_cmap, vmin=0, vmax=6, alpha=0.75, interpolation="nearest")
            ax.set_title(f"{title}, axial slice {z}", fontsize=9)
            ax.set_axis_off()
    fig.text(
        0.01,
        0.005,
        "outlines: red necrosis, green oedema, yellow enhancing | change: grey tumour both, "
        "red new, blue gone; light/dark = whole tumour/enhancing | patient's right on the left",
        fontsize=7.5,
    )
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=90, format="png"), suffix=".tmp.png")
    finally:
        plt.close(fig)
    return path


def _fmt(v, unit="", digits=1) -> str:
    if v is None:
        return "&ndash;"
    return f"{v:+.{digits}f}{unit}" if unit == "%" else f"{v:.{digits}f}{unit}"


def render_html(record: dict) -> str:
    """``compare.html``: the categories with their reasons and the caveat, the table per region, new and
    vanished lesions, the picture, and the technical record folded."""
    from html import escape

    resp = record["response"]
    rows = []
    for name, r in record["regions"].items():
        rows.append(
            f"<tr><th>{name}</th><td>{_fmt(r['volume_ml']['prior'], ' ml')}</td>"
            f"<td>{_fmt(r['volume_ml']['current'], ' ml')}</td><td>{r['change_ml']:+.1f} ml</td>"
            f"<td>{_fmt(r['relative_change_percent'], '%')}</td>"
            f"<td>{r['sum_products_mm2']['prior']:.0f} &rarr; {r['sum_products_mm2']['current']:.0f} "
            f"mm&sup2; ({_fmt(r['sum_products_change_percent'], '%')})</td>"
            f"<td>{r['lesions']['prior']} &rarr; {r['lesions']['current']}</td>"
            f"<td>{len(r['new_lesions'])} / {len(r['vanished_lesions'])}</td></tr>"
        )
    lesion_rows = []
    for name, r in record["regions"].items():
        for kind, key in (("new", "new_lesions"), ("vanished", "vanished_lesions")):
            for le in r[key]:
                lesion_rows.append(
                    f"<tr><td>{name}</td><td>{kind}</td><td>{le['volume_ml']:.2f} ml</td>"
                    f"<td>{le['axial_mm']:.0f} &times; {le['perpendicular_mm']:.0f} mm</td>"
                    f"<td>{'yes' if le['measurable'] else 'no'}</td>"
                    f"<td>{', '.join(f'{v:.0f}' for v in le['centre_mm'])}</td></tr>"
                )
    lesions = (
        (
            "<table><tr><th>region</th><th>lesion</th><th>volume</th><th>diameters</th><th>measurable</th>"
            "<th>centre (RAS mm, SRI24)</th></tr>" + "".join(lesion_rows) + "</table>"
        )
        if lesion_rows
        else "<p>No new and no vanished lesion.</p>"
    )
    cats = "".join(
        f"<div class='cat'><h3>{title}</h3><p class='big'>{escape(resp[key]['category'])}</p>"
        f"<p>{escape(resp[key]['reason'])}</p></div>"
        for key, title in (
            ("rano_2010", "RANO 2010 (bidimensional, enhancing)"),
            ("rano_2_volumetric", "RANO 2.0 (volumetric, enhancing)"),
        )
    )
    technical = escape(
        json.dumps({k: record[k] for k in ("registration", "space", "seconds", "schema")}, indent=1)
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Follow-up comparison</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:1.5em auto;color:#222}}
table{{border-collapse:collapse;margin:.6em 0}}td,th{{border:1px solid #ccc;padding:.25em .6em;\
text-align:right}}
.cat{{display:inline-block;vertical-align:top;box-sizing:border-box;width:48%;margin-right:2%;\
border:1px solid #ccc;
padding:.4em .8em}}
.big{{font-size:1.5em;font-weight:bold;margin:.2em 0}}\
.caveat{{background:#fff4e5;border-left:4px solid #f0a030;
padding:.5em .8em}}img{{max-width:100%}}</style></head><body>
<h1>Follow-up comparison</h1>
<p>Prior: {escape(str(record["prior"]["source"]))}<br>Current: {escape(str(record["current"]["source"]))}</p>
{cats}
<p class="caveat">{escape(resp["caveat"])}</p>
<h2>Per region</h2>
<table><tr><th></th><th>prior</th><th>current</th><th>change</th><th>relative</th>
<th>sum of products (RANO)</th><th>lesions</th><th>new / vanished</th></tr>{"".join(rows)}</table>
<p>WT whole tumour, TC tumour core, ET enhancing tumour. Volumes from each scan's own segmentation; \
lesions are
matched after the current scan is registered onto the prior one (rigid).</p>
<h2>New and vanished lesions</h2>{lesions}
<h2>Pictures</h2><img src="compare.png" alt="prior, current and change on the same axial slices">
<p>The change map is in <code>change_map.nii.gz</code> on the SRI24 grid: {
        escape(", ".join(f"{k} {v}" for k, v in CHANGE_CODES.items()))
    }.</p>
<details><summary>Technical record</summary><pre>{technical}</pre></details>
</body></html>
"""
