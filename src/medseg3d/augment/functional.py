"""Deterministic augmentation ops: every parameter explicit, inputs never modified.

Each op returns ``(image, label)`` or ``image`` and may return an input object itself when there is nothing
to do. ``image`` is (C, X, Y[, Z]) float; ``label`` is (X, Y[, Z]) class indices, (R, X, Y[, Z]) region
masks, or None.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from medseg3d.errors import InputError

from ._checks import check_axes, foreground, per_channel, spatial_dims
from .resample import IDENTITY_ATOL, linear_map, resample, resample_label

__all__ = ["flip", "gamma", "gaussian_noise", "intensity", "rotate_scale"]


def flip(
    image: torch.Tensor, label: torch.Tensor | None, axes: int | Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Mirror image and label along spatial axes.

    Args:
        image: (C, X, Y[, Z]) float tensor.
        label: (X, Y[, Z]) class indices, (R, X, Y[, Z]) region masks, or None.
        axes: spatial axis or axes (0 = X); an empty list returns the inputs.

    Example:
        >>> img, lab = flip(torch.zeros(4, 8, 8, 8), torch.zeros(8, 8, 8, dtype=torch.long), axes=[0, 2])
    """
    sd = spatial_dims(image, label)
    ax = check_axes(axes, sd)
    if not ax:
        return image, label
    image = torch.flip(image, [a + 1 for a in ax])
    if label is not None:
        offset = label.ndim - sd
        label = torch.flip(label, [a + offset for a in ax])
    return image, label



def rotate_scale(
    image: torch.Tensor,
    label: torch.Tensor | None,
    angles_deg: float | Sequence[float] | np.ndarray | torch.Tensor,
    scale: float | Sequence[float] = 1.0,
    order: int = 1,
    label_order: int = 0,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Rotate and scale about the volume centre in one resampling, keeping the shape.

    The forward map is ``x_out = diag(scale) @ R @ x_in`` on voxel offsets from the centre, so ``scale > 1``
    magnifies the content. Outside the input the image is 0 and the label background (0).

    Args:
        image: (C, X, Y[, Z]) float tensor.
        label: (X, Y[, Z]) class indices, (R, X, Y[, Z]) region masks, or None.
        angles_deg: one angle per plane of :data:`PLANES` (a scalar in 2D), or a DxD rotation matrix
            (any invertible linear map is accepted).
        scale: one factor, or one per spatial axis.
        order: image interpolation, 1 (linear) or 0 (nearest).
        label_order: 0 = nearest (never creates new label values); 1 = linear on one-hot class maps then
            argmax (index labels) or linear then threshold 0.5 (region masks): smoother, slower.

    Returns:
        (image, label), same shapes and dtypes as the inputs.

    Example:
        >>> img, lab = rotate_scale(torch.randn(4, 16, 16, 16), torch.zeros(16, 16, 16, dtype=torch.long),
        ...                         angles_deg=[30.0, 0.0, 0.0], scale=1.1)
    """
    sd = spatial_dims(image, label)
    if order not in (0, 1) or label_order not in (0, 1):
        raise InputError(f"order and label_order must be 0 or 1, got {order} and {label_order}")
    forward = linear_map(angles_deg, scale, sd)
    sampling = np.linalg.inv(forward)  # output offset -> input offset
    if np.allclose(sampling, np.eye(sd), rtol=0, atol=IDENTITY_ATOL):
        return image, label
    image = resample(image, sampling, "bilinear" if order == 1 else "nearest")
    if label is not None:
        label = resample_label(label, sampling, sd, label_order)
    return image, label



def intensity(
    image: torch.Tensor,
    scale: float | Sequence[float] = 1.0,
    shift: float | Sequence[float] = 0.0,
    keep_background: bool = True,
) -> torch.Tensor:
    """``image * scale + shift`` per channel.

    Args:
        image: (C, X, Y[, Z]) float tensor.
        scale: one factor, or one per channel.
        shift: one offset, or one per channel (in z-score units for normalised images).
        keep_background: add the shift only where some channel is non-zero, so the background stays 0.
    """
    sd = spatial_dims(image)
    n = image.shape[0]
    s = per_channel(scale, n, "scale").to(image.dtype).view(n, *[1] * sd)
    t = per_channel(shift, n, "shift").to(image.dtype).view(n, *[1] * sd)
    if not torch.any(t != 0):
        return image * s
    if keep_background:
        return torch.addcmul(image * s, t, foreground(image).to(image.dtype))
    return image * s + t


def gamma(
    image: torch.Tensor, gamma: float | Sequence[float], mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Gamma correction per channel on intensities rescaled to [0, 1] inside the mask.

    Each channel's values inside ``mask`` are mapped to [0, 1] by their min and max, raised to ``gamma`` and
    mapped back, so the min and max are kept; outside the mask the output is 0.

    Args:
        image: (C, X, Y[, Z]) float tensor.
        gamma: one exponent > 0, or one per channel; 1 leaves the channel unchanged.
        mask: (X, Y[, Z]) bool foreground; default: voxels non-zero in any channel.
    """
    spatial_dims(image)
    g = per_channel(gamma, image.shape[0], "gamma")
    if not torch.all(g > 0):
        raise InputError(f"gamma must be positive, got {g.tolist()}")
    if torch.all(g == 1):
        return image
    if mask is None:
        mask = foreground(image)
    elif tuple(mask.shape) != tuple(image.shape[1:]):
        raise InputError(
            f"gamma mask shape {tuple(mask.shape)} differs from image spatial shape {tuple(image.shape[1:])}"
        )
    mask = mask.bool()
    if not bool(mask.any()):
        return image
    out = image.clone()
    inf = torch.tensor(float("inf"), dtype=image.dtype)
    for ch in range(image.shape[0]):
        gc = float(g[ch])
        if gc == 1.0:
            continue
        x = image[ch]
        lo = torch.where(mask, x, inf).amin()
        hi = torch.where(mask, x, -inf).amax()
        span = float(hi - lo)
        if span <= 0:
            continue
        y = ((x - lo) / span).clamp_(0, 1).pow_(gc).mul_(span).add_(lo)
        out[ch] = torch.where(mask, y, torch.zeros((), dtype=image.dtype))
    return out


def gaussian_noise(
    image: torch.Tensor,
    std: float | Sequence[float],
    generator: torch.Generator | None = None,
    keep_background: bool = True,
) -> torch.Tensor:
    """Add zero-mean Gaussian noise with standard deviation ``std`` (one value or one per channel).

    The noise is drawn from ``generator``; with ``keep_background`` it is added only where some channel is
    non-zero, so the background stays 0.
    """
    sd = spatial_dims(image)
    n = image.shape[0]
    s = per_channel(std, n, "std")
    if not torch.all(s >= 0):
        raise InputError(f"noise std must be >= 0, got {s.tolist()}")
    noise = torch.randn(image.shape, generator=generator, dtype=image.dtype)
    noise.mul_(s.to(image.dtype).view(n, *[1] * sd))
    if keep_background:
        noise.mul_(foreground(image).to(image.dtype))
    return image + noise

