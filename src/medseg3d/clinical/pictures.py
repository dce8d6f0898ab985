"""The report's pictures: slices through a lesion in radiological convention, labels drawn over an input
channel (or the uncertainty map), as PNG bytes. matplotlib with the Agg backend: no display, no network.
"""

from __future__ import annotations

import numpy as np

from ..labels import LabelScheme

LABEL_COLOURS = {1: "#e41a1c", 2: "#4daf4a", 3: "#984ea3", 4: "#ffd92f"}
PICTURE_CHANNELS = ("flair", "t2f", "t1ce", "t1c", "t1gd", "t2", "t2w", "t1", "t1n")


def picture_channel(image_channels: dict, labels_grid) -> tuple[str | None, np.ndarray | None]:
    """The channel drawn under the labels: FLAIR first, on the labels' grid (None when no channel fits).

    Args:
        image_channels: {modality: Volume} of the inputs.
        labels_grid: the labels' Volume (None: any grid fits).

    Returns:
        (channel name, its (X, Y, Z) float32 array), or (None, None).
    """
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

    The volumes are reoriented to RAS first and cropped to the head (nonzero image or labels, plus 4 voxels),
    so the tumour is drawn large whatever the grid's orientation.

    Args:
        data: the image, (X, Y, Z).
        labels: the label map on the same grid.
        affine: the grid's 4x4 voxel-to-RAS map.
        centre_voxel: the (x, y, z) voxel the slices pass through.

    Returns:
        ``{view: (image slice, label slice, pixel aspect, (left, right, top) letters)}``; row 0 of a slice is
        its top.
    """
    return _slices(data, labels, affine, centre_voxel)[0]


def _slices(data, labels, affine, centre_voxel, points=None) -> tuple[dict, list]:
    """:func:`radiological_slices`, and where voxel coordinates ``points`` fall on the axial view (row,
    col)."""
    import nibabel as nib

    affine = np.asarray(affine, dtype=float)
    ornt = nib.orientations.io_orientation(affine)
    ras_points = []
    for p in points or []:  # voxel coordinates -> those of the RAS-reoriented volume
        q = np.empty(3)
        for axis, (to, flip) in enumerate(ornt):
            q[int(to)] = labels.shape[axis] - 1 - p[axis] if flip < 0 else p[axis]
        ras_points.append(q)
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
        ras_points = [q - [b.start for b in box] for q in ras_points]
    ci, cj, ck = centre
    sx, sy, sz = (float(v) for v in spacing)
    # RAS axes -> rows top to bottom, columns left to right: axial A..P x R..L, coronal S..I x R..L,
    # sagittal S..I x A..P
    cuts = {
        "axial": (lambda a: a[::-1, ::-1, ck].T, sy / sx, ("R", "L", "A")),
        "coronal": (lambda a: a[::-1, cj, ::-1].T, sz / sx, ("R", "L", "S")),
        "sagittal": (lambda a: a[ci, ::-1, ::-1].T, sz / sy, ("A", "P", "S")),
    }
    nx, ny = data.shape[:2]  # axial: column nx - 1 - x, row ny - 1 - y (the cut above)
    shown_points = [(ny - 1 - q[1], nx - 1 - q[0]) for q in ras_points]
    return (
        {view: (cut(data), cut(labels), aspect, letters) for view, (cut, aspect, letters) in cuts.items()},
        shown_points,
    )


def overlay_pictures(
    image: np.ndarray | None,
    labels: np.ndarray,
    scheme: LabelScheme,
    centre_voxel,
    affine=None,
    *,
    views=("axial", "coronal", "sagittal"),
    line=None,
    title: str | None = None,
) -> dict[str, bytes]:
    """Axial, coronal and sagittal PNGs through ``centre_voxel``: the image in grey, labels as filled
    outlines.

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
        views: which of the three to draw.
        line: two voxel coordinates (e.g. a RANO diameter's ends) drawn as a segment on the axial view.
        title: the pictures' title instead of the view's name.

    Returns:
        ``{"axial": png, "coronal": png, "sagittal": png}`` (PNG file bytes), the views asked for.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    affine = np.eye(4) if affine is None else np.asarray(affine, dtype=float)
    labels = np.asarray(labels)
    data = np.zeros(labels.shape, dtype=np.float32) if image is None else np.asarray(image, dtype=np.float32)
    nonzero = data[data != 0]
    lo, hi = np.percentile(nonzero, [1, 99.5]) if nonzero.size else (0.0, 1.0)
    slices, ends = _slices(data, labels, affine, centre_voxel, line)
    out = {}
    for view, (picture, sl, aspect, letters) in slices.items():
        if view not in views:
            continue
        fig, ax = plt.subplots(figsize=(3.4, 3.4), dpi=80)
        fig.patch.set_facecolor("black")
        ax.imshow(
            picture,
            cmap="gray",
            vmin=lo,
            vmax=hi if hi > lo else lo + 1,
            aspect=aspect,
            interpolation="nearest",
        )
        for value in scheme.values[1:]:
            inside = sl == value
            if inside.any():
                colour = LABEL_COLOURS.get(value, "#00ffff")
                ax.imshow(
                    np.ma.masked_where(~inside, inside),
                    cmap=ListedColormap([colour]),
                    alpha=0.35,
                    aspect=aspect,
                    interpolation="nearest",
                )
                ax.contour(inside, levels=[0.5], colors=[colour], linewidths=0.8)
        if view == "axial" and len(ends) == 2:
            (r1, c1), (r2, c2) = ends
            ax.plot([c1, c2], [r1, r2], color="#00e5ff", linewidth=1.6, solid_capstyle="round")
        out[view] = finish_png(fig, ax, title or view, letters)
    return out


def finish_png(fig, ax, view: str, letters) -> bytes:
    """Orientation letters, title, no axes; the figure as PNG bytes (closed).

    Args:
        fig, ax: the figure and its one axes.
        view: the title (e.g. "axial").
        letters: the (left, right, top) orientation letters.
    """
    import io as _io

    import matplotlib.pyplot as plt

    left, right, top = letters
    for x, y, letter, ha, va in (
        (0.01, 0.5, left, "left", "center"),
        (0.99, 0.5, right, "right", "center"),
        (0.5, 0.99, top, "center", "top"),
    ):
        ax.text(
            x, y, letter, transform=ax.transAxes, color="#9fd3ff", fontsize=9, ha=ha, va=va, fontweight="bold"
        )
    ax.set_title(view, color="white", fontsize=9)
    ax.axis("off")
    buffer = _io.BytesIO()
    fig.savefig(buffer, format="png", facecolor="black", bbox_inches="tight", pad_inches=0.02)
    plt.close(fig)
    return buffer.getvalue()


def uncertainty_pictures(
    entropy: np.ndarray, labels: np.ndarray, centre_voxel, affine=None
) -> dict[str, bytes]:
    """The uncertainty map (normalised entropy, 0 black to 1 white-yellow, ``magma``) through the same three
    slices as :func:`overlay_pictures`, with the segmented tumour's outline in cyan.

    Args:
        entropy: the voxel-wise normalised entropy in [0, 1], (X, Y, Z).
        labels: the label map on the same grid (non-zero: tumour).
        centre_voxel: the (x, y, z) voxel the slices pass through.
        affine: the grid's 4x4 voxel-to-RAS map (None: the identity).

    Returns:
        {view: PNG bytes}.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    affine = np.eye(4) if affine is None else np.asarray(affine, dtype=float)
    views = radiological_slices(
        np.asarray(entropy, dtype=np.float32), np.asarray(labels), affine, centre_voxel
    )
    out = {}
    for view, (picture, sl, aspect, letters) in views.items():
        fig, ax = plt.subplots(figsize=(3.4, 3.4), dpi=80)
        fig.patch.set_facecolor("black")
        ax.imshow(picture, cmap="magma", vmin=0.0, vmax=1.0, aspect=aspect, interpolation="nearest")
        if (sl > 0).any():
            ax.contour(sl > 0, levels=[0.5], colors=["#00e5ff"], linewidths=0.7)
        out[view] = finish_png(fig, ax, view, letters)
    return out
