"""Composition and the named presets: :class:`Compose`, :class:`PaperAugment`, :func:`build_augment`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from medseg3d.errors import InputError

from ._checks import spatial_dims
from .params import AugmentParams, FlipParams, RotateScaleParams, apply_params
from .random import (
    RandomBlur,
    RandomBrightness,
    RandomContrast,
    RandomFlip,
    RandomGamma,
    RandomIntensity,
    RandomLowResolution,
    RandomNoise,
    RandomRotateScale,
    RandomThickSlices,
    randint,
    uniform,
)
from .resample import PLANES, plane_rotation

__all__ = ["PRESETS", "Compose", "PaperAugment", "build_augment"]


class Compose:
    """Apply transforms in order; returns ``(image, label, applied)`` with the list of applied records.

    Example:
        >>> augment = Compose([RandomFlip(p=0.5), RandomGamma((0.7, 1.5), p=0.3)])
        >>> img, lab, applied = augment(torch.randn(4, 8, 8, 8), None, torch.Generator().manual_seed(1))
    """

    def __init__(self, transforms: Sequence[Any]):
        self.transforms = list(transforms)

    def __call__(self, image, label, generator: torch.Generator | None = None):
        spatial_dims(image, label)
        applied: list[AugmentParams] = []
        for transform in self.transforms:
            image, label, params = transform(image, label, generator)
            if isinstance(params, list):
                applied.extend(params)
            elif params:
                applied.append(params)
        return image, label, applied

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"


class PaperAugment:
    """The scheme of Kayalibay et al. (2017): ``n_ops`` draws from {identity, flip, rotation}.

    Each draw is identity, a flip along one random axis, or a rotation by an angle uniform in 0-360 degrees
    in a random plane, each with probability 1/3 -- so "up to two operations" with the default ``n_ops=2``.
    Two rotations in a row are merged into one resampling.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> img, lab, applied = PaperAugment()(torch.randn(4, 8, 8, 8), None, g)
    """

    def __init__(self, n_ops: int = 2, order: int = 1, label_order: int = 0):
        self.n_ops = int(n_ops)
        self.order = order
        self.label_order = label_order

    def draw(self, image: torch.Tensor, generator: torch.Generator | None) -> list[AugmentParams]:
        """The records of one sample (only ``image``'s shape is read): ``n_ops`` draws of nothing, a flip or a
        rotation, consecutive rotations merged into one resampling.

        Args:
            image: the (C, *spatial) sample.
            generator: the random stream (None: torch's global one).

        Returns:
            The records in the order they apply.
        """
        sd = image.ndim - 1
        steps: list[AugmentParams] = []
        for _ in range(self.n_ops):
            kind = randint(generator, 3)
            if kind == 1:
                steps.append(FlipParams(axes=(randint(generator, sd),)))
            elif kind == 2:
                plane = PLANES[sd][randint(generator, len(PLANES[sd]))]
                angle = uniform(generator, 0.0, 360.0)
                rot = plane_rotation(angle, plane, sd)
                last = steps[-1] if steps else None
                if isinstance(last, RotateScaleParams):
                    steps[-1] = RotateScaleParams(
                        matrix=rot @ np.asarray(last.matrix),
                        scale=last.scale,
                        planes=(*last.planes, plane),
                        angles_deg=(*last.angles_deg, angle),
                        order=last.order,
                        label_order=last.label_order,
                    )
                else:
                    steps.append(
                        RotateScaleParams(
                            matrix=rot,
                            scale=[1.0] * sd,
                            planes=[plane],
                            angles_deg=[angle],
                            order=self.order,
                            label_order=self.label_order,
                        )
                    )
        return steps

    def __call__(self, image, label, generator: torch.Generator | None = None):
        spatial_dims(image, label)
        steps = self.draw(image, generator)
        image, label = apply_params(image, label, steps)
        return image, label, steps


#: The named pipelines of :func:`build_augment`.
PRESETS = ("none", "paper", "default", "strong", "strong-thick")


def build_augment(name: str) -> Compose | PaperAugment:
    """Named augmentation pipelines.

    * ``"none"``: nothing.
    * ``"paper"``: :class:`PaperAugment`, the scheme of Kayalibay et al. (2017).
    * ``"default"``: nnU-Net-like mix: flips on every axis (p=0.5 each); rotation up to +-30 degrees in a
      random plane (p=0.3) and scaling 0.85-1.15 (p=0.3) in one resampling; intensity scale 0.9-1.1 and
      shift +-0.1 per channel (p=0.3); gamma 0.7-1.5 (p=0.3).
    * ``"strong"`` (issue #22): nnU-Net's training transforms with their ranges and probabilities, in their
      order (rotation as in "default", at most 30 degrees: BraTS cases share one orientation, so turning them
      upside down only teaches what never comes). "p" is per sample; "/channel" is a second draw for each
      channel of a chosen sample, and each chosen channel gets its own value:

      ==============  ================================================================  =================
      transform       range                                                             p
      ==============  ================================================================  =================
      rotation        -30 to 30 degrees in one random plane                             0.2
      scaling         0.7-1.4, isotropic (> 1 magnifies), one resampling with rotation  0.2
      Gaussian noise  std 0-0.3 (z-score units; nnU-Net: variance 0-0.1)                0.1
      Gaussian blur   sigma 0.5-1.0 voxel, its own sigma per channel                    0.2; 0.5/channel
      brightness      x 0.75-1.25 per channel                                           0.15
      contrast        0.75-1.25 about the brain mean, clipped to the range              0.15
      low resolution  down 1-2x (nearest), back up (linear), own factor per channel     0.25; 0.5/channel
      inverted gamma  0.7-1.5 on the inverted image, per channel                        0.1
      gamma           0.7-1.5, per channel                                              0.3
      mirroring       each axis                                                         0.5 per axis
      ==============  ================================================================  =================

      Gamma and contrast draw below 1 and above 1 equally often. Every intensity op leaves the background
      (0 in every channel) at 0, so the brain mask the network sees is the one of the input.
    * ``"strong-thick"`` (issue #40, lever 5): ``"strong"`` plus thick slices after the low resolution
      (p 0.3 per sample, 0.5 per channel): a channel averaged over slabs 1.5-2.75 voxels thick along its own
      random axis and interpolated back, what 3-5.5 mm slices resampled to the 2 mm training grid look like
      (:func:`~medseg3d.augment.thick_slices`).
    """
    key = str(name).lower()
    if key == "none":
        return Compose([])
    if key == "paper":
        return PaperAugment()
    if key == "default":
        return Compose(
            [
                RandomFlip(p=0.5),
                RandomRotateScale(max_angle=30.0, p_rotation=0.3, scale_range=(0.85, 1.15), p_scale=0.3),
                RandomIntensity(scale_range=(0.9, 1.1), shift_range=(-0.1, 0.1), p=0.3),
                RandomGamma(gamma_range=(0.7, 1.5), p=0.3),
            ]
        )
    if key in ("strong", "strong-thick"):
        thick = [RandomThickSlices(thickness_range=(1.5, 2.75), p=0.3, p_per_channel=0.5)]
        return Compose(
            [
                RandomRotateScale(max_angle=30.0, p_rotation=0.2, scale_range=(0.7, 1.4), p_scale=0.2),
                RandomNoise(std_range=(0.0, 0.3), p=0.1),
                RandomBlur(sigma_range=(0.5, 1.0), p=0.2, p_per_channel=0.5),
                RandomBrightness(scale_range=(0.75, 1.25), p=0.15),
                RandomContrast(factor_range=(0.75, 1.25), p=0.15),
                RandomLowResolution(factor_range=(1.0, 2.0), p=0.25, p_per_channel=0.5),
                *(thick if key == "strong-thick" else []),
                RandomGamma(gamma_range=(0.7, 1.5), p=0.1, invert=True),
                RandomGamma(gamma_range=(0.7, 1.5), p=0.3),
                RandomFlip(p=0.5),
            ]
        )
    raise InputError(f"unknown augmentation {name!r}; choose one of {', '.join(PRESETS)}")
