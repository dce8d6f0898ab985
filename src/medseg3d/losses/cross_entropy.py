"""Categorical cross-entropy, plain or class-weighted."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from medseg3d.errors import InputError
from medseg3d.losses._common import check_multiclass


def frequency_weights(
    target: torch.Tensor, n_classes: int, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """Inverse-frequency class weights from the voxels of one batch.

    With ``n_c`` voxels of class ``c`` among the ``V`` counted (non-ignored) voxels and ``K`` classes
    present::

        w_c = V / (K * n_c)  if n_c > 0,   w_c = 0 otherwise.

    They are normalised so that ``sum_c w_c n_c = V``: the weighted voxel mean then equals the mean, over the
    classes present, of each class's mean cross-entropy, whatever the class sizes.

    Args:
        target: (N, *S) class indices.
        n_classes: the number of classes.
        valid: the voxels that count (None: all).

    Returns:
        (n_classes,) weights.
    """
    labels = target if valid is None else target[valid]
    counts = torch.bincount(labels.reshape(-1).long(), minlength=n_classes)[:n_classes].to(torch.float64)
    present = counts > 0
    n_present = int(present.sum())
    weights = torch.zeros(n_classes, dtype=torch.float64, device=target.device)
    if n_present:
        weights[present] = counts.sum() / (n_present * counts[present])
    return weights


class CrossEntropyLoss(nn.Module):
    """Categorical cross-entropy on softmax, averaged over voxels.

    ``weight=None``: ``mean_v -log p_{t_v}(v)`` over the counted voxels (the authors' form).
    With weights ``w`` (given, or ``"frequency"``): the weighted mean
    ``sum_v w_{t_v} (-log p_{t_v}(v)) / sum_v w_{t_v}``, as :func:`torch.nn.functional.cross_entropy` defines
    it. ``"frequency"`` recomputes ``w`` from each batch with :func:`frequency_weights`
    (``w_c = V / (K n_c)``), so the loss is the mean over present classes of the per-class mean
    cross-entropy.

    Args:
        weight: ``None``, ``"frequency"`` or one non-negative weight per class.
        ignore_index: voxels of ``target`` with this value are left out (numerator and denominator).

    Example:
        >>> loss = CrossEntropyLoss(weight="frequency", ignore_index=255)
    """

    kind = "multiclass"

    def __init__(self, weight: None | str | Sequence[float] = None, ignore_index: int | None = None) -> None:
        super().__init__()
        self.frequency = False
        fixed = None
        if isinstance(weight, str):
            if weight != "frequency":
                raise InputError(f"weight must be None, 'frequency' or a list of numbers, got {weight!r}")
            self.frequency = True
        elif weight is not None:
            fixed = torch.as_tensor(list(weight), dtype=torch.float32)
            if fixed.ndim != 1 or not torch.isfinite(fixed).all() or (fixed < 0).any() or fixed.sum() <= 0:
                raise InputError(f"class weights must be finite, >= 0 and not all 0, got {list(weight)}")
        self.register_buffer("weight", fixed, persistent=False)
        self.ignore_index = ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of (N, C, *S) logits against (N, *S) class indices, ignored voxels left out."""
        valid = check_multiclass(logits, target, self.ignore_index)
        n_classes = logits.shape[1]
        weight = self.weight
        if self.frequency:
            weight = frequency_weights(target, n_classes, valid)
        if weight is not None:
            if weight.numel() != n_classes:
                raise InputError(
                    f"{weight.numel()} class weights given but logits have {n_classes} channels; "
                    "give one weight per class"
                )
            weight = weight.to(device=logits.device, dtype=logits.dtype)
        if valid is not None and not bool(valid.any()):
            return logits.sum() * 0.0  # every voxel ignored: nothing to learn, and no 0 / 0
        ignore = -100 if self.ignore_index is None else self.ignore_index
        return F.cross_entropy(logits, target.long(), weight=weight, ignore_index=ignore)

    def extra_repr(self) -> str:
        """The loss's settings, for the module's repr."""
        weight = "frequency" if self.frequency else (None if self.weight is None else self.weight.tolist())
        return f"weight={weight}, ignore_index={self.ignore_index}"
