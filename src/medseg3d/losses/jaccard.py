"""Jaccard (Tanimoto) losses on softmax probabilities.

Two families:

* :class:`JaccardLoss`: per class ``1 - I_c / (sum p_c^2 + sum t_c^2 - I_c)``, summed over classes. In
  ``mode="paper"`` it is exactly the loss Kayalibay et al. (2017) trained with; ``mode="smooth"`` adds a
  smoothing term that fixes the paper form's behaviour on classes absent from an image.
* :class:`SoftJaccardMinMaxLoss`: the seed's multi-class Jaccard ``1 - sum min(P, T) / sum max(P, T)``,
  where the sums run jointly over voxels and classes.

The flaw of the paper form. A class absent from the target has ``I_c = 0``, so its term is ``1 - 0 = 1``
however small its predicted probabilities are: an image that holds only background (or lacks some tumour
class) costs about one unit per absent class even when the prediction is nearly perfect, and the gradient
pushes the absent class's probabilities towards exactly zero instead of rewarding the correct prediction.
With ``mode="smooth"`` the term becomes ``1 - (I_c + s) / (denominator + s)``, which tends to 0 when the class
is absent from both target and prediction (``tests/losses/test_jaccard.py`` checks both behaviours).
"""

from __future__ import annotations

import torch
from torch import nn

from medseg3d.errors import InputError
from medseg3d.losses._common import check_multiclass, check_reduction, one_hot, sum_dims

MODES = ("paper", "smooth")


def _probabilities_and_targets(
    logits: torch.Tensor,
    target: torch.Tensor,
    ignore_index: int | None,
    include_background: bool,
    clip: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    valid = check_multiclass(logits, target, ignore_index)
    probs = torch.softmax(logits, dim=1)
    if clip:
        probs = probs.clamp(clip, 1.0 - clip)
    onehot = one_hot(target, logits.shape[1], valid, probs.dtype)
    if valid is not None:
        probs = probs * valid.unsqueeze(1).to(probs.dtype)
    if not include_background:
        probs, onehot = probs[:, 1:], onehot[:, 1:]
    return probs, onehot


class JaccardLoss(nn.Module):
    """Tanimoto-form Jaccard loss, summed over classes (Kayalibay et al. 2017).

    Per image (``reduction="image"``), with softmax probabilities ``p``, one-hot targets ``t`` and
    ``I_c = sum_v p_cv t_cv``::

        L = sum_c (1 - I_c / (sum_v p_cv^2 + sum_v t_cv^2 - I_c))          # mode="paper"
        L = sum_c (1 - (I_c + s) / (sum_v p_cv^2 + sum_v t_cv^2 - I_c + s))  # mode="smooth"

    then averaged over the batch. ``reduction="batch"`` sums ``I_c`` and the squares over the whole batch
    first (one value for the batch). The loss lies in ``[0, C]`` (``C`` = classes counted); it is a sum, not
    a mean, over classes, as the authors coded it.

    Args:
        mode: ``"paper"`` (the authors' form: probabilities clipped to ``[clip, 1 - clip]``, no smoothing) or
            ``"smooth"`` (adds ``smooth`` to numerator and denominator; see the module docstring for why).
        reduction: ``"image"`` or ``"batch"``.
        clip: probability clipping bound (the authors used 1e-8; note ``1 - 1e-8`` rounds to 1 in float32);
            ``0`` or ``None`` disables clipping. Applied in both modes.
        smooth: smoothing term of ``mode="smooth"``; ignored in ``mode="paper"``.
        include_background: count class 0 (the paper does).
        ignore_index: voxels of ``target`` with this value are left out of every sum.

    Example:
        >>> loss = JaccardLoss()  # the paper's loss
        >>> value = loss(torch.randn(1, 5, 8, 8, 8), torch.randint(0, 5, (1, 8, 8, 8)))
    """

    kind = "multiclass"

    def __init__(
        self,
        mode: str = "paper",
        reduction: str = "image",
        clip: float | None = 1e-8,
        smooth: float = 1.0,
        include_background: bool = True,
        ignore_index: int | None = None,
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise InputError(f"JaccardLoss mode must be one of {MODES}, got {mode!r}; pick one of them")
        if smooth < 0 or (clip is not None and not 0 <= clip < 0.5):
            raise InputError(f"need smooth >= 0 and 0 <= clip < 0.5, got smooth={smooth}, clip={clip}")
        self.mode = mode
        self.reduction = check_reduction(reduction)
        self.clip = clip
        self.smooth = float(smooth)
        self.include_background = include_background
        self.ignore_index = ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """1 - mean soft Jaccard over classes of (N, C, *S) logits (softmax) against (N, *S) class indices."""
        probs, onehot = _probabilities_and_targets(
            logits, target, self.ignore_index, self.include_background, self.clip
        )
        dims = sum_dims(logits.ndim, self.reduction)
        intersection = (probs * onehot).sum(dims)
        denominator = (probs * probs).sum(dims) + (onehot * onehot).sum(dims) - intersection
        if self.mode == "paper":
            # Only a class absent from target and (fully clipped-away) prediction can reach 0 / 0; it counts
            # 1.
            ratio = intersection / denominator.clamp_min(torch.finfo(denominator.dtype).tiny)
        else:
            ratio = (intersection + self.smooth) / (denominator + self.smooth).clamp_min(
                torch.finfo(denominator.dtype).tiny
            )
        return (1.0 - ratio).sum(-1).mean()

    def extra_repr(self) -> str:
        """The loss's settings, for the module's repr."""
        return (
            f"mode={self.mode!r}, reduction={self.reduction!r}, include_background={self.include_background}"
        )


class SoftJaccardMinMaxLoss(nn.Module):
    """The seed's multi-class Jaccard: ``1 - (sum min(P, T) + s) / (sum max(P, T) + s)``.

    The sums run jointly over voxels and classes (of one image for ``reduction="image"``, then averaged over
    the batch; of the whole batch for ``reduction="batch"``). ``P`` are softmax probabilities, ``T`` one-hot
    targets. With ``include_background=False`` an image without foreground scores ``1 - s / (FP + s)``, i.e.
    close to the maximum 1 as soon as the false-positive mass ``FP`` exceeds ``s`` (the seed's flaw); with
    background included (the default) such an image with a nearly right prediction scores close to 0.

    Args:
        smooth: added to numerator and denominator; keeps an all-empty comparison at loss 0 instead of 0 / 0.
        reduction: ``"image"`` or ``"batch"``.
        include_background: count class 0.
        ignore_index: voxels of ``target`` with this value are left out.
    """

    kind = "multiclass"

    def __init__(
        self,
        smooth: float = 1.0,
        reduction: str = "image",
        include_background: bool = True,
        ignore_index: int | None = None,
    ) -> None:
        super().__init__()
        if smooth < 0:
            raise InputError(f"smooth must be >= 0, got {smooth}; use a small positive value such as 1.0")
        self.smooth = float(smooth)
        self.reduction = check_reduction(reduction)
        self.include_background = include_background
        self.ignore_index = ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """1 - soft Jaccard as sum(min) / sum(max) of probabilities and one-hot targets, (N, C, *S) against
        (N, *S)."""
        probs, onehot = _probabilities_and_targets(logits, target, self.ignore_index, self.include_background)
        dims = tuple(range(1, logits.ndim)) if self.reduction == "image" else tuple(range(logits.ndim))
        smaller = torch.minimum(probs, onehot).sum(dims)
        larger = torch.maximum(probs, onehot).sum(dims)
        ratio = (smaller + self.smooth) / (larger + self.smooth).clamp_min(torch.finfo(larger.dtype).tiny)
        return (1.0 - ratio).mean()

    def extra_repr(self) -> str:
        """The loss's settings, for the module's repr."""
        return (
            f"smooth={self.smooth}, reduction={self.reduction!r}, "
            f"include_background={self.include_background}"
        )
