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
    BlurParams,
    ContrastParams,
    FlipParams,
    GammaParams,
    IntensityParams,
    LowResolutionParams,
    NoiseParams,
    RotateScaleParams,
    ThickSliceParams,
)
from .resample import PLANES, plane_rotation

__all__ = [
    "RandomBlur",
    "RandomBrightness",
    "RandomContrast",
    "RandomFlip",
    "RandomGamma",
    "RandomIntensity",
    "RandomLowResolution",
    "RandomNoise",
    "RandomRotateScale",
    "RandomRotation",
    "RandomScale",
    "RandomTransform",
]


def rand(g: torch.Generator | None) -> float:
    """A float uniform in [0, 1) from ``g`` (None: torch's global stream)."""
    return float(torch.rand((), generator=g, dtype=torch.float64))


def uniform(g: torch.Generator | None, lo: float, hi: float) -> float:
    """A float uniform in [lo, hi) from a generator.

    Args:
        g: the random stream (None: torch's global one).
        lo, hi: the interval.
    """
    return lo + (hi - lo) * rand(g)


def randint(g: torch.Generator | None, n: int) -> int:
    """An int uniform in 0..n-1 from a generator.

    Args:
        g: the random stream (None: torch's global one).
        n: the number of values.
    """
    return int(torch.randint(n, (), generator=g))


def _range(r: Sequence[float], name: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in r)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be two numbers (low, high), got {r!r}") from None
    if not lo <= hi:  # also catches NaN
        raise InputError(f"{name} must be (low, high) with low <= high, got {tuple(r)}")
    return lo, hi


def _probability(p: float, name: str = "p") -> float:
    p = float(p)
    if not 0 <= p <= 1:
        raise InputError(f"{name} must be a probability in [0, 1], got {p}")
    return p


def _around_one(g: torch.Generator | None, lo: float, hi: float) -> float:
    """A factor from (lo, hi); when the range straddles 1, below 1 and above 1 each half of the time (as
    nnU-Net draws gamma and contrast), so an asymmetric range like (0.7, 1.5) darkens as often as it
    brightens."""
    if lo < 1 < hi and rand(g) < 0.5:
        return uniform(g, lo, 1.0)
    return uniform(g, max(lo, 1.0), hi) if lo < 1 < hi else uniform(g, lo, hi)


class RandomTransform:
    """Base class: checks the sample, calls :meth:`draw`, applies the drawn record.

    Subclasses implement only :meth:`draw`; they never touch the voxels themselves.
    """

    def draw(self, image: torch.Tensor, generator: torch.Generator | None) -> AugmentParams | None:
        """Parameters for one sample (only ``image``'s shape is read), or None to apply nothing.

        Args:
            image: the (C, *spatial) sample.
            generator: the random stream (None: torch's global one); every draw advances it.
        """
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
        """Each allowed axis flipped with probability ``p`` (:meth:`RandomTransform.draw`); None when none
        is."""
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
        """A rotation (probability ``p_rotation``) and a scaling (``p_scale``) as one record
        (:meth:`RandomTransform.draw`)."""
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
        """Scale and shift per channel (or shared), with probability ``p`` (:meth:`RandomTransform.draw`)."""
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
    ``invert=True`` applies the gamma to the inverted image (nnU-Net's ``invert_image``).
    """

    def __init__(
        self,
        gamma_range: Sequence[float] = (0.7, 1.5),
        p: float = 1.0,
        per_channel: bool = True,
        invert: bool = False,
    ):
        self.gamma_range = _range(gamma_range, "gamma_range")
        if self.gamma_range[0] <= 0:
            raise InputError(f"gamma_range must be positive, got {tuple(gamma_range)}")
        self.p = float(p)
        self.per_channel = bool(per_channel)
        self.invert = bool(invert)

    def draw(self, image, generator):
        """A gamma per channel (or shared) around 1, with probability ``p`` (:meth:`RandomTransform.draw`)."""
        if rand(generator) >= self.p:
            return None
        n = image.shape[0] if self.per_channel else 1
        gammas = [_around_one(generator, *self.gamma_range) for _ in range(n)]
        # not inverted: the record leaves ``invert`` out, so its log is the one written before it existed
        return GammaParams(gamma=gammas, invert=True if self.invert else None)


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
        """A noise std and seed, with probability ``p`` (:meth:`RandomTransform.draw`)."""
        if rand(generator) >= self.p:
            return None
        std = uniform(generator, *self.std_range)
        seed = int(torch.randint(0, 2**62, (), generator=generator))
        return NoiseParams(std=std, seed=seed)


class RandomBrightness(RandomTransform):
    """Multiplicative brightness: ``image * scale`` per channel, scale from ``scale_range``, probability
    ``p``.

    nnU-Net's BrightnessMultiplicativeTransform; recorded as an ``intensity`` record with zero shift.
    """

    def __init__(self, scale_range: Sequence[float] = (0.75, 1.25), p: float = 1.0, per_channel: bool = True):
        self.scale_range = _range(scale_range, "scale_range")
        self.p = _probability(p)
        self.per_channel = bool(per_channel)

    def draw(self, image, generator):
        """A multiplicative brightness per channel (or shared), with probability ``p``
        (:meth:`RandomTransform.draw`)."""
        if rand(generator) >= self.p:
            return None
        n = image.shape[0] if self.per_channel else 1
        scale = [uniform(generator, *self.scale_range) for _ in range(n)]
        return IntensityParams(scale=scale, shift=[0.0] * n)


class RandomContrast(RandomTransform):
    """Contrast (:func:`~medseg3d.augment.contrast`) by a factor from ``factor_range``, probability ``p``.

    As nnU-Net's ContrastAugmentationTransform: below 1 and above 1 each half of the time when the range
    straddles 1; one factor per channel unless ``per_channel=False``.
    """

    def __init__(
        self, factor_range: Sequence[float] = (0.75, 1.25), p: float = 1.0, per_channel: bool = True
    ):
        self.factor_range = _range(factor_range, "factor_range")
        if self.factor_range[0] <= 0:
            raise InputError(f"factor_range must be positive, got {tuple(factor_range)}")
        self.p = _probability(p)
        self.per_channel = bool(per_channel)

    def draw(self, image, generator):
        """A contrast factor per channel (or shared) around 1, with probability ``p``
        (:meth:`RandomTransform.draw`)."""
        if rand(generator) >= self.p:
            return None
        n = image.shape[0] if self.per_channel else 1
        return ContrastParams(factor=[_around_one(generator, *self.factor_range) for _ in range(n)])


class _PerChannelDraw(RandomTransform):
    """A value per channel from ``value_range`` for a sample drawn with ``p``, each channel then with
    ``p_per_channel`` (others get ``identity``); ``per_channel=False`` draws one value for all channels."""

    identity: float = 0.0
    range_name: str = "range"

    def __init__(self, value_range: Sequence[float], p: float, p_per_channel: float, per_channel: bool):
        self.value_range = _range(value_range, self.range_name)
        self.p = _probability(p)
        self.p_per_channel = _probability(p_per_channel, "p_per_channel")
        self.per_channel = bool(per_channel)

    def _values(self, image, generator) -> list[float] | None:
        if rand(generator) >= self.p:
            return None
        if not self.per_channel:
            return [uniform(generator, *self.value_range)] * image.shape[0]
        values = [
            uniform(generator, *self.value_range) if rand(generator) < self.p_per_channel else self.identity
            for _ in range(image.shape[0])
        ]
        return values if any(v != self.identity for v in values) else None


class RandomBlur(_PerChannelDraw):
    """Gaussian blur (:func:`~medseg3d.augment.gaussian_blur`), sigma (voxels) from ``sigma_range``.

    As nnU-Net's GaussianBlurTransform (``different_sigma_per_channel=True``): a sample is blurred with
    probability ``p``, then each channel with ``p_per_channel``, each with its own sigma.
    """

    identity = 0.0
    range_name = "sigma_range"

    def __init__(
        self,
        sigma_range: Sequence[float] = (0.5, 1.0),
        p: float = 1.0,
        p_per_channel: float = 1.0,
        per_channel: bool = True,
    ):
        super().__init__(sigma_range, p, p_per_channel, per_channel)
        if self.value_range[0] < 0:
            raise InputError(f"sigma_range must be >= 0, got {tuple(sigma_range)}")

    def draw(self, image, generator):
        """Blur sigmas per channel, drawn as configured (:meth:`RandomTransform.draw`); None when no channel
        is blurred."""
        sigma = self._values(image, generator)
        return None if sigma is None else BlurParams(sigma=sigma)


class RandomLowResolution(_PerChannelDraw):
    """Simulated low resolution (:func:`~medseg3d.augment.low_resolution`), factor from ``factor_range``.

    As nnU-Net's SimulateLowResolutionTransform (zoom 0.5-1 is a factor 1-2 here): a sample with probability
    ``p``, then each channel with ``p_per_channel``, each with its own factor. Labels are untouched.
    """

    identity = 1.0
    range_name = "factor_range"

    def __init__(
        self,
        factor_range: Sequence[float] = (1.0, 2.0),
        p: float = 1.0,
        p_per_channel: float = 1.0,
        per_channel: bool = True,
    ):
        super().__init__(factor_range, p, p_per_channel, per_channel)
        if self.value_range[0] < 1:
            raise InputError(f"factor_range must be >= 1 (a down-sampling factor), got {tuple(factor_range)}")

    def draw(self, image, generator):
        """Down-sampling factors per channel, drawn as configured (:meth:`RandomTransform.draw`); None when
        none is."""
        factor = self._values(image, generator)
        return None if factor is None else LowResolutionParams(factor=factor)


class RandomThickSlices(_PerChannelDraw):
    """Simulated thick slices (:func:`~medseg3d.augment.thick_slices`): a slab thickness from
    ``thickness_range`` (voxels) and a slice axis drawn uniformly from the spatial axes, per channel.

    A sample with probability ``p``, then each channel with ``p_per_channel``, each with its own thickness
    and axis, as the sequences of a raw study come in thick slices of their own orientation (issue #40,
    lever 5). Labels are untouched: the reference was drawn on the fine grid.
    """

    identity = 1.0
    range_name = "thickness_range"

    def __init__(
        self,
        thickness_range: Sequence[float] = (1.5, 2.75),
        p: float = 1.0,
        p_per_channel: float = 1.0,
        per_channel: bool = True,
    ):
        super().__init__(thickness_range, p, p_per_channel, per_channel)
        if self.value_range[0] < 1:
            raise InputError(
                f"thickness_range must be >= 1 voxel (1 = the grid's own), got {tuple(thickness_range)}"
            )

    def draw(self, image, generator):
        """Thickness and axis per channel, drawn as configured (:meth:`RandomTransform.draw`); None when no
        channel is thickened."""
        thickness = self._values(image, generator)
        if thickness is None:
            return None
        axes = [randint(generator, image.ndim - 1) for _ in thickness]
        return ThickSliceParams(thickness=thickness, axis=axes)
