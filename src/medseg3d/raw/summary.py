"""What an aligned raw case shows beside its segmentation: its quality checks and ``<stem>.png`` (a picture);
``predict`` records the numbers in ``<stem>.json`` (:func:`medseg3d.predict.outputs.case_record`).

The picture shows the reference scan (T1ce) as exported, with the brain mask, the registered template's brain
and the tumour outlined, in three orthogonal planes through the tumour, so that a person sees at a glance
whether skull stripping and alignment worked.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..io import Volume, atomic_write
from ..labels import LabelScheme
from . import qc
from .geometry import resample
from .pipeline import Aligned
from .template import load_template

REGION_COLOURS = {"WT": "#2ca02c", "TC": "#d62728", "ET": "#ffd700"}


def on_native_grid(labels: Volume, prepared: Aligned) -> bool:
    """Whether ``labels`` lie on the reference scan's own grid (else on the model's).

    Args:
        labels: the label map.
        prepared: the aligned case.
    """
    return labels.shape == prepared.native.shape and np.allclose(labels.affine, prepared.native.affine)


def summary_warnings(labels: Volume, prepared: Aligned, scheme: LabelScheme) -> list[str]:
    """The quality checks of an aligned case that fired: the alignment's (:mod:`.qc`) and whether the tumour
    lies inside the brain mask and off its edge; one line each.

    Args:
        labels: the predicted label map (on the native or the model grid).
        prepared: the aligned case (its warnings and brain masks).
        scheme: the label scheme (non-zero values are tumour; a scheme without regions skips the tumour
            checks).
    """
    brain = prepared.native_brain if on_native_grid(labels, prepared) else prepared.brain
    warnings = list(prepared.warnings)
    if brain is not None and scheme.regions:
        tumour = np.isin(labels.array, [v for v in scheme.values if v != 0])
        warnings += qc.check_tumour_in_brain(tumour, brain, labels.spacing)
    return warnings


def write_qc_picture(labels: Volume, prepared: Aligned, scheme: LabelScheme, path: Path) -> Path:
    """Write the alignment picture ``path`` (atomically): the reference scan as given, with the brain mask,
    the registered template's brain and the tumour outlined (:func:`qc_picture`).

    Args:
        labels: the predicted label map.
        prepared: the aligned case.
        scheme: the label scheme.
        path: the PNG file.

    Returns:
        ``path``.
    """
    on_native = on_native_grid(labels, prepared)
    brain = prepared.native_brain if on_native else None
    return atomic_write(path, lambda tmp: qc_picture(prepared, labels, scheme, tmp, brain))


def _canonical(array: np.ndarray, affine: np.ndarray):
    """``array`` in the closest RAS axis order, and its voxel sizes in that order."""
    import nibabel as nib

    ornt = nib.io_orientation(affine)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    out = nib.orientations.apply_orientation(array, ornt)
    return out, spacing[np.argsort(ornt[:, 0])]


def qc_picture(prepared: Aligned, labels: Volume, scheme: LabelScheme, path, native_brain: np.ndarray | None):
    """Three orthogonal planes of the reference scan through the tumour (or brain) centre, with outlines.

    Args:
        prepared: the aligned case.
        labels: the label map, on the native grid (with ``native_brain``) or the model's.
        scheme: the label scheme (the outlines' regions).
        path: where the PNG goes (not atomic: :func:`write_qc_picture` is).
        native_brain: the brain mask on the native grid; None draws on the model grid.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if native_brain is not None:
        base, grid = prepared.native, prepared.native
        template_brain = _template_on(grid, prepared)
    else:  # labels on the model grid: show the preprocessed reference channel there
        grid = Volume(prepared.channels[prepared.reference], prepared.affine)
        base, template_brain = grid, None
    image, spacing = _canonical(base.array.astype(np.float32), base.affine)
    lab, _ = _canonical(labels.array, labels.affine)
    brain = (
        _canonical(native_brain if native_brain is not None else prepared.brain, base.affine)[0]
        if (native_brain is not None or prepared.brain is not None)
        else None
    )
    tmpl = _canonical(template_brain, base.affine)[0] if template_brain is not None else None
    tumour = lab > 0
    centre = np.argwhere(tumour).mean(0) if tumour.any() else np.array(image.shape) / 2
    c = [int(np.round(v)) for v in centre]
    lo, hi = np.percentile(image[image > 0], [1, 99.5]) if (image > 0).any() else (0, 1)
    planes = [
        ("axial", lambda a: a[:, :, c[2]], (spacing[0], spacing[1])),
        ("coronal", lambda a: a[:, c[1], :], (spacing[0], spacing[2])),
        ("sagittal", lambda a: a[c[0], :, :], (spacing[1], spacing[2])),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(15, 5.6), facecolor="black")
    for ax, (name, cut, (sx, sy)) in zip(axes, planes):
        extent = (0, cut(image).shape[0] * sx, 0, cut(image).shape[1] * sy)
        ax.imshow(np.rot90(cut(image)), cmap="gray", vmin=lo, vmax=hi, extent=extent, interpolation="nearest")
        for mask, colour, style in ((brain, "#00bfff", "solid"), (tmpl, "#ff00ff", "dashed")):
            if mask is not None and cut(mask).any():
                ax.contour(
                    np.rot90(cut(mask).astype(float)),
                    [0.5],
                    colors=colour,
                    linestyles=style,
                    linewidths=1.0,
                    extent=extent,
                    origin="upper",
                )
        for region, members in scheme.regions.items():
            m = np.isin(cut(lab), members)
            if m.any():
                ax.contour(
                    np.rot90(m.astype(float)),
                    [0.5],
                    colors=REGION_COLOURS.get(region, "red"),
                    linewidths=1.2,
                    extent=extent,
                    origin="upper",
                )
        ax.set_title(name, color="white")
        ax.axis("off")
    legend = "brain mask (cyan), template brain (magenta, dashed), " + ", ".join(
        f"{r} ({'green' if r == 'WT' else 'red' if r == 'TC' else 'yellow'})" for r in scheme.regions
    )
    fig.suptitle(
        f"{prepared.reference} as given, preprocessing '{prepared.mode}': {legend}",
        color="white",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=80, facecolor="black", format="png")
    plt.close(fig)


def _template_on(grid: Volume, prepared: Aligned) -> np.ndarray | None:
    if prepared.grid_from_native is None or prepared.mode != "full":
        return None
    template = load_template()
    return (
        resample(
            Volume(template.brain, template.affine),
            grid.shape,
            grid.affine,
            prepared.grid_from_native,
            order=1,
        )
        >= 0.5
    )
