"""Input checks shared by the augmentation ops: one line per problem, saying what to do."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from medseg3d.errors import InputError


def spatial_dims(image: torch.Tensor, label: torch.Tensor | None = None) -> int:
    """Check a sample and return its number of spatial dimensions (2 or 3).

    Args:
        image: a float tensor (C, X, Y) or (C, X, Y, Z).
        label: None, or a tensor of the image's spatial shape: class indices (X, Y[, Z]) or masks (R, X, Y[,
            Z]).

    Raises:
        InputError: either is not a tensor, the image is not floating point, or the shapes do not fit.
    """
    if not isinstance(image, torch.Tensor):
        raise InputError(
            f"image must be a torch.Tensor, got {type(image).__name__}; convert it with torch.from_numpy"
        )
    if image.ndim not in (3, 4):
        raise InputError(
            f"image must have shape (C, X, Y) or (C, X, Y, Z), got {tuple(image.shape)}; add a channel axis"
        )
    if not image.is_floating_point():
        raise InputError(
            f"image must be a floating-point tensor, got {image.dtype}; convert it with .float()"
        )
    sd = image.ndim - 1
    if label is not None:
        if not isinstance(label, torch.Tensor):
            raise InputError(
                f"label must be a torch.Tensor or None, got {type(label).__name__}; "
                "convert it with torch.from_numpy"
            )
        if label.ndim not in (sd, sd + 1):
            raise InputError(
                f"label must have shape {'(X, Y)' if sd == 2 else '(X, Y, Z)'} or (R, ...) for an image of "
                f"shape {tuple(image.shape)}, got {tuple(label.shape)}"
            )
        if tuple(label.shape[-sd:]) != tuple(image.shape[1:]):
            raise InputError(
                f"image spatial shape {tuple(image.shape[1:])} and label spatial shape "
                f"{tuple(label.shape[-sd:])} differ; crop or resample both the same way"
            )
    return sd


def check_axes(axes: int | Sequence[int], sd: int) -> list[int]:
    """Spatial axes as non-negative indices (negative ones count from the end).

    Args:
        axes: one axis or several.
        sd: the number of spatial dimensions.

    Raises:
        InputError: an axis outside -sd..sd-1.
    """
    axes = [axes] if isinstance(axes, (int, np.integer)) else list(axes)
    out = []
    for a in axes:
        if not -sd <= int(a) < sd:
            raise InputError(f"axis {a} is out of range for {sd} spatial dimensions; use 0..{sd - 1}")
        out.append(int(a) % sd)
    return out


def per_channel(value: float | Sequence[float], n: int, name: str) -> torch.Tensor:
    """A scalar or one value per channel, as a float64 tensor of length n.

    Args:
        value: one number (for every channel) or n numbers.
        n: the number of channels.
        name: the parameter's name, for the error.

    Raises:
        InputError: neither 1 nor n values.
    """
    v = torch.as_tensor(value, dtype=torch.float64).flatten()
    if v.numel() == 1:
        v = v.expand(n)
    if v.numel() != n:
        raise InputError(f"{name} needs 1 or {n} values (one per channel), got {v.numel()}")
    return v


def foreground(image: torch.Tensor) -> torch.Tensor:
    """Voxels that are non-zero in any channel: the brain, when the background was set to exactly 0."""
    return (image != 0).any(dim=0)


def brain_mask(image: torch.Tensor, mask: torch.Tensor | None, what: str) -> torch.Tensor:
    """``mask`` as booleans (checked to match ``image``'s spatial shape), else :func:`foreground`.

    Args:
        image: the (C, *spatial) image.
        mask: a spatial-shaped mask, or None (the foreground: some channel non-zero).
        what: the op's name, for the error.

    Raises:
        InputError: the mask's shape differs from the image's spatial shape.
    """
    if mask is None:
        return foreground(image)
    if tuple(mask.shape) != tuple(image.shape[1:]):
        raise InputError(
            f"{what} mask shape {tuple(mask.shape)} differs from image spatial shape {tuple(image.shape[1:])}"
        )
    return mask.bool()
