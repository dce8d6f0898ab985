"""Segmentation losses, one family per module, and :func:`build_loss` to make them from a name.

Every loss is an ``nn.Module`` called as ``loss(logits, target)`` with ``logits`` of shape (N, C, *spatial)
and a class attribute ``kind``:

* ``"multiclass"``: softmax over C classes; ``target`` is an integer class map (N, *spatial) with values
  0..C-1 (voxels equal to ``ignore_index``, where supported, are left out).
* ``"region"``: one sigmoid per channel for overlapping regions (BraTS WT/TC/ET); ``target`` is a float or
  bool tensor of the logits' shape (N, R, *spatial).

Example:
    >>> loss = build_loss("0.5*dice+1*ce", n_classes=5)
    >>> loss.kind
    'multiclass'
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Sequence

import torch
from torch import nn

from medseg3d.errors import InputError
from medseg3d.losses.cross_entropy import CrossEntropyLoss, frequency_weights
from medseg3d.losses.dice import DiceLoss
from medseg3d.losses.focal import FocalLoss
from medseg3d.losses.jaccard import JaccardLoss, SoftJaccardMinMaxLoss
from medseg3d.losses.regions import RegionBCELoss, RegionDiceBCELoss, RegionDiceLoss

# name -> (class, default keyword arguments, one-line description)
_REGISTRY: dict[str, tuple[type[nn.Module], dict, str]] = {
    "jaccard": (
        JaccardLoss,
        {"mode": "paper"},
        "Tanimoto Jaccard summed over all classes, as the paper coded it",
    ),
    "jaccard-smooth": (
        JaccardLoss,
        {"mode": "smooth"},
        "Tanimoto Jaccard with a smoothing term: absent classes predicted absent cost ~0",
    ),
    "jaccard-minmax": (
        SoftJaccardMinMaxLoss,
        {},
        "the seed's 1 - sum min(P,T) / sum max(P,T) over voxels and classes",
    ),
    "dice": (DiceLoss, {"squared": True}, "soft Dice, V-Net form (sum p^2 + sum t^2), mean over classes"),
    "dice-plain": (DiceLoss, {"squared": False}, "soft Dice, plain form (sum p + sum t), mean over classes"),
    "ce": (CrossEntropyLoss, {}, "categorical cross-entropy, mean over voxels"),
    "wce": (
        CrossEntropyLoss,
        {"weight": "frequency"},
        "cross-entropy weighted by inverse class frequency in the batch (or weight=[...])",
    ),
    "focal": (FocalLoss, {}, "multiclass focal loss on softmax (gamma=2)"),
    "region-dice": (
        RegionDiceLoss,
        {},
        "soft Dice per sigmoid region channel (BraTS WT/TC/ET), mean over regions",
    ),
    "region-dice-bce": (RegionDiceBCELoss, {}, "region soft Dice + binary cross-entropy on sigmoid channels"),
    "bce": (
        RegionBCELoss,
        {},
        "binary cross-entropy on sigmoid channels (binary: one output with --labels binary-regions)",
    ),
}

LOSSES: dict[str, str] = {name: entry[2] for name, entry in _REGISTRY.items()}

_TERM = re.compile(r"^(?:(?P<weight>[0-9]*\.?[0-9]+(?:e[-+]?[0-9]+)?)\*)?(?P<name>[a-z][a-z-]*)$")


class CombinedLoss(nn.Module):
    """Weighted sum ``sum_i w_i L_i`` of losses of the same ``kind``; ``names`` and ``weights`` list the
    parts."""

    def __init__(self, terms: Sequence[tuple[float, str, nn.Module]]) -> None:
        super().__init__()
        if not terms:
            raise InputError("a combined loss needs at least one term, e.g. 'jaccard+ce'")
        kinds = {getattr(module, "kind", None) for _, _, module in terms}
        if len(kinds) != 1:
            raise InputError(
                f"cannot add losses of different kinds {sorted(map(str, kinds))}; "
                "combine multiclass losses with multiclass ones and region losses with region ones"
            )
        names = [name for _, name, _ in terms]
        if len(set(names)) != len(names):
            raise InputError(f"loss {names} names a part twice; give it one weight instead")
        self.kind = kinds.pop()
        self.weights = [float(weight) for weight, _, _ in terms]
        self.names = names
        self.parts = nn.ModuleList(module for _, _, module in terms)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The weighted sum of the parts' losses of ``logits`` against ``target``."""
        total = None
        for weight, part in zip(self.weights, self.parts):
            value = part(logits, target)
            total = weight * value if total is None else total + weight * value
        return total

    def extra_repr(self) -> str:
        """The loss's settings, for the module's repr."""
        return " + ".join(f"{w:g}*{n}" for w, n in zip(self.weights, self.names))


def _parse(spec: str) -> list[tuple[float, str]]:
    text = spec.replace(" ", "").lower() if isinstance(spec, str) else ""
    terms = []
    # Split on '+' except inside an exponent such as 1e+3.
    for part in re.split(r"(?<![0-9]e)\+", text) if text else [""]:
        match = _TERM.match(part)
        if not match:
            raise InputError(
                f"cannot read loss term {part!r} in {spec!r}; write names joined by '+', "
                "each optionally weighted like '0.5*dice+1*ce'"
            )
        weight = float(match["weight"]) if match["weight"] else 1.0
        if not math.isfinite(weight) or weight <= 0:
            raise InputError(f"loss weight in {part!r} must be a positive number")
        terms.append((weight, match["name"]))
    return terms


def _make(name: str, n_classes: int | None, kwargs: dict, used: set[str]) -> nn.Module:
    if name not in _REGISTRY:
        raise InputError(
            f"unknown loss {name!r}; choose from {', '.join(_REGISTRY)} (or a sum like 'jaccard+ce')"
        )
    cls, defaults, _ = _REGISTRY[name]
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    chosen = {**defaults, **{key: value for key, value in kwargs.items() if key in accepted}}
    used.update(key for key in kwargs if key in accepted)
    if n_classes is not None and getattr(cls, "kind", None) == "multiclass":
        if n_classes < 2:
            raise InputError(
                f"loss {name!r} needs n_classes >= 2, got {n_classes}; background counts as a class"
            )
        for key in ("weight", "alpha"):
            value = chosen.get(key)
            if isinstance(value, Sequence) and not isinstance(value, str) and len(value) != n_classes:
                raise InputError(
                    f"{key} has {len(value)} values but n_classes is {n_classes}; give one per class"
                )
    return cls(**chosen)


def build_loss(spec: str, n_classes: int | None = None, **kwargs) -> nn.Module:
    """Build a loss from a name in :data:`LOSSES` or a weighted sum of names.

    Args:
        spec: a name (``"jaccard"``) or a sum of optionally weighted names (``"jaccard+ce"``,
            ``"0.5*dice+1*ce"``); case and spaces do not matter.
        n_classes: number of classes (multiclass) or regions; when given, per-class ``weight``/``alpha``
            lists are checked against it.
        **kwargs: constructor arguments; each goes to every part whose constructor accepts it (e.g.
            ``ignore_index=255`` to all multiclass parts, ``smooth=1e-5`` to the Dice/Jaccard parts). An
            argument no part accepts is an error.

    Returns:
        The loss module itself for a single unweighted name, otherwise a :class:`CombinedLoss`. Either has
        ``kind`` ``"multiclass"`` or ``"region"``.
    """
    terms = _parse(spec)
    used: set[str] = set()
    modules = [(weight, name, _make(name, n_classes, kwargs, used)) for weight, name in terms]
    unused = sorted(set(kwargs) - used)
    if unused:
        raise InputError(
            f"loss {spec!r} takes no argument {', '.join(unused)}; check the spelling or the loss name"
        )
    if len(modules) == 1 and modules[0][0] == 1.0:
        return modules[0][2]
    return CombinedLoss(modules)


__all__ = [
    "LOSSES",
    "CombinedLoss",
    "CrossEntropyLoss",
    "DiceLoss",
    "FocalLoss",
    "JaccardLoss",
    "RegionBCELoss",
    "RegionDiceBCELoss",
    "RegionDiceLoss",
    "SoftJaccardMinMaxLoss",
    "build_loss",
    "frequency_weights",
]
