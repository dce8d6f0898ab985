"""Small building blocks shared by the networks: layer factories for 2D/3D, conv + norm + activation units,
the channel-padded residual sum, the Theano-style linear x2 up-sampling and centre cropping.

Every factory takes ``spatial_dims`` (2 or 3) so that one network definition serves both cases.
Everything here is scriptable with TorchScript and exportable to ONNX (opset 17).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from medseg3d.errors import InputError

ACTIVATIONS = ("prelu", "relu", "leakyrelu")
NORMS = ("batch", "instance", "none")


def _check_spatial_dims(spatial_dims: int) -> None:
    if spatial_dims not in (2, 3):
        raise InputError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}")


def conv_layer(
    spatial_dims: int,
    in_channels: int,
    out_channels: int,
    kernel_size: int = 3,
    stride: int = 1,
    padding: int | None = None,
    bias: bool = False,
) -> nn.Module:
    """A 2D or 3D convolution, 'same' zero padding by default.

    Args:
        spatial_dims: 2 or 3.
        in_channels: input feature maps.
        out_channels: output feature maps.
        kernel_size: edge length of the cubic (square) kernel.
        stride: stride in every axis.
        padding: zero padding in every axis; ``None`` means ``kernel_size // 2`` ('same' for odd kernels),
            ``0`` gives a 'valid' convolution.
        bias: whether the convolution has a bias (off by default: a norm layer usually follows).
    """
    _check_spatial_dims(spatial_dims)
    conv_class = nn.Conv3d if spatial_dims == 3 else nn.Conv2d
    if padding is None:
        padding = kernel_size // 2
    return conv_class(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=bias)


def transposed_conv_layer(
    spatial_dims: int,
    in_channels: int,
    out_channels: int,
    kernel_size: int = 2,
    stride: int = 2,
    bias: bool = True,
) -> nn.Module:
    """A 2D or 3D transposed convolution (by default the 2x2(x2), stride-2 'up-convolution').

    Args:
        spatial_dims: 2 or 3.
        in_channels: input feature maps.
        out_channels: output feature maps.
        kernel_size: kernel edge length.
        stride: up-sampling factor.
        bias: whether the layer has a bias.
    """
    _check_spatial_dims(spatial_dims)
    conv_class = nn.ConvTranspose3d if spatial_dims == 3 else nn.ConvTranspose2d
    return conv_class(in_channels, out_channels, kernel_size, stride=stride, bias=bias)


def max_pool_layer(spatial_dims: int, kernel_size: int = 2, stride: int | None = None) -> nn.Module:
    """A 2D or 3D max-pooling layer.

    Args:
        spatial_dims: 2 or 3.
        kernel_size: pooling window edge length.
        stride: stride (defaults to ``kernel_size``).
    """
    _check_spatial_dims(spatial_dims)
    pool_class = nn.MaxPool3d if spatial_dims == 3 else nn.MaxPool2d
    return pool_class(kernel_size, stride=stride)


def norm_layer(norm: str, spatial_dims: int, channels: int, momentum: float = 0.1) -> nn.Module:
    """A normalisation layer by name.

    Args:
        norm: ``"batch"``, ``"instance"`` (affine, no running statistics) or ``"none"``.
        spatial_dims: 2 or 3.
        channels: feature maps normalised.
        momentum: running-statistics momentum of batch norm (PyTorch convention).
    """
    _check_spatial_dims(spatial_dims)
    if norm == "batch":
        norm_class = nn.BatchNorm3d if spatial_dims == 3 else nn.BatchNorm2d
        return norm_class(channels, momentum=momentum)
    if norm == "instance":
        norm_class = nn.InstanceNorm3d if spatial_dims == 3 else nn.InstanceNorm2d
        return norm_class(channels, affine=True)
    if norm == "none":
        return nn.Identity()
    raise InputError(f"unknown norm {norm!r}; choose one of {', '.join(NORMS)}")


def activation_layer(act: str, channels: int) -> nn.Module:
    """An activation by name.

    Args:
        act: ``"prelu"`` (one learnable slope per channel), ``"relu"`` or ``"leakyrelu"`` (slope 0.01).
        channels: feature maps (used by PReLU for its per-channel slopes).
    """
    if act == "prelu":
        return nn.PReLU(channels)
    if act == "relu":
        return nn.ReLU()
    if act == "leakyrelu":
        return nn.LeakyReLU(0.01)
    raise InputError(f"unknown activation {act!r}; choose one of {', '.join(ACTIVATIONS)}")


class NormAct(nn.Sequential):
    """Normalisation followed by an activation ("A(c)" in the Kayalibay et al. layer tables).

    Args:
        channels: feature maps.
        spatial_dims: 2 or 3.
        norm: see :func:`norm_layer`.
        act: see :func:`activation_layer`.
        bn_momentum: batch-norm momentum (PyTorch convention).
    """

    def __init__(
        self,
        channels: int,
        spatial_dims: int,
        norm: str = "batch",
        act: str = "prelu",
        bn_momentum: float = 0.1,
    ):
        super().__init__(
            norm_layer(norm, spatial_dims, channels, bn_momentum), activation_layer(act, channels)
        )


class ConvNormAct(nn.Sequential):
    """Convolution (no bias) followed by normalisation and activation.

    Args:
        spatial_dims: 2 or 3.
        in_channels: input feature maps.
        out_channels: output feature maps.
        kernel_size: kernel edge length.
        stride: stride in every axis.
        norm: see :func:`norm_layer`.
        act: see :func:`activation_layer`.
        padding: see :func:`conv_layer`.
        bn_momentum: batch-norm momentum (PyTorch convention).
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        norm: str = "batch",
        act: str = "prelu",
        padding: int | None = None,
        bn_momentum: float = 0.1,
    ):
        super().__init__(
            conv_layer(spatial_dims, in_channels, out_channels, kernel_size, stride, padding, bias=False),
            NormAct(out_channels, spatial_dims, norm, act, bn_momentum),
        )


def add_channel_padded(main: torch.Tensor, shortcut: torch.Tensor) -> torch.Tensor:
    """Residual sum ``main + shortcut`` where the shortcut may have fewer channels.

    The shortcut is zero-padded in channels (it is added to the first channels of ``main``), so the
    identity shortcut needs no projection and no parameters.

    Args:
        main: (N, C, ...) tensor.
        shortcut: (N, C', ...) tensor with C' <= C and the same spatial size.
    """
    shortcut_channels = shortcut.shape[1]
    if shortcut_channels == main.shape[1]:
        return main + shortcut
    head = main[:, :shortcut_channels] + shortcut
    return torch.cat([head, main[:, shortcut_channels:]], dim=1)


def upsample_linear_x2(x: torch.Tensor) -> torch.Tensor:
    """Up-sample every spatial axis by 2 with the Theano rule used by Kayalibay et al.

    Per axis: ``out[2i] = x[i]`` and ``out[2i + 1] = (x[i] + x[i + 1]) / 2``, with the last sample repeated
    (so ``out[-1] = x[-1]``). This differs slightly from ``interpolate(mode="trilinear")`` with either
    ``align_corners`` setting. Written with slicing, stacking and flattening only, so it runs in
    TorchScript and exports to ONNX.

    Args:
        x: (N, C, *spatial) tensor with every spatial size >= 1.

    Returns:
        (N, C, *[2 * s for s in spatial]) tensor.
    """
    for axis in range(2, x.dim()):
        size = x.shape[axis]
        following = torch.cat([x.narrow(axis, 1, size - 1), x.narrow(axis, size - 1, 1)], dim=axis)
        midpoints = (x + following) * 0.5
        x = torch.stack([x, midpoints], dim=axis + 1).flatten(axis, axis + 1)
    return x


def upsample_nearest_x2(x: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour up-sampling by 2 in every spatial axis.

    Args:
        x: (N, C, *spatial) tensor.
    """
    return F.interpolate(x, scale_factor=2.0, mode="nearest")


def center_crop_to(x: torch.Tensor, target_size: list[int]) -> torch.Tensor:
    """Crop the spatial axes of ``x`` around their centre to ``target_size`` (as U-Net's crop-and-concat).

    Args:
        x: (N, C, *spatial) tensor.
        target_size: wanted spatial size, each entry <= the corresponding size of ``x``.
    """
    for axis in range(2, x.dim()):
        wanted = target_size[axis - 2]
        start = (x.shape[axis] - wanted) // 2
        x = x.narrow(axis, start, wanted)
    return x


def check_spatial_size(spatial_size: list[int], multiple: int, rule: str) -> None:
    """Raise :class:`~medseg3d.errors.InputError` unless every spatial size is a multiple of ``multiple``.

    Scriptable, so the check also runs inside a TorchScript module (there it surfaces as
    ``torch.jit.Error`` whose message names ``InputError``).

    Args:
        spatial_size: spatial sizes of the input.
        multiple: required divisor.
        rule: why, e.g. ``"KayalibayNet with 4 levels needs multiples of 2^(levels-1) = 8"``.
    """
    for size in spatial_size:
        if size % multiple != 0 or size == 0:
            raise InputError(
                "input spatial size "
                + str(spatial_size)
                + " is not a multiple of "
                + str(multiple)
                + " in every axis ("
                + rule
                + "); pad the input or use medseg3d.nets.pad_to_multiple"
            )


def check_input_shape(shape: list[int], spatial_dims: int, in_channels: int, net_name: str) -> None:
    """Raise :class:`~medseg3d.errors.InputError` unless the input is (N, in_channels, *spatial).

    Args:
        shape: input shape.
        spatial_dims: expected number of spatial axes.
        in_channels: expected channel count.
        net_name: used in the message.
    """
    if len(shape) != spatial_dims + 2:
        layout = "(N, C, D, H, W)" if spatial_dims == 3 else "(N, C, H, W)"
        raise InputError(net_name + " expects a " + layout + " tensor, got shape " + str(shape))
    if shape[1] != in_channels:
        raise InputError(
            net_name
            + " was built for "
            + str(in_channels)
            + " input channels, got "
            + str(shape[1])
            + " (shape "
            + str(shape)
            + ")"
        )


INIT_SCHEMES = ("kaiming", "paper")


def init_weights(module: nn.Module, scheme: str = "kaiming", negative_slope: float = 0.0) -> None:
    """Initialise the parameters of ``module`` in place.

    Args:
        module: the network.
        scheme: ``"kaiming"``: He-normal (fan-in) convolution weights, zero biases, norm layers at weight 1
            and bias 0, PReLU slopes left at 0.25. ``"paper"``: every parameter, norm weights and PReLU slopes
            included, drawn from N(0, 0.01) as in the Kayalibay et al. code.
        negative_slope: slope of the activation that follows the convolutions (0.25 for PReLU's initial
            slope, 0.01 for LeakyReLU, 0 for ReLU), used by the He gain.
    """
    if scheme == "paper":
        with torch.no_grad():
            for parameter in module.parameters():
                parameter.normal_(0.0, 0.01)
        return
    if scheme != "kaiming":
        raise InputError(f"unknown init {scheme!r}; choose one of {', '.join(INIT_SCHEMES)}")
    conv_types = (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d)
    norm_types = (nn.BatchNorm2d, nn.BatchNorm3d, nn.InstanceNorm2d, nn.InstanceNorm3d)
    for layer in module.modules():
        if isinstance(layer, conv_types):
            nn.init.kaiming_normal_(layer.weight, a=negative_slope, mode="fan_in", nonlinearity="leaky_relu")
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, norm_types) and layer.weight is not None:
            nn.init.ones_(layer.weight)
            nn.init.zeros_(layer.bias)
