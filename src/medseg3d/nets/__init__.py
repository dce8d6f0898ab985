"""Segmentation networks: Kayalibay et al. 2017 and its neighbours, by class or by registry name.

Example:
    >>> from medseg3d.nets import build_network, pad_to_multiple, unpad
    >>> net = build_network("kayalibay", in_channels=4, n_classes=5)
    >>> padded, pad_spec = pad_to_multiple(volume, net.size_multiple)
    >>> logits = unpad(net(padded), pad_spec)
"""

from __future__ import annotations

from medseg3d.nets.blocks import upsample_linear_x2
from medseg3d.nets.havaei import InputCascadeCNN, TwoPathCNN, paper_weight_count
from medseg3d.nets.kayalibay import KayalibayNet
from medseg3d.nets.padding import pad_to_multiple, unpad
from medseg3d.nets.prior import init_output_prior, prior_biases
from medseg3d.nets.registry import (
    NetInfo,
    build_network,
    count_parameters,
    describe_networks,
    get_network_info,
    input_rule_of,
    list_networks,
    network_names,
)
from medseg3d.nets.unet import TinyUNet3D, UNet2D, UNet3D

__all__ = [
    "InputCascadeCNN",
    "KayalibayNet",
    "NetInfo",
    "TinyUNet3D",
    "TwoPathCNN",
    "UNet2D",
    "UNet3D",
    "build_network",
    "count_parameters",
    "describe_networks",
    "get_network_info",
    "init_output_prior",
    "input_rule_of",
    "list_networks",
    "network_names",
    "pad_to_multiple",
    "paper_weight_count",
    "prior_biases",
    "unpad",
    "upsample_linear_x2",
]
