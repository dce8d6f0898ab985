"""Multiclass focal loss (Lin et al. 2017) on softmax probabilities."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from medseg3d.errors import InputError
from medseg3d.losses._common import check_multiclass


class FocalLoss(nn.Module):
    """Focal loss ``mean_v -alpha_{t_v} (1 - p_{t_v})^gamma log p_{t_v}`` over the counted voxels.

    ``p_t`` is the softmax probability of the voxel's true class. The mean is a plain mean over the counted
    (non-ignored) voxels, not divided by the sum of ``alpha``. With ``gamma=0`` and no ``alpha`` it equals
    the unweighted cross-entropy.

    Args:
        gamma: focusing exponent (>= 0); 2 is the value of Lin et al.
        alpha: class balance factor. ``None``: 1 for every class. A float ``a`` in [0, 1]: ``1 - a`` for the
            background class 0 and ``a`` for every other class (the binary RetinaNet convention carried over
            to several foreground classes). A list: one factor per class.
        ignore_index: voxels of ``target`` with this value are left out.

    Example:
        >>> loss = FocalLoss(gamma=2.0, alpha=0.75)
    """

    kind = "multiclass"

    def __init__(
        self,
        gamma: float = 2.0,
        alpha: None | float | Sequence[float] = None,
        ignore_index: int | None = None,
    ) -> None:
        super().__init__()
        if gamma < 0:
            raise InputError(f"focal gamma must be >= 0, got {gamma}; 2.0 is the usual value")
        self.gamma = float(gamma)
        self.alpha_scalar: float | None = None
        alpha_list = None
        if isinstance(alpha, (int, float)):
            if not 0.0 <= float(alpha) <= 1.0:
                raise InputError(
                    f"a scalar focal alpha must lie in [0, 1], got {alpha}; or give one per class"
                )
            self.alpha_scalar = float(alpha)
        elif alpha is not None:
            alpha_list = torch.as_tensor(list(alpha), dtype=torch.float32)
            if alpha_list.ndim != 1 or not torch.isfinite(alpha_list).all() or (alpha_list < 0).any():
                raise InputError(f"focal alpha per class must be finite and >= 0, got {list(alpha)}")
        self.register_buffer("alpha", alpha_list, persistent=False)
        self.ignore_index = ignore_index

    def _alpha(self, n_classes: int, like: torch.Tensor) -> torch.Tensor | None:
        if self.alpha_scalar is not None:
            alpha = torch.full((n_classes,), self.alpha_scalar, dtype=like.dtype, device=like.device)
            alpha[0] = 1.0 - self.alpha_scalar
            return alpha
        if self.alpha is None:
            return None
        if self.alpha.numel() != n_classes:
            raise InputError(
                f"{self.alpha.numel()} focal alpha values given but logits have {n_classes} channels; "
                "give one per class"
            )
        return self.alpha.to(device=like.device, dtype=like.dtype)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean focal loss of (N, C, *S) logits against (N, *S) class indices, ignored voxels left out."""
        valid = check_multiclass(logits, target, self.ignore_index)
        safe = target.long() if valid is None else torch.where(valid, target, torch.zeros_like(target)).long()
        log_p = torch.log_softmax(logits, dim=1).gather(1, safe.unsqueeze(1)).squeeze(1)
        # -expm1(log p) = 1 - p without cancellation; the floor keeps d/dp (1 - p)^gamma finite for gamma < 1.
        one_minus_p = (-torch.expm1(log_p)).clamp_min(torch.finfo(log_p.dtype).tiny)
        loss = -(one_minus_p**self.gamma) * log_p
        alpha = self._alpha(logits.shape[1], loss)
        if alpha is not None:
            loss = loss * alpha[safe]
        if valid is None:
            return loss.mean()
        if not bool(valid.any()):
            return logits.sum() * 0.0
        return loss[valid].mean()

    def extra_repr(self) -> str:
        """The loss's settings, for the module's repr."""
        alpha = self.alpha_scalar if self.alpha is None else self.alpha.tolist()
        return f"gamma={self.gamma}, alpha={alpha}, ignore_index={self.ignore_index}"
