"""Typed records of applied augmentation: logged as a dict, replayed exactly, inverted when geometric.

A random transform returns one record per op it applied. Each record

* holds every parameter the deterministic op needs (:meth:`AugmentParams.apply` replays it bit for bit),
* is logged with :meth:`AugmentParams.to_dict` (JSON-serialisable; :func:`params_from_dict` reads it back),
* reads like that dict (``record["op"]``, ``dict(record)``, ``record == {...}``), so code written against
  the dicts of earlier versions keeps working, and
* for the geometric ops has an :meth:`AugmentParams.inverse` (a flip undoes itself; a rotation/scaling is
  undone by the inverse linear map, exact up to the interpolation and where the content stayed inside).

Example:
    >>> import torch
    >>> from medseg3d.augment import FlipParams, apply_params, invert_geometry
    >>> image = torch.randn(1, 4, 4, 4)
    >>> record = FlipParams(axes=(0,))
    >>> record.to_dict()
    {'op': 'flip', 'axes': [0]}
    >>> flipped, _ = apply_params(image, None, [record])
    >>> back, _ = apply_params(flipped, None, invert_geometry([record]))
    >>> bool(torch.equal(back, image))
    True
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import numpy as np
import torch

from medseg3d.errors import InputError

from .functional import (
    contrast,
    flip,
    gamma,
    gaussian_blur,
    gaussian_noise,
    intensity,
    low_resolution,
    rotate_scale,
    thick_slices,
)

__all__ = [
    "AugmentParams",
    "BlurParams",
    "ContrastParams",
    "FlipParams",
    "GammaParams",
    "IntensityParams",
    "LowResolutionParams",
    "NoiseParams",
    "RotateScaleParams",
    "ThickSliceParams",
    "apply_params",
    "invert_geometry",
    "params_from_dict",
]

Sample = tuple[torch.Tensor, "torch.Tensor | None"]


def _plain(value: Any) -> Any:
    """Tuples (the records' immutable storage) as lists, numpy scalars as Python numbers: JSON as logged."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _values(value: Any) -> Any:
    """A record's per-channel field as the op takes it: a list, or the single number as it is."""
    return list(value) if isinstance(value, tuple) else value


def _frozen(value: Any) -> Any:
    """Lists and arrays as nested tuples, so a record cannot change after it was logged."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (tuple, list)):
        return tuple(_frozen(v) for v in value)
    return value


class AugmentParams(Mapping):
    """Base of the parameter records; a read-only mapping over :meth:`to_dict`.

    Fields left at ``None`` were not recorded and are omitted from the dict.
    """

    op: ClassVar[str] = ""
    geometric: ClassVar[bool] = False

    def __post_init__(self) -> None:
        for f in fields(self):
            object.__setattr__(self, f.name, _frozen(getattr(self, f.name)))

    def to_dict(self) -> dict[str, Any]:
        """The record as logged: ``{"op": ..., field: value, ...}`` with lists, JSON-serialisable."""
        out: dict[str, Any] = {"op": self.op}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                out[f.name] = _plain(value)
        return out

    def apply(self, image: torch.Tensor, label: torch.Tensor | None) -> Sample:
        """Run the deterministic op with these parameters.

        Args:
            image: the (C, *spatial) float image.
            label: its label (class indices or region masks), or None.

        Returns:
            (image, label) after the op; intensity ops return the label unchanged.

        Raises:
            InputError: a sample the op refuses (:func:`medseg3d.augment._checks.spatial_dims`).
        """
        raise NotImplementedError

    def inverse(self) -> AugmentParams:
        """The record undoing this one (geometric ops only)."""
        raise InputError(f"augmentation op {self.op!r} changes intensities and has no spatial inverse")

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())

    def __repr__(self) -> str:
        args = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self))
        return f"{type(self).__name__}({args})"


@dataclass(frozen=True, eq=False, repr=False)
class FlipParams(AugmentParams):
    """Mirror along ``axes`` (spatial axes, 0 = X). Its own inverse."""

    axes: tuple[int, ...]
    op: ClassVar[str] = "flip"
    geometric: ClassVar[bool] = True

    def apply(self, image, label):
        """Flip image and label along the recorded axes (:meth:`AugmentParams.apply`)."""
        return flip(image, label, list(self.axes))

    def inverse(self) -> FlipParams:
        """The same flip, which undoes itself."""
        return self


@dataclass(frozen=True, eq=False, repr=False)
class RotateScaleParams(AugmentParams):
    """Rotation and scaling about the centre in one resampling: forward map ``diag(scale) @ matrix``.

    Args:
        matrix: DxD rotation (or any invertible linear map), rows as tuples.
        scale: one factor or one per axis (> 1 magnifies).
        planes, angles_deg: the plane rotations ``matrix`` was composed from, for the log; None when the
            matrix is not such a composition (e.g. an inverse).
        order, label_order: interpolation, as in :func:`~medseg3d.augment.rotate_scale`.
    """

    matrix: tuple[tuple[float, ...], ...]
    scale: float | tuple[float, ...] = 1.0
    planes: tuple[tuple[int, int], ...] | None = None
    angles_deg: tuple[float, ...] | None = None
    order: int = 1
    label_order: int = 0
    op: ClassVar[str] = "rotate_scale"
    geometric: ClassVar[bool] = True

    def apply(self, image, label):
        """Rotate and scale image and label about the centre with the recorded matrix
        (:meth:`AugmentParams.apply`)."""
        scale = list(self.scale) if isinstance(self.scale, tuple) else self.scale
        return rotate_scale(
            image, label, np.asarray(self.matrix), scale, order=self.order, label_order=self.label_order
        )

    def inverse(self) -> RotateScaleParams:
        """The record that undoes this one (the inverse map, back to the original grid)."""
        forward = np.asarray(self.scale, dtype=np.float64).reshape(-1, 1) * np.asarray(self.matrix)
        return RotateScaleParams(
            matrix=np.linalg.inv(forward), scale=1.0, order=self.order, label_order=self.label_order
        )


@dataclass(frozen=True, eq=False, repr=False)
class IntensityParams(AugmentParams):
    """``image * scale + shift``, one value or one per channel; the background stays 0."""

    scale: tuple[float, ...]
    shift: tuple[float, ...]
    op: ClassVar[str] = "intensity"

    def apply(self, image, label):
        """Scale and shift the intensities per channel (:meth:`AugmentParams.apply`); the label is
        unchanged."""
        return intensity(image, list(self.scale), list(self.shift)), label


@dataclass(frozen=True, eq=False, repr=False)
class GammaParams(AugmentParams):
    """Gamma correction with one exponent or one per channel.

    ``invert=True`` applies it to the inverted image (see :func:`~medseg3d.augment.gamma`); None (the
    default) means not inverted and is left out of the log, so logs written before it existed read the same.
    """

    gamma: tuple[float, ...]
    invert: bool | None = None
    op: ClassVar[str] = "gamma"

    def apply(self, image, label):
        """Apply the recorded gamma per channel (:meth:`AugmentParams.apply`); the label is unchanged."""
        return gamma(image, list(self.gamma), invert=bool(self.invert)), label


@dataclass(frozen=True, eq=False, repr=False)
class NoiseParams(AugmentParams):
    """Gaussian noise of standard deviation ``std`` drawn from a generator seeded with ``seed``."""

    std: float
    seed: int
    op: ClassVar[str] = "noise"

    def apply(self, image, label):
        """Add the recorded seed's Gaussian noise (:meth:`AugmentParams.apply`); the label is unchanged."""
        return gaussian_noise(image, self.std, torch.Generator().manual_seed(int(self.seed))), label


@dataclass(frozen=True, eq=False, repr=False)
class BlurParams(AugmentParams):
    """Gaussian blur with one standard deviation (voxels) or one per channel; 0 leaves a channel as it is."""

    sigma: float | tuple[float, ...]
    op: ClassVar[str] = "blur"

    def apply(self, image, label):
        """Blur each channel with the recorded sigma (:meth:`AugmentParams.apply`); the label is unchanged."""
        return gaussian_blur(image, _values(self.sigma)), label


@dataclass(frozen=True, eq=False, repr=False)
class LowResolutionParams(AugmentParams):
    """Simulated low resolution: down-sampling factor (>= 1) per channel, up-sampled back; labels
    untouched."""

    factor: float | tuple[float, ...]
    op: ClassVar[str] = "low_resolution"

    def apply(self, image, label):
        """Down- and up-sample each channel by the recorded factor (:meth:`AugmentParams.apply`); the label is
        unchanged."""
        return low_resolution(image, _values(self.factor)), label


@dataclass(frozen=True, eq=False, repr=False)
class ThickSliceParams(AugmentParams):
    """Simulated thick slices: slab thickness (voxels, >= 1) and slice axis per channel, resampled back;
    labels untouched."""

    thickness: float | tuple[float, ...]
    axis: int | tuple[int, ...]
    op: ClassVar[str] = "thick_slices"

    def apply(self, image, label):
        """Average each channel over slabs along its axis and interpolate back (:meth:`AugmentParams.apply`);
        the label is unchanged."""
        return thick_slices(image, _values(self.thickness), _values(self.axis)), label


@dataclass(frozen=True, eq=False, repr=False)
class ContrastParams(AugmentParams):
    """Contrast about each channel's foreground mean, clipped to its range; one factor or one per channel."""

    factor: float | tuple[float, ...]
    op: ClassVar[str] = "contrast"

    def apply(self, image, label):
        """Scale contrast per channel by the recorded factor (:meth:`AugmentParams.apply`); the label is
        unchanged."""
        return contrast(image, _values(self.factor)), label


_RECORDS: dict[str, type[AugmentParams]] = {
    cls.op: cls
    for cls in (
        FlipParams,
        RotateScaleParams,
        IntensityParams,
        GammaParams,
        NoiseParams,
        BlurParams,
        LowResolutionParams,
        ThickSliceParams,
        ContrastParams,
    )
}


def params_from_dict(params: Mapping[str, Any]) -> AugmentParams | None:
    """The record of a logged dict (a record is returned as it is); None for ``{}`` (nothing applied)."""
    if isinstance(params, AugmentParams):
        return params
    op = params.get("op")
    if op is None:
        return None
    cls = _RECORDS.get(op)
    if cls is None:
        raise InputError(f"unknown augmentation op {op!r}; expected one of {', '.join(_RECORDS)}")
    names = {f.name for f in fields(cls)}
    try:
        return cls(**{k: v for k, v in params.items() if k in names})
    except TypeError as err:
        raise InputError(f"logged {op!r} parameters {dict(params)} are incomplete: {err}") from None


def apply_params(
    image: torch.Tensor,
    label: torch.Tensor | None,
    params: Mapping[str, Any] | Sequence[Mapping[str, Any]],
) -> Sample:
    """Apply logged parameters (one record or dict, or a list, as returned by the transforms) exactly.

    Args:
        image: the (C, *spatial) image.
        label: the label, or None.
        params: what the transforms logged; an empty dict (nothing applied) is skipped.

    Returns:
        (image, label) after every op, in order.

    Raises:
        InputError: an entry names an unknown op or has bad parameters.
    """
    for p in [params] if isinstance(params, Mapping) else params:
        record = params_from_dict(p)
        if record is not None:
            image, label = record.apply(image, label)
    return image, label


def invert_geometry(params: Sequence[Mapping[str, Any]]) -> list[AugmentParams]:
    """Records undoing the spatial part of logged augmentation (e.g. to map a prediction back).

    Intensity ops are dropped. Apply the result with :func:`apply_params`. Content rotated out of the
    volume is lost, so the inverse is exact only where the forward transform kept it.
    """
    records = [params_from_dict(p) for p in params]
    return [r.inverse() for r in reversed(records) if r is not None and r.geometric]
