"""Networks by name: ``build_network("kayalibay", in_channels=4, n_classes=5)``.

Every registered name maps to a network class plus default arguments. Built models carry
``spatial_dims`` (2 or 3), ``size_multiple`` (the divisor input sizes must have, or ``None`` for valid-
convolution networks, which have ``output_size(input_size)`` instead) and ``network_name``, so that the
pipeline can pad or tile inputs correctly.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from medseg3d.errors import InputError
from medseg3d.nets.havaei import InputCascadeCNN, TwoPathCNN
from medseg3d.nets.kayalibay import KayalibayNet
from medseg3d.nets.unet import TinyUNet3D, UNet2D, UNet3D


@dataclass(frozen=True)
class NetInfo:
    """What the registry knows about one network name.

    Attributes:
        name: registry name.
        description: one line.
        spatial_dims: 2 or 3.
        input_rule: which input sizes the network takes, e.g. ``"multiple of 8"`` or
            ``"output = input - 184 (valid convs)"`` (for the default arguments).
        builder: the network class.
        defaults: arguments the name adds to the class defaults.
        fixed_n_classes: the only accepted ``n_classes`` (``None``: any).
    """

    name: str
    description: str
    spatial_dims: int
    input_rule: str
    builder: Callable[..., nn.Module] = field(repr=False)
    defaults: dict[str, Any] = field(default_factory=dict)
    fixed_n_classes: int | None = None

    def options(self) -> list[str]:
        """Keyword arguments accepted as overrides (the builder's, minus in_channels and n_classes)."""
        parameters = inspect.signature(self.builder).parameters
        return [name for name in parameters if name not in ("self", "in_channels", "n_classes")]


_REGISTRY: dict[str, NetInfo] = {}


def _register(info: NetInfo) -> None:
    _REGISTRY[info.name] = info


_register(
    NetInfo(
        "kayalibay",
        "Kayalibay et al. 2017 fcn_rffc4: concat skips, multi-scale maps (paper's main net)",
        3,
        "multiple of 8",
        KayalibayNet,
    )
)
_register(
    NetInfo(
        "kayalibay-sum",
        "Kayalibay ablation fcn_rffc3: long skips merged by element-wise sum",
        3,
        "multiple of 8",
        KayalibayNet,
        {"merge": "sum"},
    )
)
_register(
    NetInfo(
        "kayalibay-noskip",
        "Kayalibay ablation fcn_rffc5: no long skip connections",
        3,
        "multiple of 8",
        KayalibayNet,
        {"merge": "none"},
    )
)
_register(
    NetInfo(
        "kayalibay-single",
        "Kayalibay ablation: concat skips, full-resolution map only",
        3,
        "multiple of 8",
        KayalibayNet,
        {"multiscale": False},
    )
)
_register(
    NetInfo(
        "kayalibay-deep",
        "Kayalibay res_fcn_concat: two convs per level, pre-activation residual",
        3,
        "multiple of 8",
        KayalibayNet,
        {"blocks_per_level": 2},
    )
)
_register(
    NetInfo(
        "kayalibay-deep-sum",
        "Kayalibay res_fcn_add: two convs per level, sum skips, ReLU",
        3,
        "multiple of 8",
        KayalibayNet,
        {"blocks_per_level": 2, "merge": "sum", "act": "relu"},
    )
)
_register(
    NetInfo(
        "unet3d",
        "nnU-Net-like padded 3D U-Net, 32-320 channels, instance norm, LeakyReLU",
        3,
        "multiple of 16",
        UNet3D,
    )
)
_register(
    NetInfo(
        "unet2d",
        "Ronneberger et al. 2015 U-Net, valid convs, 64-1024 channels, overlap-tile",
        2,
        "output = input - 184 (valid convs)",
        UNet2D,
    )
)
_register(
    NetInfo(
        "twopath",
        "Havaei et al. 2017 TwoPathCNN, 2D, local + global pathways, maxout",
        2,
        "output = input - 32 (valid convs)",
        TwoPathCNN,
    )
)
_register(
    NetInfo(
        "inputcascade",
        "Havaei et al. 2017 InputCascadeCNN: TwoPathCNN probabilities as extra inputs",
        2,
        "output = input - 64 (valid convs)",
        InputCascadeCNN,
    )
)
_register(
    NetInfo(
        "tiny-unet",
        "course project's binary 3D U-Net, ~70k parameters, 20 conv layers, 1 logit",
        3,
        "multiple of 8",
        TinyUNet3D,
        fixed_n_classes=1,
    )
)


def list_networks() -> list[NetInfo]:
    """All registered networks, in registration order."""
    return list(_REGISTRY.values())


def network_names() -> list[str]:
    """All registered names."""
    return list(_REGISTRY)


def get_network_info(name: str) -> NetInfo:
    """The :class:`NetInfo` of ``name``.

    Raises:
        InputError: for an unknown name, listing the valid names.
    """
    if name not in _REGISTRY:
        raise InputError(f"unknown network {name!r}; choose one of: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def build_network(name: str, in_channels: int, n_classes: int, **overrides: Any) -> nn.Module:
    """Build a registered network.

    Args:
        name: a registered name (see :func:`list_networks`).
        in_channels: input channels.
        n_classes: output channels (``tiny-unet`` only accepts 1).
        **overrides: constructor arguments replacing the registered defaults, e.g. ``levels=5``.

    Returns:
        The network, with attributes ``spatial_dims``, ``size_multiple`` and ``network_name``.

    Raises:
        InputError: for an unknown name or override (listing the valid choices) or a bad value.

    Example:
        >>> net = build_network("kayalibay-sum", in_channels=4, n_classes=5, base_channels=16)
    """
    info = get_network_info(name)
    valid_options = info.options()
    unknown = sorted(set(overrides) - set(valid_options))
    if unknown:
        raise InputError(
            f"unknown option(s) {', '.join(unknown)} for network {name!r}; "
            f"valid options: {', '.join(valid_options)}"
        )
    if info.fixed_n_classes is not None:
        if n_classes != info.fixed_n_classes:
            raise InputError(
                f"network {name!r} has exactly {info.fixed_n_classes} output channel(s) "
                f"(binary, for BCE on logits), got n_classes={n_classes}"
            )
        arguments = {"in_channels": in_channels, **info.defaults, **overrides}
    else:
        arguments = {"in_channels": in_channels, "n_classes": n_classes, **info.defaults, **overrides}
    try:
        model = info.builder(**arguments)
    except TypeError as error:
        raise InputError(f"bad arguments for network {name!r}: {error}") from None
    model.network_name = name
    return model


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters of ``model``.

    Args:
        model: any module.
        trainable_only: count only parameters with ``requires_grad``.
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def input_rule_of(model: nn.Module) -> str:
    """The input-size rule of a built network: ``"multiple of 8"``, ``"output = input - 32 (valid convs)"``.

    Args:
        model: a network built by :func:`build_network` (or any module with ``size_multiple`` /
            ``output_size``).
    """
    multiple = getattr(model, "size_multiple", None)
    if multiple:
        return f"multiple of {multiple}"
    output_size = getattr(model, "output_size", None)
    if callable(output_size) and hasattr(model, "size_reduction"):
        reduction = model.size_reduction() if callable(model.size_reduction) else model.size_reduction
        return f"output = input - {reduction} (valid convs)"
    return "any size"


def describe_networks(in_channels: int = 4, n_classes: int = 5) -> str:
    """A plain-text table of the registered networks: name, parameters, dims, input rule, description.

    Networks are built on the ``meta`` device, so no memory is allocated for their weights.

    Args:
        in_channels: input channels used to count the parameters.
        n_classes: classes used to count the parameters (networks with a fixed class count use theirs).
    """
    rows = [("name", "params", "dims", "input size", "description")]
    for info in list_networks():
        classes = info.fixed_n_classes if info.fixed_n_classes is not None else n_classes
        with torch.device("meta"):
            model = build_network(info.name, in_channels, classes)
        rows.append(
            (
                info.name,
                f"{count_parameters(model):,}",
                f"{info.spatial_dims}D",
                input_rule_of(model),
                info.description,
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    lines = []
    for index, row in enumerate(rows):
        cells = [
            row[0].ljust(widths[0]),
            row[1].rjust(widths[1]),
            row[2].ljust(widths[2]),
            row[3].ljust(widths[3]),
            row[4],
        ]
        lines.append("  ".join(cells))
        if index == 0:
            lines.append("  ".join(["-" * width for width in widths] + ["-" * len("description")]))
    lines.append(f"(parameters for {in_channels} input channels and {n_classes} classes)")
    return "\n".join(lines)
