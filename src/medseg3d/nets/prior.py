"""Start a network's outputs at the training data's label frequencies ("prior initialisation").

A freshly initialised network outputs logits near 0: probability 0.5 for every sigmoid output, or
1 / n_classes for every softmax class. When the foreground is a few percent of the voxels, the first
hundreds of iterations then go into moving the output biases towards the class frequencies (Adam moves
a bias by about the learning rate per step: from 0 to -3 takes ~3,000 steps at 1e-3). Setting the biases
to the frequencies from the start (Lin et al. 2017, "Focal loss for dense object detection", section
4.1) removes that phase; the weights are left alone.

For a sigmoid output with foreground fraction p the bias is log(p / (1 - p)); for softmax classes with
fractions p_c the biases are log(p_c) (softmax is invariant to a shared offset). Fractions are clipped
to [1e-4, 1 - 1e-4] so that a class absent from the sample gets a finite bias.

A network supports this by a ``logit_bias_groups()`` method: a list of groups, one per output tensor, each
a list of 1x1 convolutions whose biases are summed into that output (a network that adds upsampled coarse
maps to its final map lists them all: constants survive linear upsampling). The first layer of a group
gets the prior, the others zero. The U-Nets have it; the paper's network does not, because its
segmentation maps have no bias.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from medseg3d.errors import InputError

_CLIP = 1e-4


def prior_biases(fractions: Sequence[float], kind: str) -> list[float]:
    """Output biases for label ``fractions``: log-odds (``kind="region"``, sigmoid) or log (softmax).

    Args:
        fractions: the fraction of voxels of each output, clipped away from 0 and 1.
        kind: "region" or "multiclass".

    Example:
        >>> [round(b, 4) for b in prior_biases([0.1], "region")]
        [-2.1972]
    """
    clipped = [min(max(float(p), _CLIP), 1.0 - _CLIP) for p in fractions]
    if kind == "region":
        return [math.log(p / (1.0 - p)) for p in clipped]
    return [math.log(p) for p in clipped]


@torch.no_grad()
def init_output_prior(model: nn.Module, fractions: Sequence[float], kind: str) -> list[float]:
    """Set ``model``'s output biases so that it starts predicting ``fractions`` everywhere.

    Args:
        model: a network with ``logit_bias_groups()``.
        fractions: per output channel, the fraction of training voxels in that region (sigmoid) or class
            (softmax; they should sum to 1).
        kind: ``"region"`` (independent sigmoid outputs) or ``"multiclass"`` (softmax).

    Returns:
        The biases set, one per output channel.

    Raises:
        InputError: the network does not support it, or the number of fractions does not match its outputs.
    """
    groups = getattr(model, "logit_bias_groups", None)
    if groups is None:
        raise InputError(
            f"network {type(model).__name__} cannot start its outputs at the label frequencies; "
            "train it without --output-prior"
        )
    biases = prior_biases(fractions, kind)
    value = torch.tensor(biases)
    for group in groups():
        first, *rest = group
        if first.bias is None or first.bias.numel() != len(biases):
            raise InputError(
                f"{len(biases)} label fractions for a network with "
                f"{first.out_channels if hasattr(first, 'out_channels') else '?'} outputs"
            )
        first.bias.copy_(value.to(first.bias))
        for layer in rest:
            layer.bias.zero_()
    return biases
