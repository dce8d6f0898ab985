"""Deterministic augmentation ops: every parameter explicit, inputs never modified.

Each op returns ``(image, label)`` or ``image`` and may return an input object itself when there is nothing
to do. ``image`` is (C, X, Y[, Z]) float; ``label`` is (X, Y[, Z]) class indices, (R, X, Y[, Z]) region
masks, or None.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from medseg3d.errors import InputError

from ._checks import brain_mask, check_axes, foreground, per_channel, spatial_dims
from .resample import IDENTITY_ATOL, linear_map, resample, resample_label

__all__ = [
    "contrast",
    "flip",
    "gamma",
    "gaussian_blur",
    "gaussian_kernel",
    "gaussian_noise",
    "intensity",
    "low_resolution",
    "rotate_scale",
    "thick_slices",
]


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
    image: torch.Tensor,
    gamma: float | Sequence[float],
    mask: torch.Tensor | None = None,
    invert: bool = False,
) -> torch.Tensor:
    """Gamma correction per channel on intensities rescaled to [0, 1] inside the mask.

    Each channel's values inside ``mask`` are mapped to [0, 1] by their min and max, raised to ``gamma`` and
    mapped back, so the min and max are kept; outside the mask the output is 0.

    Args:
        image: (C, X, Y[, Z]) float tensor.
        gamma: one exponent > 0, or one per channel; 1 leaves the channel unchanged.
        mask: (X, Y[, Z]) bool foreground; default: voxels non-zero in any channel.
        invert: apply the gamma to the inverted image (nnU-Net's ``invert_image``): the values are measured
            down from the max, ``hi - ((hi - x) / span) ** gamma * span``, so gamma < 1 darkens instead.
    """
    spatial_dims(image)
    g = per_channel(gamma, image.shape[0], "gamma")
    if not torch.all(g > 0):
        raise InputError(f"gamma must be positive, got {g.tolist()}")
    if torch.all(g == 1):
        return image
    mask = brain_mask(image, mask, "gamma")
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
        if invert:
            y = ((hi - x) / span).clamp_(0, 1).pow_(gc).mul_(span).neg_().add_(hi)
        else:
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

    Args:
        image: a float tensor (C, X, Y[, Z]).
        std: the standard deviation, in the image's intensity units; one value or one per channel, >= 0.
        generator: the random stream (None: torch's global one).
        keep_background: add the noise only where some channel is non-zero, so the background stays 0.

    Returns:
        A new tensor.

    Raises:
        InputError: a bad image, or a negative std.
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


def _restore_background(out: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """``out`` with the input's background (0 in every channel) set back to 0, in place."""
    background = ~foreground(image)
    if bool(background.any()):
        out.masked_fill_(background.expand_as(out), 0.0)
    return out


def _nonnegative(value: float | Sequence[float], n: int, name: str, hint: str) -> torch.Tensor:
    v = per_channel(value, n, name)
    if not bool(torch.all(torch.isfinite(v))) or not bool(torch.all(v >= 0)):
        raise InputError(f"{name} must be finite and >= 0, got {v.tolist()}; {hint}")
    return v


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """The normalised 1D Gaussian of standard deviation ``sigma`` voxels, radius ceil(3 sigma), float64."""
    radius = math.ceil(3 * sigma)
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    w = torch.exp(-0.5 * (t / sigma) ** 2)
    return w / w.sum()


def _blur_channel(x: torch.Tensor, weights: list[float]) -> torch.Tensor:
    """Separable convolution of one channel along every axis, replicate padding: sums of shifted views.

    For kernels of <= 7 taps this is faster than ``conv1d`` (no transposing copies) and ``conv3d`` on one
    CPU thread (measured: docs/results.md, "Figures quoted by the code"), and a delta comes out as the exact
    float32 product of the 1D kernels.
    """
    radius = len(weights) // 2
    for axis in range(x.ndim):
        n = x.shape[axis]
        edge = [radius if a == axis else size for a, size in enumerate(x.shape)]
        padded = torch.cat(
            [x.narrow(axis, 0, 1).expand(edge), x, x.narrow(axis, n - 1, 1).expand(edge)], axis
        )
        out = padded.narrow(axis, 0, n) * weights[0]
        for k in range(1, len(weights)):
            out.add_(padded.narrow(axis, k, n), alpha=weights[k])
        x = out
    return x


def gaussian_blur(
    image: torch.Tensor, sigma: float | Sequence[float], keep_background: bool = True
) -> torch.Tensor:
    """Gaussian blur of each channel, isotropic, with standard deviation ``sigma`` voxels.

    Separable: a normalised kernel of radius ceil(3 sigma) along each spatial axis; the volume edge is
    padded by replicating the outermost voxels, so a constant channel stays constant everywhere.

    Args:
        image: (C, X, Y[, Z]) float tensor.
        sigma: one standard deviation >= 0 (voxels), or one per channel; 0 leaves the channel unchanged.
        keep_background: set the input's background (0 in every channel) back to 0 afterwards, so the brain
            mask the other ops and the network see is unchanged; the brain's rim is still blurred with the
            zeros around it, as a blurred acquisition would be.

    Example:
        >>> out = gaussian_blur(torch.randn(4, 16, 16, 16), [0.5, 1.0, 0.0, 0.7])
    """
    spatial_dims(image)
    s = _nonnegative(sigma, image.shape[0], "blur sigma", "use 0 to leave a channel unchanged")
    if not bool(torch.any(s > 0)):
        return image
    out = image.clone()
    for ch in range(image.shape[0]):
        if float(s[ch]) > 0:
            weights = gaussian_kernel(float(s[ch])).tolist()
            out[ch] = _blur_channel(image[ch], weights)
    return _restore_background(out, image) if keep_background else out


def low_resolution(
    image: torch.Tensor, factor: float | Sequence[float], keep_background: bool = True
) -> torch.Tensor:
    """Simulate a coarser acquisition: down-sample each channel by ``factor``, then up-sample back.

    As nnU-Net's SimulateLowResolutionTransform: nearest-neighbour down to ``round(n / factor)`` voxels per
    axis (at least 1; torch's ``nearest-exact``, which picks the voxel nearest each coarse voxel's centre, so
    the content does not drift towards the origin), then linear interpolation (trilinear in 3D, bilinear in
    2D, ``align_corners=False``) back to the original shape. The shape and dtype are kept.

    Args:
        image: (C, X, Y[, Z]) float tensor.
        factor: one down-sampling factor >= 1, or one per channel; 1 leaves the channel unchanged.
        keep_background: set the input's background (0 in every channel) back to 0 afterwards.

    Example:
        >>> out = low_resolution(torch.randn(4, 16, 16, 16), [1.0, 1.6, 2.0, 1.0])
    """
    sd = spatial_dims(image)
    f = per_channel(factor, image.shape[0], "low-resolution factor")
    if not bool(torch.all(torch.isfinite(f))) or not bool(torch.all(f >= 1)):
        raise InputError(f"low-resolution factor must be finite and >= 1, got {f.tolist()}; 1 = unchanged")
    if not bool(torch.any(f > 1)):
        return image
    shape = tuple(image.shape[1:])
    mode = "trilinear" if sd == 3 else "bilinear"
    out = image.clone()
    for ch in range(image.shape[0]):
        fc = float(f[ch])
        if fc == 1.0:
            continue
        coarse_shape = tuple(max(1, round(n / fc)) for n in shape)
        coarse = F.interpolate(image[ch][None, None], size=coarse_shape, mode="nearest-exact")
        out[ch] = F.interpolate(coarse, size=shape, mode=mode, align_corners=False)[0, 0]
    return _restore_background(out, image) if keep_background else out


def thick_slices(
    image: torch.Tensor,
    thickness: float | Sequence[float],
    axis: int | Sequence[int],
    keep_background: bool = True,
) -> torch.Tensor:
    """Simulate an acquisition in thick slices along one axis, resampled back to the grid: each channel is
    averaged over slabs ``thickness`` voxels thick along its ``axis`` (area averaging, so a non-integer
    thickness weighs the voxels a slab partly covers by their share), then interpolated linearly back to
    the original shape along that axis. The other axes keep their resolution, as in a raw scan of 3-5.5 mm
    slices with about 1 mm in-plane that the raw pipeline resamples (:mod:`medseg3d.raw.simulate`); unlike
    :func:`low_resolution`, which coarsens every axis by nearest-neighbour sampling.

    Args:
        image: (C, X, Y[, Z]) float tensor.
        thickness: slab thickness in voxels (>= 1; 1 leaves the channel unchanged), one or one per channel.
        axis: the slice axis (0 = X ...), one or one per channel: each sequence of a raw study may have been
            acquired along its own axis.
        keep_background: set the input's background (0 in every channel) back to 0 afterwards.

    Returns:
        A tensor of ``image``'s shape and dtype.

    Raises:
        InputError: a thickness below 1 or not finite, or an axis the image does not have.

    Example:
        >>> out = thick_slices(torch.randn(4, 16, 16, 16), [1.0, 2.5, 3.0, 1.0], [2, 2, 0, 2])
    """
    sd = spatial_dims(image)
    n = image.shape[0]
    t = per_channel(thickness, n, "slice thickness")
    if not bool(torch.all(torch.isfinite(t))) or not bool(torch.all(t >= 1)):
        raise InputError(f"slice thickness must be finite and >= 1 voxel, got {t.tolist()}; 1 = unchanged")
    axes = [int(axis)] * n if isinstance(axis, (int, np.integer)) else [int(a) for a in axis]
    if len(axes) != n or any(not 0 <= a < sd for a in axes):
        raise InputError(f"slice axis must be one of 0..{sd - 1} (one, or one per channel), got {axis!r}")
    if not bool(torch.any(t > 1)):
        return image
    mode = "trilinear" if sd == 3 else "bilinear"
    shape = tuple(image.shape[1:])
    out = image.clone()
    for ch in range(n):
        tc = float(t[ch])
        if tc == 1.0:
            continue
        coarse_shape = list(shape)
        coarse_shape[axes[ch]] = max(1, round(shape[axes[ch]] / tc))
        coarse = F.interpolate(image[ch][None, None], size=tuple(coarse_shape), mode="area")
        out[ch] = F.interpolate(coarse, size=shape, mode=mode, align_corners=False)[0, 0]
    return _restore_background(out, image) if keep_background else out


def contrast(
    image: torch.Tensor, factor: float | Sequence[float], mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Contrast per channel: ``(x - mean) * factor + mean`` inside the mask, clipped to the original range.

    As nnU-Net's ContrastAugmentationTransform (``preserve_range=True``), with the mean, min and max taken
    over the mask (the brain) rather than the whole patch. A factor below 1 keeps the mean (no value leaves
    the range); above 1 the clipping to [min, max] may move it. Outside the mask the output is 0.

    Args:
        image: (C, X, Y[, Z]) float tensor.
        factor: one factor > 0, or one per channel; 1 leaves the channel unchanged.
        mask: (X, Y[, Z]) bool foreground; default: voxels non-zero in any channel.

    Example:
        >>> out = contrast(torch.randn(4, 16, 16, 16), [0.8, 1.2, 1.0, 1.0])
    """
    spatial_dims(image)
    f = per_channel(factor, image.shape[0], "contrast factor")
    if not bool(torch.all(torch.isfinite(f))) or not bool(torch.all(f > 0)):
        raise InputError(f"contrast factor must be finite and > 0, got {f.tolist()}; 1 = unchanged")
    if bool(torch.all(f == 1)):
        return image
    mask = brain_mask(image, mask, "contrast")
    if not bool(mask.any()):
        return image
    out = image.clone()
    zero = torch.zeros((), dtype=image.dtype)
    inf = torch.tensor(float("inf"), dtype=image.dtype)
    count = int(mask.sum())
    for ch in range(image.shape[0]):
        fc = float(f[ch])
        if fc == 1.0:
            continue
        # reductions over torch.where, not image[ch][mask]: boolean indexing gathers a copy (5x slower)
        x = image[ch]
        total = torch.where(mask, x, zero).double().sum()  # float64: the mean to float32 rounding
        mean = (total / count).to(image.dtype)
        lo = torch.where(mask, x, inf).amin()
        hi = torch.where(mask, x, -inf).amax()
        y = (x - mean).mul_(fc).add_(mean).clamp_(lo, hi)
        out[ch] = torch.where(mask, y, zero)
    return out
