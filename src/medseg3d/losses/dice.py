"""Soft Dice losses on softmax probabilities (multiclass, one class map per image)."""

from __future__ import annotations

import torch
from torch import nn

from medseg3d.errors import InputError
from medseg3d.losses._common import check_multiclass, check_reduction, one_hot, sum_dims


def soft_dice_per_class(
    probs: torch.Tensor, onehot: torch.Tensor, dims: tuple[int, ...], squared: bool, smooth: float
) -> torch.Tensor:
    """Soft Dice coefficient per class, ``(2 I + s) / (D + s)``, summing over ``dims``.

    A 0 / 0 (class absent from both and ``smooth == 0``) gives 0, i.e. the class counts as fully wrong.

    Args:
        probs: (N, C, *S) probabilities.
        onehot: the one-hot target of the same shape.
        dims: the axes summed (:func:`sum_dims`).
        squared: ``D`` is ``sum p^2 + sum t^2`` (V-Net), else ``sum p + sum t``.
        smooth: ``s``.

    Returns:
        The Dice per class (and per image for the 'image' reduction).
    """
    intersection = (probs * onehot).sum(dims)
    if squared:
        denominator = (probs * probs).sum(dims) + (onehot * onehot).sum(dims)
    else:
        denominator = probs.sum(dims) + onehot.sum(dims)
    return (2.0 * intersection + smooth) / (denominator + smooth).clamp_min(
        torch.finfo(denominator.dtype).tiny
    )


class DiceLoss(nn.Module):
    """Soft Dice loss, averaged over classes: ``mean_c (1 - (2 I_c + s) / (D_c + s))``.

    ``I_c = sum_v p_cv t_cv``; ``D_c = sum_v p_cv^2 + sum_v t_cv^2`` for ``squared=True`` (the V-Net form the
    authors coded) or ``sum_v p_cv + sum_v t_cv`` for ``squared=False``. ``reduction="image"`` computes the
    loss per image and averages over the batch; ``"batch"`` sums the statistics over the whole batch first.
    The authors summed over classes; this class averages (divide their value by ``C``), so it lies in [0, 1].

    Args:
        squared: V-Net form (True) or plain form (False).
        reduction: ``"image"`` or ``"batch"``.
        smooth: added to numerator and denominator; 0 reproduces the unsmoothed form (an absent class then
            costs 1).
        include_background: count class 0.
        ignore_index: voxels of ``target`` with this value are left out of every sum.

    Example:
        >>> loss = DiceLoss(squared=False)
        >>> value = loss(torch.randn(2, 4, 8, 8, 8), torch.randint(0, 4, (2, 8, 8, 8)))
    """

    kind = "multiclass"

    def __init__(
        self,
        squared: bool = True,
        reduction: str = "image",
        smooth: float = 1.0,
        include_background: bool = True,
        ignore_index: int | None = None,
    ) -> None:
        super().__init__()
        if smooth < 0:
            raise InputError(f"smooth must be >= 0, got {smooth}; use 0 for the unsmoothed form")
        self.squared = squared
        self.reduction = check_reduction(reduction)
        self.smooth = float(smooth)
        self.include_background = include_background
        self.ignore_index = ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """1 - mean soft Dice over classes of (N, C, *S) logits (softmax) against (N, *S) class indices."""
        valid = check_multiclass(logits, target, self.ignore_index)
        probs = torch.softmax(logits, dim=1)
        onehot = one_hot(target, logits.shape[1], valid, probs.dtype)
        if valid is not None:
            probs = probs * valid.unsqueeze(1).to(probs.dtype)
        if not self.include_background:
            probs, onehot = probs[:, 1:], onehot[:, 1:]
        dice = soft_dice_per_class(
            probs, onehot, sum_dims(logits.ndim, self.reduction), self.squared, self.smooth
        )
        return (1.0 - dice).mean()

    def extra_repr(self) -> str:
        """The loss's settings, for the module's repr."""
        return f"squared={self.squared}, reduction={self.reduction!r}, smooth={self.smooth}"
