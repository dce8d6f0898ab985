"""Post-processing of a label map, each step off by default and chosen by cross-validation (docs/results.md).

* :func:`remove_small_components`: tumour components under N voxels become background (``--min-component``);
* :func:`remove_far_components`: tumour components whose nearest voxel lies more than D mm from the largest
  component become background (``--max-distance``): a false-positive blob far from the tumour, as a case from
  another preprocessing pipeline showed (issue #22), without touching a lesion next to the main one;
* :func:`relabel_small_enhancing`: BraTS, under N enhancing voxels call them necrosis (``--min-enhancing``).
"""

from __future__ import annotations

import numpy as np

from .errors import InputError
from .labels import LabelScheme

_FULL = np.ones((3, 3, 3), dtype=bool)  # 26-connectivity


def remove_small_components(labels: np.ndarray, min_voxels: int) -> np.ndarray:
    """Set connected foreground components (26-connectivity) smaller than ``min_voxels`` to background.

    Args:
        labels: the label map (file values; non-zero is foreground).
        min_voxels: the smallest component kept (<= 0: ``labels`` returned as given).

    Returns:
        A copy with the small components set to 0 (``labels`` itself when off or without foreground).
    """
    if min_voxels <= 0:
        return labels
    from scipy import ndimage

    comp, n = ndimage.label(labels > 0, structure=_FULL)
    if n == 0:
        return labels
    sizes = np.bincount(comp.ravel())
    small = sizes < min_voxels
    small[0] = False
    out = labels.copy()
    out[small[comp]] = 0
    return out


def _check_enhancing_scheme(scheme: LabelScheme) -> None:
    if tuple(scheme.regions.get("ET", ())) != (4,) or 1 not in scheme.values:
        raise InputError("--min-enhancing needs a BraTS model (labels 1 necrosis, 2 edema, 4 enhancing)")


def relabel_small_enhancing(labels: np.ndarray, scheme: LabelScheme, min_voxels: int) -> np.ndarray:
    """BraTS: if fewer than ``min_voxels`` voxels are enhancing tumour (4), call them necrosis (1) instead.

    A case without enhancing tumour (many low-grade gliomas) scores ET Dice 0 for any enhancing voxel
    predicted and 1 for none; a few hundred voxels of enhancement are more often noise than a real
    enhancing rim. The tumour core (1 + 4) and whole tumour are unchanged.

    Args:
        labels: the BraTS label map (file values).
        scheme: the label scheme; it must have the region ET = (4,) and the value 1 (necrosis).
        min_voxels: the threshold (<= 0: off).

    Raises:
        InputError: a scheme without those values (with ``min_voxels`` > 0).
    """
    if min_voxels <= 0:
        return labels
    _check_enhancing_scheme(scheme)
    enhancing = labels == 4
    if 0 < int(enhancing.sum()) < min_voxels:
        labels = labels.copy()
        labels[enhancing] = 1
    return labels


def remove_far_components(labels: np.ndarray, spacing, max_distance_mm: float) -> np.ndarray:
    """Set tumour components (26-connectivity) farther than ``max_distance_mm`` from the largest one to
    background; the distance is from a component's nearest voxel to the largest component.

    Args:
        labels: the label map (non-zero is tumour).
        spacing: the grid's voxel size in mm, (X, Y, Z).
        max_distance_mm: the largest distance kept, mm (<= 0: off, ``labels`` returned as given, as for fewer
            than two components).
    """
    if max_distance_mm <= 0:
        return labels
    from scipy import ndimage

    tumour = labels > 0
    if not tumour.any():
        return labels
    # every component lies in the tumour's box, the largest one too: the distances to it are the same there
    # (a nearest voxel of the largest component is never outside the box), on a grid a fraction of the size
    box = ndimage.find_objects(tumour.astype(np.uint8))[0]
    comp, n = ndimage.label(tumour[box], structure=_FULL)
    if n < 2:
        return labels
    sizes = np.bincount(comp.ravel())
    sizes[0] = 0
    main = comp == int(sizes.argmax())
    distance = ndimage.distance_transform_edt(~main, sampling=[float(s) for s in spacing])
    nearest = ndimage.minimum(distance, comp, index=np.arange(1, n + 1))
    far = np.zeros(n + 1, dtype=bool)
    far[1:] = np.asarray(nearest) > max_distance_mm
    if not far.any():
        return labels
    out = labels.copy()
    out[box][far[comp]] = 0
    return out


def check_options(
    scheme: LabelScheme, min_component: int, min_enhancing: int, max_distance_mm: float = 0.0
) -> None:
    """Refuse impossible post-processing settings in one line, before minutes of inference.

    Args:
        scheme: the model's label scheme (``min_enhancing`` needs BraTS values).
        min_component, min_enhancing: voxel counts, >= 0.
        max_distance_mm: a distance in mm, >= 0 (NaN refused).

    Raises:
        InputError: as said.
    """
    for name, value in (("--min-component", min_component), ("--min-enhancing", min_enhancing)):
        if value < 0:
            raise InputError(f"{name} must be a number of voxels >= 0, got {value}")
    if not max_distance_mm >= 0:  # NaN too
        raise InputError(f"--max-distance must be a distance in mm >= 0 (0: off), got {max_distance_mm}")
    if min_enhancing > 0:
        _check_enhancing_scheme(scheme)


def postprocess(
    labels: np.ndarray,
    scheme: LabelScheme,
    *,
    spacing=None,
    min_component: int = 0,
    min_enhancing: int = 0,
    max_distance_mm: float = 0.0,
) -> np.ndarray:
    """Small components, then far components (needs ``spacing``), then small enhancing regions.

    Args:
        labels: the label map (file values).
        scheme: the label scheme.
        spacing: the grid's voxel size in mm (needed with ``max_distance_mm``).
        min_component: :func:`remove_small_components`' threshold in voxels (0: off).
        min_enhancing: :func:`relabel_small_enhancing`'s threshold in voxels (0: off).
        max_distance_mm: :func:`remove_far_components`' distance in mm (0: off).

    Raises:
        InputError: ``max_distance_mm`` without ``spacing``, or ``min_enhancing`` with a non-BraTS scheme.
    """
    return postprocess_counted(
        labels,
        scheme,
        spacing=spacing,
        min_component=min_component,
        min_enhancing=min_enhancing,
        max_distance_mm=max_distance_mm,
    )[0]


def postprocess_counted(
    labels: np.ndarray,
    scheme: LabelScheme,
    *,
    spacing=None,
    min_component: int = 0,
    min_enhancing: int = 0,
    max_distance_mm: float = 0.0,
) -> tuple[np.ndarray, int]:
    """:func:`postprocess`, and how many tumour voxels the far-component removal set to background (what
    ``predict`` reports: a second lesion of a multifocal tumour would go too).

    Args:
        labels, scheme, spacing, min_component, min_enhancing, max_distance_mm: as :func:`postprocess`.

    Returns:
        (label map, tumour voxels removed as far components).

    Raises:
        InputError: ``max_distance_mm`` without ``spacing``, or ``min_enhancing`` with a non-BraTS scheme.
    """
    labels = remove_small_components(labels, min_component)
    far_removed = 0
    if max_distance_mm > 0:
        if spacing is None:
            raise InputError("--max-distance needs the grid's voxel spacing")
        before = labels
        labels = remove_far_components(labels, spacing, max_distance_mm)
        if labels is not before:
            far_removed = int(np.count_nonzero(before > 0) - np.count_nonzero(labels > 0))
    return relabel_small_enhancing(labels, scheme, min_enhancing), far_removed
