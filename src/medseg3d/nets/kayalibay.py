"""The network of Kayalibay, Jensen & van der Smagt 2017 (arXiv:1701.03056) and its ablation variants.

One class, :class:`KayalibayNet`, builds all variants by arguments. With the defaults (4 levels, 8 base
channels, concatenated long skips, multi-scale maps, one convolution per level) it is the authors'
``fcn_rffc4``, the network behind the paper's BRATS results:

======  ===========================================================================  ================
step    operation                                                                    channels
======  ===========================================================================  ================
e0      conv3 -> A                                                                   in -> 8
down1   s = conv3 stride 2 ; A ; conv3 ; add s (zero-padded channels) ; A            8 -> 8 -> 16
down2   same; this stride-2 conv already doubles the channels                        16 -> 32 -> 32
down3   same (bottleneck)                                                            32 -> 64 -> 64
up2     conv1 reduce (halve) -> A ; nearest x2 + conv3 -> A ; concat [e2, up] ;      64 -> 32 -> 32
        conv3 -> A                                                                   -> 64 -> 64
up1     same                                                                         64 -> 32 -> 16
                                                                                     -> 32 -> 32
up0     same                                                                         32 -> 16 -> 8
                                                                                     -> 16 -> 16
maps    S2, S1, S0 = conv1(up2), conv1(up1), conv1(up0), each to n_classes           at 1/4, 1/2, 1
fuse    logits = S0 + lin2(S1 + lin2(S2))  (lin2: the Theano linear x2 rule)         n_classes
======  ===========================================================================  ================

"A" is BatchNorm followed by PReLU (one slope per channel). No convolution has a bias, the 1x1 map
convolutions included: that is how the authors' Theano layers were defined, and it is what reproduces
their parameter counts exactly (4 inputs, 5 classes): 410,072 (``merge="concat"``), 337,496 (``"sum"`` and
``"none"``), 409,592 (``multiscale=False``); 409,424 with 1 input channel.

``blocks_per_level=2`` gives the deeper variants (the authors' ``res_fcn_concat`` / ``res_fcn_add``:
690,552 and, with ``merge="sum", act="relu"``, 617,360 parameters). They use pre-activation residual units:

* encoder level: ``s = conv3 stride 2 (x)`` ; then ``blocks_per_level`` times ``A ; conv3`` ; output
  ``s + h`` (the residual sum, not normalised). The long skip taps this sum.
* decoder level: ``conv1 reduce -> A`` (to the level's encoder width) ; ``nearest x2 + conv3`` (no A) ;
  merge ``m`` with the skip ; ``blocks_per_level`` times ``A ; conv3`` ; output ``m + h``.
* the maps are taken from the (un-normalised) decoder sums.

Generalisation to other depths and widths (``levels``, ``base_channels``): level ``l`` has
``base_channels * 2**l`` channels; the first stride-2 convolution keeps its input width and the later ones
double it (as in the authors' code); a decoder level outputs twice its encoder width; the shallow
variant's 1x1 reduction halves the channels, the deep variant's reduces to the encoder width. The
segmentation maps come from the last ``min(3, levels - 1)`` decoder levels (all decoder levels when there
are fewer than three), fused coarse to fine; ``multiscale=False`` keeps only the full-resolution map.

Inputs must have spatial sizes that are multiples of ``2 ** (levels - 1)`` (attribute ``size_multiple``);
use :func:`medseg3d.nets.pad_to_multiple` otherwise. The forward pass returns logits (no softmax).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from medseg3d.errors import InputError
from medseg3d.nets.blocks import (
    NormAct,
    add_channel_padded,
    check_input_shape,
    check_spatial_size,
    conv_layer,
    init_weights,
    upsample_linear_x2,
    upsample_nearest_x2,
)

MERGE_MODES = ("concat", "sum", "none")


class _ShallowDownLevel(nn.Module):
    """Encoder level of the one-convolution variant: post-activation residual block with a stride-2 conv."""

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        down_channels: int,
        out_channels: int,
        norm_act: Callable[[int], nn.Module],
    ):
        super().__init__()
        self.down = conv_layer(spatial_dims, in_channels, down_channels, 3, stride=2)
        self.down_act = norm_act(down_channels)
        self.conv = conv_layer(spatial_dims, down_channels, out_channels, 3)
        self.out_act = norm_act(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = self.down(x)
        residual = self.conv(self.down_act(shortcut))
        return self.out_act(add_channel_padded(residual, shortcut))


def _pre_activation_units(
    spatial_dims: int, in_channels: int, out_channels: int, count: int, norm_act: Callable[[int], nn.Module]
) -> nn.ModuleList:
    """``count`` units of ``A ; conv3``, the first going from ``in_channels`` to ``out_channels``."""
    units = []
    for index in range(count):
        channels = in_channels if index == 0 else out_channels
        units.append(
            nn.Sequential(
                norm_act(channels),
                conv_layer(spatial_dims, channels, out_channels, 3),
            )
        )
    return nn.ModuleList(units)


class _DeepDownLevel(nn.Module):
    """Encoder level of the deeper variant: stride-2 conv, then pre-activation units, residual sum out."""

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        down_channels: int,
        out_channels: int,
        norm_act: Callable[[int], nn.Module],
        blocks: int,
    ):
        super().__init__()
        self.down = conv_layer(spatial_dims, in_channels, down_channels, 3, stride=2)
        self.units = _pre_activation_units(spatial_dims, down_channels, out_channels, blocks, norm_act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = self.down(x)
        residual = shortcut
        for unit in self.units:
            residual = unit(residual)
        return add_channel_padded(residual, shortcut)


def _merged_channels(merge: str, skip_channels: int, up_channels: int) -> int:
    return skip_channels + up_channels if merge == "concat" else up_channels


def _merge(merge: str, skip: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    if merge == "concat":
        return torch.cat([skip, up], dim=1)
    if merge == "sum":
        return skip + up
    return up


class _ShallowUpLevel(nn.Module):
    """Decoder level of the one-convolution variant: reduce, 'deconvolve', merge with the skip, convolve."""

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        skip_channels: int,
        out_channels: int,
        merge: str,
        norm_act: Callable[[int], nn.Module],
    ):
        super().__init__()
        reduced = in_channels // 2
        self.merge = merge
        self.reduce = nn.Sequential(
            conv_layer(spatial_dims, in_channels, reduced, 1),
            norm_act(reduced),
        )
        self.up_conv = conv_layer(spatial_dims, reduced, skip_channels, 3)
        self.up_act = norm_act(skip_channels)
        self.conv = conv_layer(
            spatial_dims, _merged_channels(merge, skip_channels, skip_channels), out_channels, 3
        )
        self.out_act = norm_act(out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        up = self.up_act(self.up_conv(upsample_nearest_x2(self.reduce(x))))
        return self.out_act(self.conv(_merge(self.merge, skip, up)))


class _DeepUpLevel(nn.Module):
    """Decoder level of the deeper variant: reduce, 'deconvolve', merge, pre-activation units, sum."""

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        skip_channels: int,
        out_channels: int,
        merge: str,
        norm_act: Callable[[int], nn.Module],
        blocks: int,
    ):
        super().__init__()
        self.merge = merge
        self.reduce = nn.Sequential(
            conv_layer(spatial_dims, in_channels, skip_channels, 1),
            norm_act(skip_channels),
        )
        self.up_conv = conv_layer(spatial_dims, skip_channels, skip_channels, 3)
        merged = _merged_channels(merge, skip_channels, skip_channels)
        self.units = _pre_activation_units(spatial_dims, merged, out_channels, blocks, norm_act)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        up = self.up_conv(upsample_nearest_x2(self.reduce(x)))
        merged = _merge(self.merge, skip, up)
        residual = merged
        for unit in self.units:
            residual = unit(residual)
        return add_channel_padded(residual, merged)


class KayalibayNet(nn.Module):
    """The Kayalibay et al. 2017 3D (or 2D) segmentation CNN, with its ablation variants as arguments.

    See the module docstring for the layer table and the parameter accounting.

    Args:
        in_channels: input channels (MRI modalities).
        n_classes: output channels (classes, background included).
        base_channels: feature maps at full resolution; level ``l`` has ``base_channels * 2**l``.
        levels: resolution levels (>= 2); the encoder down-samples ``levels - 1`` times.
        blocks_per_level: 1 for the paper's network (one convolution per level after the stride-2 one);
            2 or more for the deeper pre-activation residual variant with that many convolutions per level
            in encoder and decoder.
        merge: long skips by ``"concat"`` (paper), element-wise ``"sum"``, or ``"none"`` (no long skips).
        multiscale: fuse segmentation maps from the last three decoder levels (paper) or use only the
            full-resolution map.
        spatial_dims: 3 (volumes) or 2 (slices).
        act: ``"prelu"`` (paper) or ``"relu"``.
        init: ``"kaiming"`` (default, He-normal convolutions) or ``"paper"`` (every parameter N(0, 0.01)).
        bn_momentum: batch-norm running-statistics momentum, PyTorch convention (the authors used 0.5).
        norm: ``"batch"`` (paper) or ``"instance"``. Instance norm normalises each volume by its own
            statistics in training and inference alike; with batches of one patch, batch norm's running
            statistics differ from what a whole volume sees at inference (measured in docs/results.md).
            The parameter count is the same.

    Attributes:
        spatial_dims: 2 or 3.
        size_multiple: every input spatial size must be a multiple of this (``2 ** (levels - 1)``).

    Example:
        >>> net = KayalibayNet(in_channels=4, n_classes=5)
        >>> net(torch.zeros(1, 4, 16, 16, 16)).shape
        torch.Size([1, 5, 16, 16, 16])
    """

    def __init__(
        self,
        in_channels: int,
        n_classes: int,
        base_channels: int = 8,
        levels: int = 4,
        blocks_per_level: int = 1,
        merge: str = "concat",
        multiscale: bool = True,
        spatial_dims: int = 3,
        act: str = "prelu",
        init: str = "kaiming",
        bn_momentum: float = 0.1,
        norm: str = "batch",
    ):
        super().__init__()
        if merge not in MERGE_MODES:
            raise InputError(f"unknown merge {merge!r}; choose one of {', '.join(MERGE_MODES)}")
        if act not in ("prelu", "relu"):
            raise InputError(f"unknown act {act!r} for KayalibayNet; choose prelu or relu")
        if norm not in ("batch", "instance"):
            raise InputError(f"unknown norm {norm!r} for KayalibayNet; choose batch or instance")
        if int(levels) < 2:
            raise InputError(f"KayalibayNet needs levels >= 2, got {levels}")
        if int(blocks_per_level) < 1:
            raise InputError(f"blocks_per_level must be >= 1, got {blocks_per_level}")
        if int(base_channels) < 1 or int(in_channels) < 1 or int(n_classes) < 1:
            raise InputError("in_channels, n_classes and base_channels must be positive integers")
        self.in_channels = int(in_channels)
        self.n_classes = int(n_classes)
        self.levels = int(levels)
        self.blocks_per_level = int(blocks_per_level)
        self.merge = merge
        self.multiscale = bool(multiscale)
        self.spatial_dims = int(spatial_dims)
        self.size_multiple = 2 ** (self.levels - 1)
        self.size_rule = (
            f"KayalibayNet with {self.levels} levels needs multiples of 2^(levels-1) = {self.size_multiple}"
        )
        deep = self.blocks_per_level >= 2
        widths = [int(base_channels) * 2**level for level in range(self.levels)]

        def norm_act(channels: int) -> nn.Module:
            return NormAct(channels, spatial_dims, norm, act, bn_momentum)

        self.stem = nn.Sequential(
            conv_layer(spatial_dims, self.in_channels, widths[0], 3),
            norm_act(widths[0]),
        )
        encoder = []
        for level in range(1, self.levels):
            down_width = widths[level - 1] if level == 1 else widths[level]
            if deep:
                encoder.append(
                    _DeepDownLevel(
                        spatial_dims,
                        widths[level - 1],
                        down_width,
                        widths[level],
                        norm_act,
                        self.blocks_per_level,
                    )
                )
            else:
                encoder.append(
                    _ShallowDownLevel(spatial_dims, widths[level - 1], down_width, widths[level], norm_act)
                )
        self.encoder = nn.ModuleList(encoder)

        decoder = []
        decoder_widths = []
        incoming = widths[-1]
        for level in range(self.levels - 2, -1, -1):
            out_width = 2 * widths[level]
            if deep:
                decoder.append(
                    _DeepUpLevel(
                        spatial_dims,
                        incoming,
                        widths[level],
                        out_width,
                        merge,
                        norm_act,
                        self.blocks_per_level,
                    )
                )
            else:
                decoder.append(
                    _ShallowUpLevel(spatial_dims, incoming, widths[level], out_width, merge, norm_act)
                )
            decoder_widths.append(out_width)
            incoming = out_width
        self.decoder = nn.ModuleList(decoder)

        map_count = min(3, self.levels - 1) if self.multiscale else 1
        self.first_map_level = len(decoder_widths) - map_count
        self.coarse_maps = nn.ModuleList(
            [
                conv_layer(spatial_dims, decoder_widths[index], self.n_classes, 1)
                for index in range(self.first_map_level, len(decoder_widths) - 1)
            ]
        )
        self.final_map = conv_layer(spatial_dims, decoder_widths[-1], self.n_classes, 1)

        init_weights(self, init, negative_slope=0.25 if act == "prelu" else 0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Segment ``x``.

        Args:
            x: (N, in_channels, *spatial) tensor, every spatial size a multiple of ``size_multiple``.

        Returns:
            (N, n_classes, *spatial) logits.
        """
        if not torch.jit.is_tracing():
            check_input_shape(list(x.shape), self.spatial_dims, self.in_channels, "KayalibayNet")
            check_spatial_size(list(x.shape[2:]), self.size_multiple, self.size_rule)
        features = self.stem(x)
        skips: list[torch.Tensor] = [features]
        for level in self.encoder:
            features = level(features)
            skips.append(features)
        skip_index = len(skips) - 2
        decoded: list[torch.Tensor] = []
        for level in self.decoder:
            features = level(features, skips[skip_index])
            decoded.append(features)
            skip_index -= 1

        fused: torch.Tensor | None = None
        map_level = self.first_map_level
        for head in self.coarse_maps:
            segmentation_map = head(decoded[map_level])
            if fused is None:
                fused = segmentation_map
            else:
                fused = upsample_linear_x2(fused) + segmentation_map
            map_level += 1
        logits = self.final_map(decoded[-1])
        if fused is not None:
            logits = logits + upsample_linear_x2(fused)
        return logits
