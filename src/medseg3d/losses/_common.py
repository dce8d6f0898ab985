"""Input checks and small tensor helpers shared by the loss families (private)."""

from __future__ import annotations

import torch

from medseg3d.errors import InputError

REDUCTIONS = ("image", "batch")


def check_reduction(reduction: str) -> str:
    """``reduction`` itself if it is one of :data:`REDUCTIONS`; InputError otherwise."""
    if reduction not in REDUCTIONS:
        raise InputError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}; pick one of them")
    return reduction


def check_logits(logits: torch.Tensor, min_channels: int) -> None:
    """Refuse logits that are not a floating-point (N, C, *spatial) tensor with at least ``min_channels``
    channels.

    Args:
        logits: the network output.
        min_channels: the fewest channels the loss needs (2 for a softmax over classes).

    Raises:
        InputError: one line saying what is wrong.
    """
    if not isinstance(logits, torch.Tensor) or logits.ndim < 3:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise InputError(
            f"logits must be a tensor of shape (N, C, *spatial), got {shape}; add the batch axis"
        )
    if not logits.is_floating_point():
        raise InputError(
            f"logits must be a floating-point tensor, got {logits.dtype}; pass raw network output"
        )
    if logits.shape[1] < min_channels:
        raise InputError(
            f"this loss needs at least {min_channels} channels in logits, got {logits.shape[1]}; "
            "for a single foreground use 2 classes or a region loss"
        )


def check_multiclass(
    logits: torch.Tensor, target: torch.Tensor, ignore_index: int | None
) -> torch.Tensor | None:
    """Validate a (N, C, *S) logits / (N, *S) class-map pair.

    Args:
        logits: the network output (at least 2 channels).
        target: integer class indices in 0..C-1 (or ``ignore_index``).
        ignore_index: a target value whose voxels do not count (None: none).

    Returns:
        The boolean mask of voxels that count (N, *S), or None when no voxel is ignored.

    Raises:
        InputError: shapes that do not match, a target that is not integer, or class indices out of range.
    """
    check_logits(logits, min_channels=2)
    n, c = logits.shape[:2]
    spatial = tuple(logits.shape[2:])
    if not isinstance(target, torch.Tensor) or tuple(target.shape) != (n, *spatial):
        got = tuple(target.shape) if isinstance(target, torch.Tensor) else type(target).__name__
        raise InputError(
            f"target must be a class map of shape {(n, *spatial)} (N, *spatial) to match logits "
            f"{tuple(logits.shape)}, got {got}; pass integer labels without a channel axis"
        )
    if target.is_floating_point() or target.dtype == torch.bool or target.is_complex():
        raise InputError(
            f"target of a multiclass loss must hold integer class indices, got {target.dtype}; "
            "convert it with target.long()"
        )
    valid = None
    if ignore_index is not None:
        valid = target != ignore_index
        bad = valid & ((target < 0) | (target >= c))
    else:
        bad = (target < 0) | (target >= c)
    if bool(bad.any()):
        values = torch.unique(target[bad])[:10].tolist()
        raise InputError(
            f"target holds class values {values} outside 0..{c - 1} (logits have {c} channels); "
            "remap the labels or set ignore_index"
        )
    if valid is not None and bool(valid.all()):
        valid = None
    return valid


def check_region(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Validate a (N, R, *S) logits / target pair and return the target as float in the logits' dtype.

    Args:
        logits: the network output, one channel per region.
        target: region masks of the logits' shape, values in [0, 1].

    Raises:
        InputError: another shape, or values outside [0, 1].
    """
    check_logits(logits, min_channels=1)
    if not isinstance(target, torch.Tensor) or target.shape != logits.shape:
        got = tuple(target.shape) if isinstance(target, torch.Tensor) else type(target).__name__
        raise InputError(
            f"region target must have the shape of logits {tuple(logits.shape)} (N, R, *spatial), got {got}; "
            "build one binary channel per region"
        )
    target = target.to(logits.dtype)
    if bool(((target < 0) | (target > 1)).any()):
        raise InputError("region target values must lie in [0, 1]; pass binary (or soft) region masks")
    return target


def one_hot(
    target: torch.Tensor, n_classes: int, valid: torch.Tensor | None, dtype: torch.dtype
) -> torch.Tensor:
    """(N, *S) class map -> (N, C, *S) one-hot; ignored voxels become all-zero.

    Args:
        target: class indices.
        n_classes: C.
        valid: the voxels that count (None: all).
        dtype: the result's dtype.
    """
    safe = target if valid is None else torch.where(valid, target, torch.zeros_like(target))
    shape = (safe.shape[0], n_classes, *safe.shape[1:])
    # scatter_ into the final dtype avoids F.one_hot's int64 (N, *S, C) intermediate (8x the memory of
    # float32)
    onehot = torch.zeros(shape, dtype=dtype, device=safe.device).scatter_(1, safe.long().unsqueeze(1), 1.0)
    if valid is not None:
        onehot = onehot * valid.unsqueeze(1).to(dtype)
    return onehot


def sum_dims(ndim: int, reduction: str) -> tuple[int, ...]:
    """Axes to sum for per-class statistics: spatial axes ('image') or batch + spatial axes ('batch').

    Args:
        ndim: the number of dimensions of (N, C, *spatial).
        reduction: "image" or anything else (the batch too).
    """
    spatial = tuple(range(2, ndim))
    return spatial if reduction == "image" else (0, *spatial)
