"""U-Net family: a modern padded 3D U-Net (nnU-Net-like), the original 2D U-Net of Ronneberger et al. 2015
with valid convolutions and overlap-tile size helpers, and the course project's tiny binary 3D U-Net.

* :class:`UNet3D`: 'same'-padded 3x3x3 convolutions, instance (or batch) norm, LeakyReLU(0.01); two
  convolutions per stage, the first of each lower stage with stride 2; 2x2x2 transposed convolutions up;
  optional deep supervision. Spatial sizes must be multiples of ``2 ** (levels - 1)``.
* :class:`UNet2D`: valid 3x3 convolutions + ReLU, 2x2 max-pooling, 2x2 up-convolutions halving the
  channels, crop-and-concat, 64 ... 1024 channels, 23 convolution layers; the output is smaller than the
  input (572 -> 388). Use :meth:`UNet2D.output_size` and :meth:`UNet2D.input_size_for` to tile.
* :class:`TinyUNet3D`: about 70,000 parameters, 20 convolution layers, one output channel (logit for
  binary cross-entropy).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from medseg3d.errors import InputError
from medseg3d.nets.blocks import (
    ConvNormAct,
    NormAct,
    center_crop_to,
    check_input_shape,
    check_spatial_size,
    conv_layer,
    init_weights,
    max_pool_layer,
    transposed_conv_layer,
)


def _stage_widths(
    channels: Sequence[int] | None, base_channels: int, levels: int, max_channels: int
) -> list[int]:
    if channels is not None:
        widths = [int(c) for c in channels]
    else:
        widths = [min(int(base_channels) * 2**level, int(max_channels)) for level in range(int(levels))]
    if len(widths) < 2 or any(w < 1 for w in widths):
        raise InputError(f"a U-Net needs at least 2 levels of positive widths, got {widths}")
    return widths


class UNet3D(nn.Module):
    """Padded U-Net in the style of nnU-Net (3D by default, 2D with ``spatial_dims=2``).

    Each stage is two ``conv3 -> norm -> LeakyReLU(0.01)`` units; the first convolution of every stage
    below the top has stride 2 (no pooling). The decoder up-samples with 2x2x2 transposed convolutions,
    concatenates the encoder features and applies two more units. A 1x1 convolution makes the logits.

    Args:
        in_channels: input channels.
        n_classes: output channels.
        channels: feature maps per stage, top to bottom, e.g. ``(32, 64, 128, 256, 320)``. When given,
            ``base_channels``, ``levels`` and ``max_channels`` are ignored.
        base_channels: feature maps of the top stage when ``channels`` is not given.
        levels: number of stages when ``channels`` is not given.
        max_channels: cap on the doubling widths when ``channels`` is not given.
        norm: ``"instance"`` (default) or ``"batch"``.
        deep_supervision: add a 1x1 head on every decoder stage; in training mode the forward pass then
            returns a list of logits, full resolution first, then 1/2, 1/4, ... In eval mode it returns
            only the full-resolution logits.
        spatial_dims: 3 or 2.
        init: ``"kaiming"`` or ``"paper"`` (see :func:`medseg3d.nets.blocks.init_weights`).

    Attributes:
        spatial_dims: 2 or 3.
        size_multiple: input spatial sizes must be multiples of this.
    """

    def __init__(
        self,
        in_channels: int,
        n_classes: int,
        channels: Sequence[int] | None = None,
        base_channels: int = 32,
        levels: int = 5,
        max_channels: int = 320,
        norm: str = "instance",
        deep_supervision: bool = False,
        spatial_dims: int = 3,
        init: str = "kaiming",
    ):
        super().__init__()
        if norm not in ("instance", "batch"):
            raise InputError(f"unknown norm {norm!r} for UNet3D; choose instance or batch")
        widths = _stage_widths(channels, base_channels, levels, max_channels)
        self.in_channels = int(in_channels)
        self.n_classes = int(n_classes)
        self.channels = tuple(widths)
        self.spatial_dims = int(spatial_dims)
        self.deep_supervision = bool(deep_supervision)
        self.size_multiple = 2 ** (len(widths) - 1)
        self.size_rule = f"UNet3D with {len(widths)} stages needs multiples of {self.size_multiple}"

        def unit(in_ch: int, out_ch: int, stride: int = 1) -> nn.Module:
            return ConvNormAct(spatial_dims, in_ch, out_ch, 3, stride, norm=norm, act="leakyrelu")

        stages = []
        previous = self.in_channels
        for level, width in enumerate(widths):
            stages.append(nn.Sequential(unit(previous, width, 1 if level == 0 else 2), unit(width, width)))
            previous = width
        self.encoder = nn.ModuleList(stages)

        ups, decoder = [], []
        for level in range(len(widths) - 2, -1, -1):
            ups.append(transposed_conv_layer(spatial_dims, widths[level + 1], widths[level], 2, 2, bias=True))
            decoder.append(
                nn.Sequential(unit(2 * widths[level], widths[level]), unit(widths[level], widths[level]))
            )
        self.ups = nn.ModuleList(ups)
        self.decoder = nn.ModuleList(decoder)
        self.head = conv_layer(spatial_dims, widths[0], self.n_classes, 1, bias=True)
        # Deep-supervision heads for the decoder outputs at 1/2, 1/4, ... (fine to coarse).
        deep_levels = range(1, len(widths) - 1) if self.deep_supervision else range(0)
        self.deep_heads = nn.ModuleList(
            [conv_layer(spatial_dims, widths[level], self.n_classes, 1, bias=True) for level in deep_levels]
        )
        init_weights(self, init, negative_slope=0.01)

    def logit_bias_groups(self) -> list[list[nn.Module]]:
        """The output convolutions, one group per output (see :mod:`medseg3d.nets.prior`)."""
        return [[self.head]] + [[head] for head in self.deep_heads]

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """Segment ``x``.

        Args:
            x: (N, in_channels, *spatial) tensor, spatial sizes multiples of ``size_multiple``.

        Returns:
            (N, n_classes, *spatial) logits; with deep supervision in training mode a list of logits at
            full, 1/2, 1/4, ... resolution.
        """
        if not torch.jit.is_tracing():
            check_input_shape(list(x.shape), self.spatial_dims, self.in_channels, "UNet3D")
            check_spatial_size(list(x.shape[2:]), self.size_multiple, self.size_rule)
        skips: list[torch.Tensor] = []
        features = x
        for stage in self.encoder:
            features = stage(features)
            skips.append(features)
        skip_index = len(skips) - 2
        decoded: list[torch.Tensor] = []
        for up, stage in zip(self.ups, self.decoder):
            features = stage(torch.cat([skips[skip_index], up(features)], dim=1))
            decoded.append(features)
            skip_index -= 1
        logits = self.head(decoded[-1])
        if self.deep_supervision and self.training:
            outputs: list[torch.Tensor] = [logits]
            decoded_index = len(decoded) - 2
            for head in self.deep_heads:
                outputs.append(head(decoded[decoded_index]))
                decoded_index -= 1
            return outputs
        return logits


def _valid_unet_output_length(length: int, levels: int) -> int:
    """Output length of a valid-convolution U-Net along one axis, or -1 if the input length is not valid.

    Valid means every max-pooling sees an even length and every length stays positive.
    """
    for _ in range(levels - 1):
        length -= 4
        if length <= 0 or length % 2 != 0:
            return -1
        length //= 2
    length -= 4
    if length <= 0:
        return -1
    for _ in range(levels - 1):
        length = 2 * length - 4
        if length <= 0:
            return -1
    return length


def _per_axis(sizes: int | Sequence[int]) -> list[int]:
    return [int(sizes)] if isinstance(sizes, int) else [int(s) for s in sizes]


class UNet2D(nn.Module):
    """The original U-Net (Ronneberger, Fischer & Brox 2015), valid convolutions, for overlap-tiling.

    Contracting path: per level two unpadded 3x3 convolutions + ReLU, then 2x2 max-pooling; the channels
    double from ``base_channels`` (64) to ``base_channels * 2**(levels-1)`` (1024). Expanding path: 2x2
    up-convolution (transposed, stride 2) halving the channels, concatenation with the centre-cropped
    encoder map, two 3x3 convolutions + ReLU. A final 1x1 convolution gives the logits. With 5 levels
    there are 23 convolution layers (18 3x3, 4 up-convolutions, one 1x1).

    Sizes: the output is ``input - 184`` pixels per axis for 5 levels (572 -> 388); an input length is
    valid when every pooled map has an even length, i.e. ``(input - 124) % 16 == 0`` and ``input >= 188``
    for 5 levels. The border is handled by tiling with mirrored context (see :meth:`input_size_for`).

    Args:
        in_channels: input channels.
        n_classes: output channels.
        base_channels: feature maps of the first level.
        levels: resolution levels (5 in the paper).
        init: ``"kaiming"`` or ``"paper"`` (see :func:`medseg3d.nets.blocks.init_weights`).

    Attributes:
        spatial_dims: 2.
        size_multiple: ``None`` (valid convolutions; use :meth:`output_size`).
    """

    def __init__(
        self,
        in_channels: int,
        n_classes: int,
        base_channels: int = 64,
        levels: int = 5,
        init: str = "kaiming",
    ):
        super().__init__()
        if int(levels) < 2:
            raise InputError(f"UNet2D needs levels >= 2, got {levels}")
        self.in_channels = int(in_channels)
        self.n_classes = int(n_classes)
        self.levels = int(levels)
        self.spatial_dims = 2
        self.size_multiple = None
        widths = [int(base_channels) * 2**level for level in range(self.levels)]

        def two_valid_convs(in_ch: int, out_ch: int) -> nn.Module:
            return nn.Sequential(
                conv_layer(2, in_ch, out_ch, 3, padding=0, bias=True),
                nn.ReLU(),
                conv_layer(2, out_ch, out_ch, 3, padding=0, bias=True),
                nn.ReLU(),
            )

        encoder = []
        previous = self.in_channels
        for width in widths:
            encoder.append(two_valid_convs(previous, width))
            previous = width
        self.encoder = nn.ModuleList(encoder)
        self.pool = max_pool_layer(2, 2)
        ups, decoder = [], []
        for level in range(self.levels - 2, -1, -1):
            ups.append(transposed_conv_layer(2, widths[level + 1], widths[level], 2, 2, bias=True))
            decoder.append(two_valid_convs(2 * widths[level], widths[level]))
        self.ups = nn.ModuleList(ups)
        self.decoder = nn.ModuleList(decoder)
        self.head = conv_layer(2, widths[0], self.n_classes, 1, padding=0, bias=True)
        init_weights(self, init, negative_slope=0.0)

    def output_size(self, input_size: int | Sequence[int]) -> int | tuple[int, ...]:
        """Output size for an input size (one int, or one per axis).

        Args:
            input_size: input length(s).

        Raises:
            InputError: if an input length is not valid (see the class docstring).
        """
        outputs = []
        for length in _per_axis(input_size):
            output = _valid_unet_output_length(length, self.levels)
            if output < 0:
                suggestion = self.input_size_for(max(1, length - self.size_reduction()))
                raise InputError(
                    f"UNet2D with {self.levels} levels cannot take an input of length {length} (every "
                    f"pooled map must have an even length); the next valid input length is {suggestion} "
                    "(see input_size_for)"
                )
            outputs.append(output)
        return outputs[0] if isinstance(input_size, int) else tuple(outputs)

    def size_reduction(self) -> int:
        """Pixels lost per axis between input and output (184 for 5 levels)."""
        length = 4 * 2 ** (self.levels - 1)
        while _valid_unet_output_length(length, self.levels) < 0:
            length += 1
        return length - _valid_unet_output_length(length, self.levels)

    def input_size_for(self, output_size: int | Sequence[int]) -> int | tuple[int, ...]:
        """Smallest valid input size whose output covers ``output_size`` (one int, or one per axis).

        The output of the returned input is the smallest valid output >= ``output_size`` (valid outputs
        are ``4 mod 16`` for 5 levels), so ``input_size_for(388) == 572``. For overlap-tiling, take tiles
        of this input size with a stride of the output size and mirror-pad the image by
        ``size_reduction() // 2`` on each side.

        Args:
            output_size: wanted output length(s), >= 1.
        """
        inputs = []
        reduction = self.size_reduction()
        for wanted in _per_axis(output_size):
            if wanted < 1:
                raise InputError(f"output size must be >= 1, got {wanted}")
            length = wanted + reduction
            while _valid_unet_output_length(length, self.levels) < 0:
                length += 1
            inputs.append(length)
        return inputs[0] if isinstance(output_size, int) else tuple(inputs)

    def logit_bias_groups(self) -> list[list[nn.Module]]:
        """The output convolution (see :mod:`medseg3d.nets.prior`)."""
        return [[self.head]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Segment ``x``.

        Args:
            x: (N, in_channels, H, W) tensor with valid H and W (see :meth:`output_size`).

        Returns:
            (N, n_classes, H - 184, W - 184) logits for 5 levels.
        """
        if not torch.jit.is_tracing() and not torch.jit.is_scripting():
            check_input_shape(list(x.shape), 2, self.in_channels, "UNet2D")
            self.output_size(tuple(x.shape[2:]))
        skips: list[torch.Tensor] = []
        features = x
        for index, stage in enumerate(self.encoder):
            if index > 0:
                features = self.pool(features)
            features = stage(features)
            skips.append(features)
        skip_index = len(skips) - 2
        for up, stage in zip(self.ups, self.decoder):
            upsampled = up(features)
            skip = center_crop_to(skips[skip_index], list(upsampled.shape[2:]))
            features = stage(torch.cat([skip, upsampled], dim=1))
            skip_index -= 1
        return self.head(features)


class TinyUNet3D(nn.Module):
    """The course project's small binary 3D U-Net: about 70,000 parameters, 20 convolution layers.

    Layout (``base_channels=3``, ``levels=4``, widths 3, 6, 12, 24), every convolution followed by
    norm + ReLU except the last:

    * level 0: one 3x3x3 convolution (in -> 3);
    * levels 1-3: a stride-2 3x3x3 convolution (doubling the width), then two 3x3x3 convolutions;
    * decoder levels 2-0: a 2x2x2 transposed convolution (halving the width), concatenation with the
      encoder features, two 3x3x3 convolutions;
    * a 1x1x1 convolution to ONE output channel (a logit: train with binary cross-entropy on logits).

    That is 1 + 3 * 3 + 3 * 3 + 1 = 20 convolution layers (``6 * levels - 4``) and 69,832 parameters with
    one input channel (70,075 with four). The original project's exact layer list is not known; this
    design matches its published size (20 layers, ~69k parameters) and takes 32^3 or 96^3 inputs.

    Args:
        in_channels: input channels.
        base_channels: feature maps at full resolution.
        levels: resolution levels; sizes must be multiples of ``2 ** (levels - 1)``.
        norm: ``"batch"`` (default) or ``"instance"``.
        init: ``"kaiming"`` or ``"paper"``.

    Attributes:
        spatial_dims: 3.
        size_multiple: ``2 ** (levels - 1)``.
        n_classes: 1.
    """

    def __init__(
        self,
        in_channels: int,
        base_channels: int = 3,
        levels: int = 4,
        norm: str = "batch",
        init: str = "kaiming",
    ):
        super().__init__()
        widths = [int(base_channels) * 2**level for level in range(int(levels))]
        if len(widths) < 2:
            raise InputError(f"TinyUNet3D needs levels >= 2, got {levels}")
        self.in_channels = int(in_channels)
        self.n_classes = 1
        self.spatial_dims = 3
        self.size_multiple = 2 ** (len(widths) - 1)
        self.size_rule = f"TinyUNet3D with {len(widths)} levels needs multiples of {self.size_multiple}"

        def unit(in_ch: int, out_ch: int, stride: int = 1) -> nn.Module:
            return ConvNormAct(3, in_ch, out_ch, 3, stride, norm=norm, act="relu")

        stages = [unit(self.in_channels, widths[0])]
        for level in range(1, len(widths)):
            stages.append(
                nn.Sequential(
                    unit(widths[level - 1], widths[level], stride=2),
                    unit(widths[level], widths[level]),
                    unit(widths[level], widths[level]),
                )
            )
        self.encoder = nn.ModuleList(stages)
        ups, decoder = [], []
        for level in range(len(widths) - 2, -1, -1):
            ups.append(
                nn.Sequential(
                    transposed_conv_layer(3, widths[level + 1], widths[level], 2, 2, bias=False),
                    NormAct(widths[level], 3, norm, "relu"),
                )
            )
            decoder.append(
                nn.Sequential(unit(2 * widths[level], widths[level]), unit(widths[level], widths[level]))
            )
        self.ups = nn.ModuleList(ups)
        self.decoder = nn.ModuleList(decoder)
        self.head = conv_layer(3, widths[0], 1, 1, bias=True)
        init_weights(self, init, negative_slope=0.0)

    def logit_bias_groups(self) -> list[list[nn.Module]]:
        """The output convolution (see :mod:`medseg3d.nets.prior`)."""
        return [[self.head]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Segment ``x``.

        Args:
            x: (N, in_channels, D, H, W) tensor, sizes multiples of ``size_multiple``.

        Returns:
            (N, 1, D, H, W) logits.
        """
        if not torch.jit.is_tracing():
            check_input_shape(list(x.shape), 3, self.in_channels, "TinyUNet3D")
            check_spatial_size(list(x.shape[2:]), self.size_multiple, self.size_rule)
        skips: list[torch.Tensor] = []
        features = x
        for stage in self.encoder:
            features = stage(features)
            skips.append(features)
        skip_index = len(skips) - 2
        for up, stage in zip(self.ups, self.decoder):
            features = stage(torch.cat([skips[skip_index], up(features)], dim=1))
            skip_index -= 1
        return self.head(features)
