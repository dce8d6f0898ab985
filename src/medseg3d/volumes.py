"""What a person reads first about a segmentation: volumes per region and per label, and its lesions.

One home for the numbers that every per-case summary (``predict``'s raw-input JSON, the report page) shows.
They stay here, below the clinical tier, because ``raw`` and ``predict`` measure with them too; the report
page itself (pictures, HTML, PDF) is :mod:`medseg3d.clinical.report`.
"""

from __future__ import annotations

import numpy as np

from .labels import LabelScheme


def voxel_volume_ml(spacing) -> float:
    """Volume of one voxel in ml (spacing in mm; 1 ml = 1000 mm^3)."""
    return float(np.prod([float(s) for s in spacing])) / 1000.0


def volumes_line(summary: dict) -> str:
    """The console's line for :func:`volume_summary`'s result: ``"tumour volumes: WT 31.2 ml, TC 10.1 ml, ET
    4.0 ml"`` for a tumour scheme (one with a whole-tumour region), ``"volumes: anterior 1.6 ml, posterior 1.4
    ml"`` (each label by its class name) for any other anatomy."""
    regions = summary["regions"]
    if "WT" in regions:
        return "tumour volumes: " + ", ".join(f"{name} {ml:.1f} ml" for name, ml in regions.items())
    per_label = {key.split(" ", 1)[1]: ml for key, ml in summary["labels"].items()}
    return "volumes: " + ", ".join(f"{name} {ml:.1f} ml" for name, ml in (per_label or regions).items())


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
    counts = np.bincount(
        np.asarray(labels).astype(np.int64).ravel().clip(0), minlength=max(scheme.values) + 1
    )
    regions = {
        name: round(float(sum(counts[v] for v in members if v < len(counts))) * ml, 3)
        for name, members in scheme.regions.items()
    }
    per_label = {
        f"{v} {n}": round(float(counts[v]) * ml, 3)
        for v, n in zip(scheme.values, scheme.class_names)
        if v != 0
    }
    return {"regions": regions, "labels": per_label}


MIN_LESION_MM3 = 50.0
"""Connected components of at most this volume are not counted as lesions (BraTS 2023's 50 mm^3 for
gliomas)."""

_CONNECTIVITY_26 = np.ones((3, 3, 3), dtype=bool)


def lesion_summary(
    labels: np.ndarray, affine, scheme: LabelScheme, min_lesion_mm3: float = MIN_LESION_MM3
) -> dict:
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
                found.append(
                    {
                        "volume_ml": round(float(size) * voxel_mm3 / 1000.0, 3),
                        "centre_mm": [round(float(v), 1) for v in world[:3]],
                        "centre_voxel": [round(float(v)) for v in centre],
                    }
                )
        found.sort(key=lambda le: -le["volume_ml"])
        out[name] = {"count": len(found), "n_small": int(n) - len(found), "lesions": found}
    return out
