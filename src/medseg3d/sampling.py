"""Drawing training samples from prepared cases: whole crops or patches with foreground over-sampling.

With ``patch=None`` a sample is the whole prepared crop, padded to the network's size multiple. With a patch
size, a fraction ``foreground_p`` of patches is centred on a voxel of a foreground class chosen uniformly
among the classes present in the case (so rare classes such as enhancing tumour are seen as often as
edema); the others are placed uniformly at random. Patches that leave the volume are zero-padded.

Drawing a box (:meth:`PatchSampler.box_for`, cheap, consumes the random stream) is separate from cutting it
out (:meth:`PatchSampler.crop`), so that distributed training can draw a whole global batch on every process
from one shared stream and cut out only its own share.
"""

from __future__ import annotations

import zlib

import numpy as np

from .cache import PreparedCase
from .errors import InputError
from .preprocess import crop_or_pad


class PatchSampler:
    """Samples (image (C, *patch) float32, classes (*patch) int64) from prepared cases.

    The cases are given per draw (:meth:`box_for`, :meth:`sample`), so one sampler serves any set of cases.

    Args:
        patch: patch size (x, y, z) or ``None`` for whole crops.
        foreground_p: probability that a patch is centred on a foreground voxel.
        size_multiple: whole crops are padded up to a multiple of this.
        max_points: foreground voxel positions kept per class and case (memory bound).
    """

    def __init__(
        self, patch=None, foreground_p: float = 0.5, size_multiple: int = 8, max_points: int = 20_000
    ):
        if patch and not all(isinstance(p, (int, np.integer)) and p > 0 for p in patch):
            # loud, not silent, for a caller still passing the cases first (they were never used here)
            raise InputError(f"patch must be positive voxel counts (x, y, z) or None, got {patch!r}")
        self.patch = tuple(int(p) for p in patch) if patch else None
        self.foreground_p = foreground_p
        self.size_multiple = size_multiple
        self.max_points = max_points
        self._points: dict[str, dict[int, np.ndarray]] = {}

    def _foreground_points(self, case: PreparedCase) -> dict[int, np.ndarray]:
        if case.case_id not in self._points:
            label = np.asarray(case.label)
            # the subsample comes from the case's own seed, not the training stream: a resumed run (whose
            # cache of points starts empty) then draws exactly what an uninterrupted run draws
            sub_rng = np.random.default_rng(zlib.crc32(case.case_id.encode()))
            points = {}
            for k in np.unique(label):
                if k == 0:
                    continue
                idx = np.argwhere(label == k)
                if len(idx) > self.max_points:
                    idx = idx[sub_rng.choice(len(idx), self.max_points, replace=False)]
                points[int(k)] = idx.astype(np.int32)
            self._points[case.case_id] = points
        return self._points[case.case_id]

    def box_for(
        self, case: PreparedCase, rng: np.random.Generator
    ) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Where the next sample is cut: ``(start, stop)`` per spatial axis, possibly reaching outside the
        case.

        Without a patch size: the whole case, padded about its centre to a multiple of ``size_multiple``. With
        one: with probability ``foreground_p`` a patch around a random foreground voxel of a random class
        (jittered by a quarter patch), else anywhere; shifted to lie inside the case, or centred on an axis
        where the case is smaller than the patch.

        Args:
            case: the prepared case (image (C, X, Y, Z), label class indices).
            rng: the sampling stream; it advances.
        """
        shape = case.image.shape[1:]
        if self.patch is None:
            target = tuple(int(np.ceil(s / self.size_multiple) * self.size_multiple) for s in shape)
            start = tuple(-((t - s) // 2) for s, t in zip(shape, target))
            return start, tuple(a + t for a, t in zip(start, target))
        points = self._foreground_points(case) if case.label is not None else {}
        if points and rng.random() < self.foreground_p:
            k = list(points)[rng.integers(len(points))]
            centre = points[k][rng.integers(len(points[k]))]
            # jitter so that the foreground voxel is not always in the patch's centre
            centre = centre + rng.integers(-np.array(self.patch) // 4, np.array(self.patch) // 4 + 1)
        else:
            centre = np.array([rng.integers(0, s) for s in shape])
        start = []
        for c, p, s in zip(centre, self.patch, shape):
            a = int(c) - p // 2
            a = min(max(a, 0), max(s - p, 0)) if s >= p else -((p - s) // 2)
            start.append(a)
        return tuple(start), tuple(a + p for a, p in zip(start, self.patch))

    def crop(
        self, case: PreparedCase, box: tuple[tuple[int, ...], tuple[int, ...]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Cut the box ``(start, stop)`` (from :meth:`box_for`) out of a case, zero-padding outside it.

        Args:
            case: the prepared case.
            box: (start, stop) per spatial axis.

        Returns:
            (image (C, *box size) float32, class indices (*box size) int64).
        """
        start, stop = box
        image = crop_or_pad(case.image, start, stop).astype(np.float32)
        label = crop_or_pad(case.label, start, stop).astype(np.int64)
        return image, label

    def sample(self, case: PreparedCase, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`crop` of :meth:`box_for`: one (image, classes) sample of ``case`` drawn with ``rng``."""
        return self.crop(case, self.box_for(case, rng))
