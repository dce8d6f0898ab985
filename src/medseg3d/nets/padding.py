"""Pad inputs to the size a network accepts, and remove the padding from its output.

Networks that down-sample ``levels - 1`` times by 2 need spatial sizes that are multiples of
``2 ** (levels - 1)`` (their ``size_multiple`` attribute). :func:`pad_to_multiple` pads a tensor up to the
next multiple, splitting the padding between both ends of every axis, and returns a ``pad_spec`` that
:func:`unpad` uses to cut the network output back to the original size.

Example:
    >>> x = torch.zeros(1, 4, 61, 75, 70)
    >>> padded, pad_spec = pad_to_multiple(x, 8)
    >>> padded.shape[2:]
    torch.Size([64, 80, 72])
    >>> unpad(padded, pad_spec).shape[2:]
    torch.Size([61, 75, 70])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from medseg3d.errors import InputError

PadSpec = tuple[tuple[int, int], ...]


def pad_to_multiple(
    x: torch.Tensor, multiple: int | Sequence[int], mode: str = "constant", value: float = 0.0
) -> tuple[torch.Tensor, PadSpec]:
    """Pad the spatial axes of ``x`` (all axes after the first two) up to multiples of ``multiple``.

    Args:
        x: (N, C, *spatial) tensor.
        multiple: one divisor for every spatial axis, or one per axis.
        mode: ``"constant"`` (fill with ``value``; 0 is the background of z-scored images), ``"reflect"``,
            ``"replicate"`` or ``"circular"``, as in :func:`torch.nn.functional.pad`.
        value: fill value for ``mode="constant"``.

    Returns:
        ``(padded, pad_spec)`` where ``pad_spec`` holds ``(before, after)`` per spatial axis.
    """
    if x.dim() < 3:
        raise InputError(f"pad_to_multiple expects an (N, C, *spatial) tensor, got shape {tuple(x.shape)}")
    spatial = list(x.shape[2:])
    multiples = [int(multiple)] * len(spatial) if isinstance(multiple, int) else [int(m) for m in multiple]
    if len(multiples) != len(spatial) or any(m < 1 for m in multiples):
        raise InputError(
            f"multiple must be a positive int or one per spatial axis ({len(spatial)}), got {multiple}"
        )
    pad_spec = []
    for size, m in zip(spatial, multiples):
        total = (-size) % m
        pad_spec.append((total // 2, total - total // 2))
    if not any(total for pair in pad_spec for total in pair):
        return x, tuple(pad_spec)
    # F.pad lists (before, after) pairs starting from the last axis.
    flat = [amount for pair in reversed(pad_spec) for amount in pair]
    if mode == "constant":
        padded = F.pad(x, flat, mode="constant", value=value)
    else:
        padded = F.pad(x, flat, mode=mode)
    return padded, tuple(pad_spec)


def unpad(y: torch.Tensor, pad_spec: PadSpec) -> torch.Tensor:
    """Remove the padding recorded in ``pad_spec`` from the last ``len(pad_spec)`` axes of ``y``.

    Args:
        y: a tensor whose trailing axes were padded by :func:`pad_to_multiple` (e.g. the network logits).
        pad_spec: the ``pad_spec`` returned by :func:`pad_to_multiple`.

    Returns:
        A view of ``y`` cut back to the original spatial size.
    """
    first_axis = y.dim() - len(pad_spec)
    if first_axis < 0:
        raise InputError(f"pad_spec has {len(pad_spec)} axes but the tensor only {y.dim()}")
    for offset, (before, after) in enumerate(pad_spec):
        axis = first_axis + offset
        y = y.narrow(axis, before, y.shape[axis] - before - after)
    return y
