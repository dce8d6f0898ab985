"""Data augmentation for 2D and 3D segmentation samples, on the CPU, with torch.

A sample is ``image`` (C, X, Y, Z) float (z-scored, background 0) and ``label`` either (X, Y, Z) class
indices or (R, X, Y, Z) region masks; 2D samples drop the Z axis. ``label`` may be ``None``.

Layers, as in TorchIO, one module each:

* :mod:`~medseg3d.augment.functional`: deterministic ops (:func:`flip`, :func:`rotate_scale`,
  :func:`intensity`, :func:`gamma`, :func:`gaussian_noise`, :func:`gaussian_blur`, :func:`low_resolution`,
  :func:`contrast`) that take every parameter explicitly.
* :mod:`~medseg3d.augment.resample`: rotation matrices and the interpolation behind :func:`rotate_scale`.
* :mod:`~medseg3d.augment.params`: typed records of what was applied (:class:`FlipParams`,
  :class:`RotateScaleParams`, ...), logged with ``to_dict()``, replayed by :func:`apply_params` and
  inverted by :func:`invert_geometry`.
* :mod:`~medseg3d.augment.random`: random transforms (:class:`RandomFlip`, :class:`RandomRotation`, ...)
  that only draw parameters from the ``torch.Generator`` they are given and return
  ``(image, label, record)`` (``{}`` when nothing was applied).
* :mod:`~medseg3d.augment.compose`: :class:`Compose`, :class:`PaperAugment` (Kayalibay et al. 2017) and
  :func:`build_augment` ("none", "paper", "default", "strong", "strong-thick").

Example:
    >>> import torch
    >>> from medseg3d.augment import build_augment
    >>> augment = build_augment("default")
    >>> image, label = torch.randn(4, 32, 40, 32), torch.randint(0, 4, (32, 40, 32))
    >>> g = torch.Generator().manual_seed(0)
    >>> image2, label2, applied = augment(image, label, g)
    >>> image2.shape == image.shape and label2.shape == label.shape
    True
"""

from .compose import PRESETS, Compose, PaperAugment, build_augment
from .functional import (
    contrast,
    flip,
    gamma,
    gaussian_blur,
    gaussian_kernel,
    gaussian_noise,
    intensity,
    low_resolution,
    rotate_scale,
    thick_slices,
)
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
    apply_params,
    invert_geometry,
    params_from_dict,
)
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
    RandomRotation,
    RandomScale,
    RandomThickSlices,
    RandomTransform,
)
from .resample import PLANES, rotation_matrix

__all__ = [
    "PLANES",
    "PRESETS",
    "AugmentParams",
    "BlurParams",
    "Compose",
    "ContrastParams",
    "FlipParams",
    "GammaParams",
    "IntensityParams",
    "LowResolutionParams",
    "NoiseParams",
    "PaperAugment",
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
    "RandomThickSlices",
    "RandomTransform",
    "RotateScaleParams",
    "ThickSliceParams",
    "apply_params",
    "build_augment",
    "contrast",
    "flip",
    "gamma",
    "gaussian_blur",
    "gaussian_kernel",
    "gaussian_noise",
    "intensity",
    "invert_geometry",
    "low_resolution",
    "params_from_dict",
    "rotate_scale",
    "rotation_matrix",
    "thick_slices",
]
