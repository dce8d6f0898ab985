"""What a person reads first about a segmentation: volumes per region and per label, in millilitres.

One home for the numbers that every per-case summary (``predict``'s raw-input JSON, the report page) shows.
"""

from __future__ import annotations

import numpy as np

from .labels import LabelScheme


def voxel_volume_ml(spacing) -> float:
    """Volume of one voxel in ml (spacing in mm; 1 ml = 1000 mm^3)."""
    return float(np.prod([float(s) for s in spacing])) / 1000.0


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
