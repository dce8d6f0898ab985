"""Region-based (multilabel) losses for overlapping regions such as BraTS WT / TC / ET.

Each output channel is an independent sigmoid "is this voxel inside region r" prediction; targets are
float or bool masks of shape (N, R, *spatial), which may overlap (ET is inside TC is inside WT).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from medseg3d.errors import InputError
from medseg3d.losses._common import check_reduction, check_region, sum_dims
from medseg3d.losses.dice import soft_dice_per_class


class RegionDiceLoss(nn.Module):
    """Soft Dice on sigmoid probabilities, per region, averaged over regions.

    ``L = mean_r (1 - (2 I_r + s) / (D_r + s))`` with ``I_r = sum_v p_rv t_rv`` and ``D_r = sum_v p_rv +
    sum_v t_rv`` (``squared=False``, the default, as nnU-Net does for BraTS regions) or the sums of squares.
    ``reduction="image"`` averages the per-image losses; ``"batch"`` sums the statistics over the batch
    first, which is gentler on images where a small region is absent.

    Args:
        smooth: added to numerator and denominator; an absent region predicted absent then costs ~0.
        reduction: ``"image"`` or ``"batch"``.
        squared: use ``sum p^2 + sum t^2`` in the denominator.
    """

    kind = "region"

    def __init__(self, smooth: float = 1.0, reduction: str = "image", squared: bool = False) -> None:
        super().__init__()
        if smooth < 0:
            raise InputError(f"smooth must be >= 0, got {smooth}; use a small positive value such as 1.0")
        self.smooth = float(smooth)
        self.reduction = check_reduction(reduction)
        self.squared = squared

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """1 - mean soft Dice over regions of (N, R, *S) logits (sigmoid) against (N, R, *S) region masks."""
        target = check_region(logits, target)
        probs = torch.sigmoid(logits)
        dice = soft_dice_per_class(
            probs, target, sum_dims(logits.ndim, self.reduction), self.squared, self.smooth
        )
        return (1.0 - dice).mean()

    def extra_repr(self) -> str:
        """The loss's settings, for the module's repr."""
        return f"smooth={self.smooth}, reduction={self.reduction!r}, squared={self.squared}"


class RegionBCELoss(nn.Module):
    """Binary cross-entropy on per-channel sigmoids, averaged over every element (batch, channel, voxel).

    ``L = mean -(t log s(x) + (1 - t) log(1 - s(x)))``, computed from logits (numerically stable). With one
    output channel this is the plain binary tumour-vs-background loss of the course project's tiny U-Net
    (train it with ``--labels binary-regions``: one sigmoid channel for the whole tumour).

    Args:
        pos_weight: factor on the positive term (``> 1`` favours sensitivity on small foregrounds); ``None``
            for the plain form.

    Example:
        >>> loss = RegionBCELoss()
        >>> value = loss(torch.zeros(1, 1, 4, 4, 4), torch.ones(1, 1, 4, 4, 4))  # log 2
    """

    kind = "region"

    def __init__(self, pos_weight: float | None = None) -> None:
        super().__init__()
        if pos_weight is not None and not pos_weight > 0:
            raise InputError(f"pos_weight must be > 0, got {pos_weight}; leave it out for the plain loss")
        self.pos_weight = None if pos_weight is None else float(pos_weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean binary cross-entropy of (N, R, *S) logits against (N, R, *S) region masks."""
        target = check_region(logits, target)
        pos_weight = None
        if self.pos_weight is not None:
            pos_weight = torch.tensor(self.pos_weight, dtype=logits.dtype, device=logits.device)
        return F.binary_cross_entropy_with_logits(logits, target, pos_weight=pos_weight)

    def extra_repr(self) -> str:
        """The loss's settings, for the module's repr."""
        return f"pos_weight={self.pos_weight}"


class RegionDiceBCELoss(nn.Module):
    """``dice_weight * RegionDiceLoss + bce_weight * BCE``, both on per-channel sigmoids.

    The BCE term is :func:`torch.nn.functional.binary_cross_entropy_with_logits` averaged over every element
    (batch, region and voxel).

    Args:
        bce_weight: factor of the binary cross-entropy term.
        dice_weight: factor of the Dice term.
        smooth, reduction, squared: passed to :class:`RegionDiceLoss`.

    Example:
        >>> loss = RegionDiceBCELoss()
        >>> value = loss(torch.randn(1, 3, 8, 8, 8), torch.rand(1, 3, 8, 8, 8) > 0.5)
    """

    kind = "region"

    def __init__(
        self,
        bce_weight: float = 1.0,
        dice_weight: float = 1.0,
        smooth: float = 1.0,
        reduction: str = "image",
        squared: bool = False,
    ) -> None:
        super().__init__()
        if bce_weight < 0 or dice_weight < 0:
            raise InputError(
                f"loss weights must be >= 0, got bce_weight={bce_weight}, dice_weight={dice_weight}"
            )
        self.bce_weight = float(bce_weight)
        self.dice_weight = float(dice_weight)
        self.dice = RegionDiceLoss(smooth=smooth, reduction=reduction, squared=squared)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The weighted sum of the region Dice loss and the binary cross-entropy, (N, R, *S) against region
        masks."""
        target = check_region(logits, target)
        bce = F.binary_cross_entropy_with_logits(logits, target)
        return self.dice_weight * self.dice(logits, target) + self.bce_weight * bce

    def extra_repr(self) -> str:
        """The loss's settings, for the module's repr."""
        return f"bce_weight={self.bce_weight}, dice_weight={self.dice_weight}"
