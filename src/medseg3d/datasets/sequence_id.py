"""Which MR sequence a channel holds, from its intensities: FLAIR, T1, T1ce or T2, with a confidence.

Names decide a channel's identity where they say it; this module is the second opinion from the image
itself, used where names say nothing (``c0..c3``, nnU-Net ``_000N`` without ``dataset.json``) and to refuse
a case whose names and content confidently disagree.

Each channel is described by scale-free statistics of its intensities inside the head's core (voxels about
1.5 mm apart, the foreground eroded by :data:`CORE_MM`, so the scalp and skull of a raw scan and the cortex's
partial volume of a skull-stripped one weigh little): quantiles relative to the median and interquartile range
(how dark CSF is against white matter, how heavy the bright tail of enhancement or oedema is) and a skewness.
Channels on one grid add a pairwise statistic: how often one channel is far brighter than the other where the
two are compared voxel by voxel, which is what tells T1ce (enhancing rim, vessels, choroid plexus) from T1.

A linear discriminant (one Gaussian per sequence, shared covariance) fitted on the shared cases and their
raw-simulated versions (``validation/sequence_id.py``, parameters in ``weights/sequence_id.json``) scores
every assignment of the four sequences to the channels; the confidence is the best assignment's share of
the probability over all 24. docs/reliability.md has the leave-one-case-out accuracy.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

SEQUENCES = ("flair", "t1", "t1ce", "t2")
CORE_MM = 8.0  # erosion of the foreground: removes the scalp and the skull of a raw scan (3-7 mm thick)
QUANTILES = (1, 5, 10, 25, 75, 90, 95, 99, 99.5, 99.9)
PAIR_Z = 2.0  # a voxel is "far brighter" in a than in b when its robust z-scores differ by more than this
CONFIDENT = 0.99  # an assignment with at least this share is used or trusted; below it, a person decides
_MAX_SAMPLES = 400_000  # voxels per channel the statistics are measured on (every k-th voxel of the core)


@dataclass(frozen=True)
class Identification:
    """The sequences the channels hold by their intensities.

    Attributes:
        order: the sequence of each channel, in the channels' order (e.g. ``("t1", "t1ce", "t2", "flair")``).
        confidence: the best assignment's share of the probability over every assignment (0..1).
        runner_up: the next most probable assignment and its share.
    """

    order: tuple[str, ...]
    confidence: float
    runner_up: tuple[tuple[str, ...], float]

    @property
    def confident(self) -> bool:
        """Whether the best assignment's probability reaches :data:`CONFIDENT`."""
        return self.confidence >= CONFIDENT

    def describe(self) -> str:
        """``"read as t1, t1ce, t2, flair at confidence 0.998, next t1ce, t1, t2, flair at 0.002"``."""
        other, share = self.runner_up
        return (
            f"read as {', '.join(self.order)} at confidence {self.confidence:.3f}, next {', '.join(other)} "
            f"at {share:.3f}"
        )


def _grid_step(spacing) -> tuple[int, int, int]:
    """Every how many voxels along each axis the statistics look: about 1.5 mm apart (2 on a 1 mm grid)."""
    return tuple(int(k) for k in np.maximum(1, np.round(1.5 / np.asarray(spacing, dtype=np.float64))))


def head_core(array: np.ndarray, spacing) -> np.ndarray:
    """The head's core on the grid of ``array`` taken every :func:`_grid_step` voxels: voxels above 5% of the
    robust maximum, holes filled, eroded by :data:`CORE_MM` mm (the whole foreground of a small crop).

    Args:
        array: one channel, (X, Y, Z).
        spacing: its voxel size in mm.

    Returns:
        A boolean mask on the sub-sampled grid (all False without positive values).
    """
    from scipy import ndimage

    step = _grid_step(spacing)
    small = np.asarray(array[:: step[0], :: step[1], :: step[2]], dtype=np.float32)
    finite = np.isfinite(small)
    positive = small[finite & (small > 0)]
    if positive.size == 0:
        return np.zeros(small.shape, bool)
    fg = finite & (small > 0.05 * np.percentile(positive, 99.5))
    fg = ndimage.binary_fill_holes(fg)
    # the erosion on a grid twice as coarse (about 3 mm, an eighth of the voxels), taken back by repetition
    coarse = fg[::2, ::2, ::2]
    inside = ndimage.distance_transform_edt(coarse, sampling=np.asarray(spacing, dtype=np.float64) * step * 2)
    up = (inside > CORE_MM).repeat(2, 0).repeat(2, 1).repeat(2, 2)
    core = fg & up[: fg.shape[0], : fg.shape[1], : fg.shape[2]]
    return core if core.sum() >= 1000 else fg


def _robust(values: np.ndarray) -> tuple[float, float]:
    q25, q50, q75 = np.percentile(values, [25, 50, 75])
    return float(q50), float(max(q75 - q25, 1e-6 * max(abs(q50), 1.0)))


def channel_features(values: np.ndarray) -> np.ndarray:
    """Scale-free statistics of one channel's intensities inside the head's core (1D array)."""
    values = np.asarray(values, dtype=np.float64)
    median, iqr = _robust(values)
    q = np.percentile(values, QUANTILES)
    rel = (q - median) / iqr
    q10, q90 = np.percentile(values, [10, 90])
    bowley = (q90 + q10 - 2 * median) / max(q90 - q10, 1e-9)
    return np.concatenate([np.sign(rel) * np.log1p(np.abs(rel)), [bowley]])


def pair_brighter(a: np.ndarray, b: np.ndarray) -> float:
    """log of how much more often ``a`` is far brighter than ``b`` than the other way round (voxel by voxel
    over the same voxels, each robustly z-scored): positive for T1ce against T1.

    Args:
        a, b: the two channels' intensities at the same voxels, (N,).
    """
    ma, sa = _robust(a)
    mb, sb = _robust(b)
    d = (a - ma) / sa - (b - mb) / sb
    n = d.size
    return float(
        np.log((np.count_nonzero(d > PAIR_Z) + 0.001 * n) / (np.count_nonzero(d < -PAIR_Z) + 0.001 * n))
    )


def sample_channels(arrays: list[np.ndarray], spacings: list) -> tuple[list[np.ndarray], np.ndarray | None]:
    """Each channel's intensities in its head's core (:func:`head_core`), and the voxels of their common core.

    Args:
        arrays: the channels, each (X, Y, Z).
        spacings: each channel's voxel size in mm.

    Returns:
        (one 1-D sample per channel, the common core's values ``(C, N)`` for the pairwise statistic, or None
        where the grids differ or the common core is under 1,000 voxels).
    """
    steps = [_grid_step(s) for s in spacings]
    small = [np.asarray(a[:: k[0], :: k[1], :: k[2]]) for a, k in zip(arrays, steps)]
    cores = [head_core(a, s) for a, s in zip(arrays, spacings)]
    samples = []
    for a, c in zip(small, cores):
        v = a[c]
        samples.append(v[:: max(1, v.size // _MAX_SAMPLES)].astype(np.float64))
    joint = None
    if len({a.shape for a in small}) == 1 and len(set(steps)) == 1:
        common = np.logical_and.reduce(cores)
        if common.sum() >= 1000:
            idx = np.flatnonzero(common)
            idx = idx[:: max(1, idx.size // _MAX_SAMPLES)]
            joint = np.stack([a.reshape(-1)[idx] for a in small]).astype(np.float64)
    return samples, joint


@lru_cache(maxsize=1)
def load_parameters() -> dict:
    """The fitted model shipped in ``weights/sequence_id.json``."""
    text = resources.files("medseg3d").joinpath("weights/sequence_id.json").read_text()
    raw = json.loads(text)
    return {k: np.asarray(v) if isinstance(v, list) else v for k, v in raw.items()}


def class_log_likelihoods(features: np.ndarray, params: dict) -> np.ndarray:
    """``(C, 4)`` log densities of each channel's features under each sequence's Gaussian (shared covariance).

    Args:
        features: ``(C, F)`` features per channel (:func:`channel_features`).
        params: the fitted parameters (centre, scale, means, precision).
    """
    z = (features - params["centre"]) / params["scale"]
    diff = z[:, None, :] - params["means"][None]
    prec = params["precision"]
    return -0.5 * np.einsum("cki,ij,ckj->ck", diff, prec, diff)


def pair_log_odds(value: float, params: dict) -> float:
    """log p(this pair is (T1ce, T1) | statistic) - log p((T1, T1ce)): a logistic fit on the statistic.

    Args:
        value: :func:`pair_brighter` of the pair.
        params: the fitted parameters (``pair_logistic``: weight and bias).
    """
    w, b = params["pair_logistic"]
    return float(w * value + b)


def identify(
    samples: list[np.ndarray], joint: np.ndarray | None = None, params: dict | None = None
) -> Identification:
    """The most probable assignment of FLAIR, T1, T1ce, T2 to four channels.

    Args:
        samples: each channel's intensities inside the head's core (:func:`sample_channels`).
        joint: ``(4, N)`` the channels' intensities at the same voxels, or ``None`` (channels on other grids).
        params: the fitted model (default: the shipped one).

    Returns:
        The :class:`Identification`.

    Raises:
        ValueError: not four channels, or a channel without enough foreground to measure.
    """
    if len(samples) != 4:
        raise ValueError(f"sequence identification needs the 4 channels, got {len(samples)}")
    if any(s.size < 1000 or not np.all(np.isfinite(s)) for s in samples):
        raise ValueError("a channel has too little finite foreground to tell its sequence")
    feats = np.stack([channel_features(s) for s in samples])
    pair = None
    if joint is not None:
        pair = np.array(
            [[pair_brighter(joint[i], joint[j]) if i != j else 0.0 for j in range(4)] for i in range(4)]
        )
    return identify_features(feats, pair, params)


def identify_features(
    feats: np.ndarray, pair: np.ndarray | None, params: dict | None = None
) -> Identification:
    """:func:`identify` from the channels' statistics.

    Args:
        feats: ``(4, F)`` features per channel (:func:`channel_features`).
        pair: ``(4, 4)`` :func:`pair_brighter` of channel i against j, or None (channels on different grids).
        params: the fitted parameters (None: the bundled ones).

    Returns:
        The Identification: the most probable assignment of the 24, its probability and the runner-up.
    """
    params = params or load_parameters()
    ll = class_log_likelihoods(feats, params)
    ce_k, t1_k = SEQUENCES.index("t1ce"), SEQUENCES.index("t1")
    perms = list(itertools.permutations(range(4)))  # perm[i]: the sequence index of channel i
    values = np.array(
        [
            sum(ll[i, p[i]] for i in range(4))
            + (pair_log_odds(pair[p.index(ce_k), p.index(t1_k)], params) if pair is not None else 0.0)
            for p in perms
        ]
    ) / float(params.get("temperature", 1.0))
    prob = np.exp(values - values.max())
    prob /= prob.sum()
    order = np.argsort(-prob)
    name = lambda p: tuple(SEQUENCES[k] for k in p)
    return Identification(
        name(perms[order[0]]), float(prob[order[0]]), (name(perms[order[1]]), float(prob[order[1]]))
    )
