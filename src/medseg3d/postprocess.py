"""Post-processing of a label map, each step off by default and chosen by cross-validation (docs/results.md).

* :func:`remove_small_components`: tumour components under N voxels become background (``--min-component``);
* :func:`remove_far_components`: tumour components whose nearest voxel lies more than D mm from the largest
  component become background (``--max-distance``): a false-positive blob far from the tumour, as a case from
  another preprocessing pipeline showed (issue #22), without touching a lesion next to the main one;
* :func:`relabel_small_enhancing`: BraTS, under N enhancing voxels call them necrosis (``--min-enhancing``, or
  the model card's ``inference.min_enhancing_mm3``): the "no enhancing tumour" rule of issue #40;
* :func:`demote_small_region_components`: BraTS, components of one region (WT, TC or ET) under N voxels become
  the next outer region (ET -> necrosis, TC -> edema, WT -> background): lesion-level clean-up (issue #40).
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


def _check_enhancing_scheme(scheme: LabelScheme, what: str = "--min-enhancing") -> None:
    if tuple(scheme.regions.get("ET", ())) != (4,) or 1 not in scheme.values or 2 not in scheme.values:
        raise InputError(f"{what} needs a BraTS model (labels 1 necrosis, 2 edema, 4 enhancing)")


ENHANCING_MEASURES = ("total", "largest")
"""What :func:`relabel_small_enhancing` compares with its threshold: all enhancing voxels, or the largest
enhancing component's."""


def relabel_small_enhancing(
    labels: np.ndarray, scheme: LabelScheme, min_voxels: int, by: str = "total"
) -> np.ndarray:
    """BraTS: if fewer than ``min_voxels`` voxels are enhancing tumour (4), call them necrosis (1) instead.

    A case without enhancing tumour (many low-grade gliomas) scores ET Dice 0 for any enhancing voxel
    predicted and 1 for none; a few hundred voxels of enhancement are more often noise than a real
    enhancing rim. The tumour core (1 + 4) and whole tumour are unchanged.

    Args:
        labels: a BraTS label map (0, 1, 2, 4).
        scheme: the model's label scheme (must have BraTS' necrosis 1 and enhancing 4).
        min_voxels: the threshold; 0 or less: off.
        by: ``total``: all enhancing voxels of the case count; ``largest``: only its largest enhancing
            component (26-connectivity), so scattered specks do not add up to a rim.

    Returns:
        ``labels`` itself when nothing changes, else a relabelled copy.

    Raises:
        InputError: a scheme without BraTS' enhancing tumour, or an unknown ``by``.
    """
    if by not in ENHANCING_MEASURES:
        raise InputError(f"the enhancing-tumour rule measures {' or '.join(ENHANCING_MEASURES)}, got {by!r}")
    if min_voxels <= 0:
        return labels
    _check_enhancing_scheme(scheme)
    enhancing = labels == 4
    amount = int(enhancing.sum())
    if by == "largest" and amount:
        from scipy import ndimage

        comp, _ = ndimage.label(enhancing, structure=_FULL)
        amount = int(np.bincount(comp.ravel())[1:].max())
    if 0 < amount < min_voxels:
        labels = labels.copy()
        labels[enhancing] = 1
    return labels


def voxels_for_volume(mm3: float, spacing) -> int:
    """The voxel count that a volume of ``mm3`` makes on a grid of ``spacing`` (mm), rounded up: a threshold
    in mm^3 (a model card's, chosen on 1 mm BraTS grids) applied on any native grid.

    Args:
        mm3: the volume (<= 0: 0 voxels).
        spacing: the grid's voxel size in mm.

    Returns:
        the number of voxels.
    """
    if mm3 <= 0:
        return 0
    return int(np.ceil(mm3 / float(np.prod([float(s) for s in spacing])) - 1e-9))


# where the voxels of a too-small component of each BraTS region go: the next outer region
_OUTER_VALUE = {"ET": 1, "TC": 2, "WT": 0}


def demote_small_region_components(labels: np.ndarray, scheme: LabelScheme, min_voxels: dict) -> np.ndarray:
    """BraTS: connected components (26-connectivity) of a region smaller than its threshold become the next
    outer region: enhancing tumour -> necrosis (TC kept), tumour core -> edema (WT kept), whole tumour ->
    background. Applied from the innermost region out (ET, TC, WT), so a speck of enhancement inside a small
    core goes with it. The whole tumour's largest component always stays: the rule takes false lesions beside
    a tumour, never the only one (a tumour smaller than the WT threshold is kept, not erased).

    Args:
        labels: a BraTS label map (0, 1, 2, 4).
        scheme: the model's label scheme.
        min_voxels: region name (``WT``, ``TC``, ``ET``) -> threshold in voxels (0: off for that region).

    Returns:
        ``labels`` itself when nothing changes, else a relabelled copy.

    Raises:
        InputError: an unknown region, a negative threshold, or a scheme without BraTS' regions.
    """
    unknown = sorted(set(min_voxels) - set(_OUTER_VALUE))
    if unknown:
        raise InputError(f"component thresholds are per region WT, TC or ET, got {', '.join(unknown)}")
    if any(int(v) < 0 for v in min_voxels.values()):
        raise InputError(f"component thresholds must be numbers of voxels >= 0, got {min_voxels}")
    if not any(int(v) > 0 for v in min_voxels.values()):
        return labels
    _check_enhancing_scheme(scheme, "per-region component thresholds")
    from scipy import ndimage

    out = labels
    for region in ("ET", "TC", "WT"):
        threshold = int(min_voxels.get(region, 0))
        if threshold <= 0:
            continue
        comp, n = ndimage.label(np.isin(out, scheme.regions[region]), structure=_FULL)
        if n == 0:
            continue
        sizes = np.bincount(comp.ravel())
        small = sizes < threshold
        small[0] = False
        if region == "WT":
            small[1 + int(np.argmax(sizes[1:]))] = False
        if small.any():
            out = out.copy() if out is labels else out
            out[small[comp]] = _OUTER_VALUE[region]
    return out


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
    scheme: LabelScheme,
    min_component: int,
    min_enhancing: int,
    max_distance_mm: float = 0.0,
    min_enhancing_mm3: float = 0.0,
    min_lesion_mm3: dict | None = None,
) -> None:
    """Refuse impossible post-processing settings in one line, before minutes of inference.

    Args:
        scheme: the model's label scheme (``min_enhancing`` needs BraTS values).
        min_component, min_enhancing: voxel counts, >= 0.
        max_distance_mm: a distance in mm, >= 0 (NaN refused).
        min_enhancing_mm3: the enhancing rule's threshold as a volume (a model card's), >= 0.
        min_lesion_mm3: region -> volume in mm^3 (:func:`check_lesion_thresholds`).

    Raises:
        InputError: as said.
    """
    for name, value in (("--min-component", min_component), ("--min-enhancing", min_enhancing)):
        if value < 0:
            raise InputError(f"{name} must be a number of voxels >= 0, got {value}")
    if not max_distance_mm >= 0:  # NaN too
        raise InputError(f"--max-distance must be a distance in mm >= 0 (0: off), got {max_distance_mm}")
    if not min_enhancing_mm3 >= 0:
        raise InputError(
            f"the enhancing-tumour threshold must be a volume in mm^3 >= 0, got {min_enhancing_mm3}"
        )
    if min_enhancing > 0 or min_enhancing_mm3 > 0:
        _check_enhancing_scheme(scheme)
    if min_lesion_mm3:
        check_lesion_thresholds(min_lesion_mm3)
        _check_enhancing_scheme(scheme, "--min-lesion")


def check_lesion_thresholds(thresholds, what: str = "--min-lesion") -> dict:
    """``{region: mm^3}`` for WT / TC / ET, each a finite number >= 0; refused in one line otherwise.

    Args:
        thresholds: what the user or a model file gave.
        what: the option's name, for the message.

    Returns:
        ``{region: float}``.

    Raises:
        InputError: not a mapping, an unknown region, or a bad number.
    """
    if not isinstance(thresholds, dict):
        raise InputError(f"{what} must map regions WT, TC, ET to volumes in mm^3, got {thresholds!r}")
    unknown = sorted(set(thresholds) - set(_OUTER_VALUE))
    if unknown:
        raise InputError(
            f"{what}: component thresholds are per region WT, TC or ET, got {', '.join(map(str, unknown))}"
        )
    for region, value in thresholds.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
            raise InputError(f"{what}: {region} must be a volume in mm^3 >= 0 (0: off), got {value!r}")
    return {str(k): float(v) for k, v in thresholds.items()}


def postprocess(
    labels: np.ndarray,
    scheme: LabelScheme,
    *,
    spacing=None,
    min_component: int = 0,
    min_enhancing: int = 0,
    max_distance_mm: float = 0.0,
    min_lesion: dict | None = None,
) -> np.ndarray:
    """Small components, then far components (needs ``spacing``), then small components of each region, then
    small enhancing regions.

    Args:
        labels: the label map (file values).
        scheme: the label scheme.
        spacing: the grid's voxel size in mm (needed with ``max_distance_mm``).
        min_component: :func:`remove_small_components`' threshold in voxels (0: off).
        min_enhancing: :func:`relabel_small_enhancing`'s threshold in voxels (0: off).
        max_distance_mm: :func:`remove_far_components`' distance in mm (0: off).
        min_lesion: :func:`demote_small_region_components`' thresholds, region -> voxels (None or empty: off).

    Raises:
        InputError: ``max_distance_mm`` without ``spacing``, or ``min_enhancing`` / ``min_lesion`` with a
            non-BraTS scheme.
    """
    return postprocess_counted(
        labels,
        scheme,
        spacing=spacing,
        min_component=min_component,
        min_enhancing=min_enhancing,
        max_distance_mm=max_distance_mm,
        min_lesion=min_lesion,
    )[0]


def postprocess_counted(
    labels: np.ndarray,
    scheme: LabelScheme,
    *,
    spacing=None,
    min_component: int = 0,
    min_enhancing: int = 0,
    max_distance_mm: float = 0.0,
    min_lesion: dict | None = None,
) -> tuple[np.ndarray, int, int]:
    """:func:`postprocess`, and how many tumour voxels the far-component removal and the lesion-size rule set
    to background (what ``predict`` reports: a second lesion of a multifocal tumour, or a true small one,
    would go too).

    Args:
        labels, scheme, spacing, min_component, min_enhancing, max_distance_mm, min_lesion: as
            :func:`postprocess`.

    Returns:
        (label map, tumour voxels removed as far components, tumour voxels removed as whole-tumour components
        under the lesion-size rule's WT threshold).

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
    small_removed = 0
    if min_lesion:
        before = labels
        labels = demote_small_region_components(labels, scheme, min_lesion)
        if labels is not before:
            small_removed = int(np.count_nonzero(before > 0) - np.count_nonzero(labels > 0))
    return relabel_small_enhancing(labels, scheme, min_enhancing), far_removed, small_removed
