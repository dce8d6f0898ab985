"""Random transforms: each only draws parameters and delegates to a deterministic op through its record.

A transform is called as ``transform(image, label, generator)`` and returns ``(image, label, params)``:
``params`` is the record of what was applied (see :mod:`medseg3d.augment.params`), or ``{}`` when the draw
applied nothing (then the inputs are returned as they are). Draws come from the ``torch.Generator`` given
(``None``: torch's global one), in a fixed order, so one seed gives one result.

Example:
    >>> import torch
    >>> from medseg3d.augment import RandomRotation
    >>> image = torch.randn(1, 8, 8, 8)
    >>> out, _, params = RandomRotation(max_angle=30, p=1.0)(image, None, torch.Generator().manual_seed(0))
    >>> params["op"], len(params["angles_deg"])
    ('rotate_scale', 1)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from medseg3d.errors import InputError

from ._checks import check_axes, spatial_dims
from .params import (
    AugmentParams,
    FlipParams,
    GammaParams,
    IntensityParams,
    NoiseParams,
    RotateScaleParams,
)
from .resample import PLANES, plane_rotation

__all__ = [
    "RandomFlip",
    "RandomGamma",
    "RandomIntensity",
    "RandomNoise",
    "RandomRotateScale",
    "RandomRotation",
    "RandomScale",
    "RandomTransform",
]


def rand(g: torch.Generator | None) -> float:
    return float(torch.rand((), generator=g, dtype=torch.float64))


def uniform(g: torch.Generator | None, lo: float, hi: float) -> float:
    return lo + (hi - lo) * rand(g)


def randint(g: torch.Generator | None, n: int) -> int:
    return int(torch.randint(n, (), generator=g))


def _range(r: Sequence[float], name: str) -> tuple[float, float]:
    lo, hi = (float(v) for v in r)
    if lo > hi:
        raise InputError(f"{name} must be (low, high) with low <= high, got {tuple(r)}")
    return lo, hi


class RandomTransform:
    """Base class: checks the sample, calls :meth:`draw`, applies the drawn record.

    Subclasses implement only :meth:`draw`; they never touch the voxels themselves.
    """

    def draw(self, image: torch.Tensor, generator: torch.Generator | None) -> AugmentParams | None:
        """Parameters for one sample (only ``image``'s shape is read), or None to apply nothing."""
        raise NotImplementedError

    def __call__(self, image, label, generator: torch.Generator | None = None):
        spatial_dims(image, label)
        params = self.draw(image, generator)
        if params is None:
            return image, label, {}
        image, label = params.apply(image, label)
        return image, label, params


class RandomFlip(RandomTransform):
    """Flip along each of ``axes`` (default: all spatial axes) independently with probability ``p``.

    Example:
        >>> img, lab, params = RandomFlip(p=0.5)(torch.randn(1, 8, 8, 8), None, torch.Generator())
    """

    def __init__(self, p: float = 0.5, axes: Sequence[int] | None = None):
        self.p = float(p)
        self.axes = None if axes is None else list(axes)

    def draw(self, image, generator):
        sd = image.ndim - 1
        axes = check_axes(range(sd) if self.axes is None else self.axes, sd)
        chosen = [a for a in axes if rand(generator) < self.p]
        return FlipParams(axes=chosen) if chosen else None


class RandomRotateScale(RandomTransform):
    """Random rotation and scaling applied together with one resampling.

    Args:
        max_angle: angles are drawn from U(-max_angle, max_angle) degrees; 180 or more means a uniform
            angle in 0-360.
        p_rotation: probability of rotating.
        scale_range: (low, high) of the scale factor (> 1 magnifies).
        p_scale: probability of scaling.
        plane: "random" rotates in one plane drawn uniformly (fast separable path in 3D); "all" draws one
            angle per plane and composes them (3D ``grid_sample``, about twice as slow).
        isotropic: one scale factor for all axes, else one per axis.
        order, label_order: as in :func:`~medseg3d.augment.rotate_scale`.
    """

    def __init__(
        self,
        max_angle: float = 180.0,
        p_rotation: float = 1.0,
        scale_range: Sequence[float] = (1.0, 1.0),
        p_scale: float = 0.0,
        plane: str = "random",
        isotropic: bool = True,
        order: int = 1,
        label_order: int = 0,
    ):
        if plane not in ("random", "all"):
            raise InputError(f"plane must be 'random' or 'all', got {plane!r}")
        self.max_angle = float(max_angle)
        self.p_rotation = float(p_rotation)
        self.scale_range = _range(scale_range, "scale_range")
        if self.scale_range[0] <= 0:
            raise InputError(f"scale_range must be positive, got {tuple(scale_range)}")
        self.p_scale = float(p_scale)
        self.plane = plane
        self.isotropic = bool(isotropic)
        self.order = order
        self.label_order = label_order

    def _angle(self, g) -> float:
        if self.max_angle >= 180:
            return uniform(g, 0.0, 360.0)
        return uniform(g, -self.max_angle, self.max_angle)

    def draw(self, image, generator):
        sd = image.ndim - 1
        planes: list[tuple[int, int]] = []
        angles: list[float] = []
        rot = np.eye(sd)
        if self.p_rotation > 0 and rand(generator) < self.p_rotation:
            candidates = PLANES[sd]
            if self.plane == "random":
                candidates = (candidates[randint(generator, len(candidates))],)
            for plane in candidates:
                angle = self._angle(generator)
                rot = plane_rotation(angle, plane, sd) @ rot
                planes.append(plane)
                angles.append(angle)
        scale = [1.0] * sd
        if self.p_scale > 0 and rand(generator) < self.p_scale:
            n = 1 if self.isotropic else sd
            drawn = [uniform(generator, *self.scale_range) for _ in range(n)]
            scale = drawn * sd if self.isotropic else drawn
        if not planes and scale == [1.0] * sd:
            return None
        return RotateScaleParams(
            matrix=rot,
            scale=scale,
            planes=planes,
            angles_deg=angles,
            order=self.order,
            label_order=self.label_order,
        )


class RandomRotation(RandomRotateScale):
    """Rotation by a random angle (``max_angle`` >= 180: uniform in 0-360) with probability ``p``.

    Example:
        >>> img, lab, params = RandomRotation(max_angle=30, p=1.0)(torch.randn(1, 8, 8, 8), None,
        ...                                                         torch.Generator().manual_seed(0))
    """

    def __init__(
        self,
        max_angle: float = 180.0,
        p: float = 1.0,
        plane: str = "random",
        order: int = 1,
        label_order: int = 0,
    ):
        super().__init__(
            max_angle=max_angle, p_rotation=p, p_scale=0.0, plane=plane, order=order, label_order=label_order
        )


class RandomScale(RandomRotateScale):
    """Scaling by a factor drawn from ``scale_range`` (> 1 magnifies) with probability ``p``."""

    def __init__(
        self,
        scale_range: Sequence[float] = (0.85, 1.15),
        p: float = 1.0,
        isotropic: bool = True,
        order: int = 1,
        label_order: int = 0,
    ):
        super().__init__(
            p_rotation=0.0,
            scale_range=scale_range,
            p_scale=p,
            isotropic=isotropic,
            order=order,
            label_order=label_order,
        )


class RandomIntensity(RandomTransform):
    """Per-channel ``image * scale + shift`` with scale and shift drawn uniformly, with probability ``p``.

    ``per_channel=False`` draws one scale and shift for all channels. The background stays 0.
    """

    def __init__(
        self,
        scale_range: Sequence[float] = (0.9, 1.1),
        shift_range: Sequence[float] = (-0.1, 0.1),
        p: float = 1.0,
        per_channel: bool = True,
    ):
        self.scale_range = _range(scale_range, "scale_range")
        self.shift_range = _range(shift_range, "shift_range")
        self.p = float(p)
        self.per_channel = bool(per_channel)

    def draw(self, image, generator):
        if rand(generator) >= self.p:
            return None
        n = image.shape[0] if self.per_channel else 1
        scale = [uniform(generator, *self.scale_range) for _ in range(n)]
        shift = [uniform(generator, *self.shift_range) for _ in range(n)]
        return IntensityParams(scale=scale, shift=shift)


class RandomGamma(RandomTransform):
    """Gamma correction (:func:`~medseg3d.augment.gamma`), gamma from ``gamma_range``, with probability ``p``.

    As in nnU-Net, half of the draws fall below 1 and half above (when the range straddles 1), so
    brightening and darkening are equally likely even for an asymmetric range like (0.7, 1.5).
    """

    def __init__(self, gamma_range: Sequence[float] = (0.7, 1.5), p: float = 1.0, per_channel: bool = True):
        self.gamma_range = _range(gamma_range, "gamma_range")
        if self.gamma_range[0] <= 0:
            raise InputError(f"gamma_range must be positive, got {tuple(gamma_range)}")
        self.p = float(p)
        self.per_channel = bool(per_channel)

    def _draw_one(self, g) -> float:
        lo, hi = self.gamma_range
        if lo < 1 < hi and rand(g) < 0.5:
            return uniform(g, lo, 1.0)
        return uniform(g, max(lo, 1.0), hi) if lo < 1 < hi else uniform(g, lo, hi)

    def draw(self, image, generator):
        if rand(generator) >= self.p:
            return None
        n = image.shape[0] if self.per_channel else 1
        return GammaParams(gamma=[self._draw_one(generator) for _ in range(n)])


class RandomNoise(RandomTransform):
    """Gaussian noise with a standard deviation drawn from ``std_range``, with probability ``p``.

    The noise itself comes from a generator seeded with a number drawn here, so the logged ``seed`` replays
    it exactly.
    """

    def __init__(self, std_range: Sequence[float] = (0.0, 0.1), p: float = 1.0):
        self.std_range = _range(std_range, "std_range")
        if self.std_range[0] < 0:
            raise InputError(f"std_range must be >= 0, got {tuple(std_range)}")
        self.p = float(p)

    def draw(self, image, generator):
        if rand(generator) >= self.p:
            return None
        std = uniform(generator, *self.std_range)
        seed = int(torch.randint(0, 2**62, (), generator=generator))
        return NoiseParams(std=std, seed=seed)
