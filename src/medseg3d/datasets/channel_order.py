"""Channels whose intensities fit another order of the BraTS modalities: the channel order check."""

from __future__ import annotations

import numpy as np

from .names import BRATS_MODALITIES, FLAGS

_PAIR_CORRELATION = {
    ("flair", "t1"): (0.302, 0.233), ("flair", "t1ce"): (0.200, 0.194), ("flair", "t2"): (0.166, 0.241),
    ("t1", "t1ce"): (0.580, 0.143), ("t1", "t2"): (-0.362, 0.326), ("t1ce", "t2"): (-0.283, 0.261),
}
# How much better another order must fit than the given one to be reported. On the shared cases (each scored
# against the other 26) and the shared case from another pipeline (brainles_sri24), the correct order's excess
# was at most 0.56; nnU-Net's order (T1, T1ce, T2, FLAIR) read as FLAIR, T1, T1ce, T2 scored at least 10.8.
# A T1 / T1ce swap is not seen by this check (their correlations with the others are alike).
CHANNEL_ORDER_THRESHOLD = 3.0


def _order_misfit(corr: np.ndarray, assigned) -> float:
    total = 0.0
    for i in range(len(assigned)):
        for j in range(i + 1, len(assigned)):
            pair = tuple(sorted((assigned[i], assigned[j]), key=BRATS_MODALITIES.index))
            mean, sd = _PAIR_CORRELATION[pair]
            total += ((corr[i, j] - mean) / (sd + 0.05)) ** 2
    return total


def channel_order_warning(image: np.ndarray, modalities) -> str | None:
    """One line when the channels' intensities fit another order of the BraTS modalities clearly better.

    ``image`` is ``(C, X, Y, Z)`` with channels in ``modalities`` order, skull-stripped, on one grid (as
    :meth:`Case.load` returns it). The check compares the correlations between channels inside the brain
    with those of the shared BraTS cases; it needs three or more BraTS modalities and a brain-sized volume,
    and cannot tell T1 from T1ce. Returns ``None`` when the given order fits (or nothing can be said).

    Example:
        >>> image, _, _ = case.load(with_label=False)
        >>> channel_order_warning(image[[1, 2, 3, 0]], case.modalities)  # nnU-Net's order read as BraTS's
        "the channels given as flair, t1, t1ce, t2 look like t1, t1ce, t2, flair by their intensities ..."
    """
    if image.ndim != 4:
        return None
    return order_warning([image[i, ::2, ::2, ::2] for i in range(image.shape[0])], tuple(modalities))


# fewer voxels (every 2nd along each axis) inside the brain than this, e.g. a small crop: no order check
_ORDER_CHECK_MIN_VOXELS = 10_000


def order_warning(subsampled: list[np.ndarray], modalities: tuple[str, ...]) -> str | None:
    import itertools

    idx = [i for i, m in enumerate(modalities) if m in BRATS_MODALITIES]
    if len(idx) < 3:
        return None
    sub = [np.asarray(subsampled[i], dtype=np.float32) for i in idx]
    brain = np.logical_and.reduce([s != 0 for s in sub])
    if brain.sum() < _ORDER_CHECK_MIN_VOXELS:
        return None
    values = np.stack([s[brain] for s in sub]).astype(np.float64)
    if not np.all(np.isfinite(values)) or np.any(values.std(axis=1) == 0):
        return None
    corr = np.corrcoef(values)
    given = [modalities[i] for i in idx]
    misfit = _order_misfit(corr, given)
    best = min(itertools.permutations(given), key=lambda order: _order_misfit(corr, order))
    best_misfit = _order_misfit(corr, best)
    if misfit - best_misfit <= CHANNEL_ORDER_THRESHOLD:
        return None
    return (f"the channels given as {', '.join(given)} look like {', '.join(best)} by their intensities "
            f"(misfit {misfit:.1f}, against {best_misfit:.1f} in that order); check which file is which, or "
            f"name them with {FLAGS}")
