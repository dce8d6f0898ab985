"""A two-stage cascade: a coarse model finds the tumour, a refiner segments a box around it at its own
resolution.

The bundled BraTS model works on 2 mm voxels; even a perfect 2 mm segmentation, up-sampled, loses Dice at the
boundary (most on small enhancing regions, docs/results.md). A *refiner* is a network of the same label scheme
and modalities trained at a finer resolution (preset ``brats-refine``: 1 mm, patches centred on tumour). The
cascade runs the coarse model on the whole case, takes the box around everything it calls tumour plus a
margin, runs the refiner there and replaces the coarse probabilities inside the box by the refiner's. Outside
the box the coarse probabilities stay; where the coarse model found nothing the refiner is not run.

A coarse model names its refiner in its metadata (``inference.refiner``: a bundled model's name), so that
``medseg3d predict brats`` runs the cascade by default; ``--refine MODEL`` attaches any refiner and
``--refine none`` turns it off (:func:`medseg3d.models.load_model`).
"""

from __future__ import annotations

import math

import numpy as np

from .errors import ModelError
from .inference import model_input, predict_probabilities
from .preprocess import crop_or_pad, paste, resize_image, undo_probabilities

__all__ = ["DEFAULT_MARGIN_MM", "check_refiner", "refine", "refine_box", "tumour_mask"]

#: Margin added on every side of the coarse tumour's box, in mm: the coarse 2 mm boundary is off by a voxel or
#: two, and the refiner needs some context on every side of what it labels.
DEFAULT_MARGIN_MM = 12.0


def check_refiner(coarse, refiner) -> None:
    """Raise :class:`ModelError` unless ``refiner`` can refine ``coarse`` (same outputs, labels and
    channels, and not the model itself).

    Args:
        coarse: the model whose output is refined.
        refiner: the refining model.
    """
    problems = []
    if refiner.kind != coarse.kind:
        problems.append(f"it gives {refiner.kind} outputs, the model {coarse.kind}")
    if tuple(refiner.modalities) != tuple(coarse.modalities):
        problems.append(f"it reads {', '.join(refiner.modalities)}, the model {', '.join(coarse.modalities)}")
    if refiner.meta.labels != coarse.meta.labels:
        problems.append("its label scheme differs")
    if refiner.meta.n_outputs != coarse.meta.n_outputs:
        problems.append(f"it has {refiner.meta.n_outputs} outputs, the model {coarse.meta.n_outputs}")
    if refiner.source is not None and coarse.source is not None and refiner.source == coarse.source:
        problems.append("it is the model itself")
    elif not _finer(refiner.prep, coarse.prep):
        problems.append(
            f"it works on voxels {_voxels(refiner.prep)}, not finer than the model's "
            f"({_voxels(coarse.prep)}); a refiner is trained at a finer resolution (preset brats-refine)"
        )
    if problems:
        raise ModelError(f"{refiner.name} cannot refine {coarse.name}: {'; '.join(problems)}")


def _finer(fine, coarse) -> bool:
    """Whether preprocessing ``fine`` gives smaller voxels than ``coarse``: both by a downsampling factor, or
    both to a spacing in mm (any axis finer, none coarser); True when the two cannot be compared."""
    if (fine.spacing is None) != (coarse.spacing is None):
        return True  # a factor against a spacing: depends on the case; the box's resampling handles either
    if fine.spacing is None:
        return float(fine.downsample) < float(coarse.downsample)
    pairs = list(zip(fine.spacing, coarse.spacing))
    return all(f <= c for f, c in pairs) and any(f < c for f, c in pairs)


def _voxels(prep) -> str:
    if prep.spacing is not None:
        return "x".join(f"{v:g}" for v in prep.spacing) + " mm"
    return f"{float(prep.downsample):g}x the input's"


def tumour_mask(probs: np.ndarray, kind: str) -> np.ndarray:
    """Voxels the model calls tumour (any foreground): a region above 0.5, or a most probable class other than
    background.

    Args:
        probs: (K, X, Y, Z) probabilities.
        kind: "region" or "multiclass".
    """
    if kind == "region":
        return (probs > 0.5).any(axis=0)
    return probs.argmax(axis=0) != 0


def refine_box(mask: np.ndarray, margin: tuple[int, ...], min_size: tuple[int, ...] | None = None):
    """``(start, stop)`` of the box around ``mask``'s voxels widened by ``margin`` voxels per side and to at
    least ``min_size``, clipped to the array; None for an empty mask.

    Args:
        mask: a boolean array.
        margin: voxels added on each side, per axis.
        min_size: the smallest box size per axis (None: none); grown about the centre, then shifted inside.
    """
    where = np.nonzero(mask)
    if not where[0].size:
        return None
    shape = mask.shape
    start, stop = [], []
    for axis, (idx, n) in enumerate(zip(where, shape)):
        lo, hi = int(idx.min()) - margin[axis], int(idx.max()) + 1 + margin[axis]
        want = min(int(min_size[axis]) if min_size else 0, n)
        if hi - lo < want:  # grow about the centre, then shift inside the array
            extra = want - (hi - lo)
            lo, hi = lo - extra // 2, hi + extra - extra // 2
        shift = max(0, -lo) - max(0, hi - n)
        lo, hi = max(0, lo + shift), min(n, hi + shift)
        start.append(lo)
        stop.append(hi)
    return tuple(start), tuple(stop)


def refine(
    refiner,
    image: np.ndarray,
    affine: np.ndarray,
    coarse: np.ndarray,
    *,
    mirror: bool = False,
    margin_mm: float = DEFAULT_MARGIN_MM,
    sliding_window: bool | None = None,
) -> tuple[np.ndarray, dict]:
    """The coarse probabilities (K, X, Y, Z) on the grid of raw channels ``image`` (C, X, Y, Z) with the box
    around the coarse tumour replaced by ``refiner``'s probabilities.

    The refiner sees the channels preprocessed as it was trained (crop to the brain, z-score over it, its own
    resolution), cut to the box.

    Args:
        refiner: the refining model.
        image: the raw channels in the refiner's order, (C, X, Y, Z).
        affine: their 4x4 voxel-to-RAS map.
        coarse: the coarse model's probabilities on that grid, (K, X, Y, Z).
        mirror: average over mirrored passes.
        margin_mm: the box's margin around the coarse tumour, mm.
        sliding_window: run in windows of the refiner's patch (None: as its metadata says), else in one pass
            over the box.

    Returns:
        ``(probabilities, info)``; ``info`` names the refiner and has the box on its grid and the box's size
        in voxels (``box`` None when the coarse model found no tumour; the coarse probabilities then).
    """
    x, record, settings = model_input(refiner, image, affine, sliding_window=sliding_window)
    coarse_mask = tumour_mask(_to_preprocessed(coarse, record), refiner.kind)
    spacing = np.linalg.norm(np.asarray(record.affine)[:3, :3], axis=0)
    margin = tuple(math.ceil(margin_mm / s) for s in spacing)
    box = refine_box(coarse_mask, margin, refiner.meta.patch)
    if box is None:
        return coarse, {"refiner": refiner.name, "box": None}
    start, stop = box
    window = tuple(slice(a, b) for a, b in zip(start, stop))
    probs = predict_probabilities(
        refiner.model, np.ascontiguousarray(x[(slice(None), *window)]), mirror=mirror, **settings
    ).numpy()
    # back onto the input grid: the refiner's box pasted into its preprocessed grid, then that grid undone
    fine = paste(probs, start, stop, record.shape)
    inside = paste(np.ones((1, *probs.shape[1:]), np.float32), start, stop, record.shape)
    fine = undo_probabilities(fine, record, fill_background=False)
    inside = undo_probabilities(inside, record, fill_background=False)[0] > 0.5
    out = np.where(inside[None], fine, coarse).astype(np.float32)
    return out, {
        "refiner": refiner.name,
        "box": [list(start), list(stop)],
        "voxels": int(np.prod([b - a for a, b in zip(start, stop)])),
    }


def _to_preprocessed(probs: np.ndarray, record) -> np.ndarray:
    """Probabilities on the input grid -> the refiner's preprocessed grid (crop, linear resampling): the
    forward of :func:`~medseg3d.preprocess.undo_probabilities`."""
    cropped = crop_or_pad(probs, record.box_start, record.box_stop)
    return resize_image(cropped, record.shape)
