"""The network registry: names, defaults, overrides, errors, attributes the pipeline relies on, the table."""

from __future__ import annotations

import pytest
import torch

from medseg3d.errors import InputError
from medseg3d.nets import (
    InputCascadeCNN,
    build_network,
    count_parameters,
    describe_networks,
    input_rule_of,
    list_networks,
    network_names,
)

from .helpers import SMALL_CASES, n_classes_for

EXPECTED_NAMES = [
    "kayalibay",
    "kayalibay-sum",
    "kayalibay-noskip",
    "kayalibay-single",
    "kayalibay-deep",
    "kayalibay-deep-sum",
    "unet3d",
    "unet2d",
    "twopath",
    "inputcascade",
    "tiny-unet",
]

PAPER_COUNTS = {
    "kayalibay": 410_072,
    "kayalibay-sum": 337_496,
    "kayalibay-noskip": 337_496,
    "kayalibay-single": 409_592,
    "kayalibay-deep": 690_552,
    "kayalibay-deep-sum": 617_360,
}


def test_registered_names():
    assert network_names() == EXPECTED_NAMES
    assert sorted(SMALL_CASES) == sorted(EXPECTED_NAMES)


@pytest.mark.parametrize("name", list(PAPER_COUNTS))
def test_registered_kayalibay_variants_have_the_paper_counts(name):
    with torch.device("meta"):
        net = build_network(name, 4, 5)
    assert count_parameters(net) == PAPER_COUNTS[name]


def test_net_info_fields():
    for info in list_networks():
        assert info.description and "\n" not in info.description
        assert info.spatial_dims in (2, 3)
        assert info.input_rule


@pytest.mark.parametrize("name", EXPECTED_NAMES)
def test_built_models_carry_pipeline_attributes(name):
    info = next(i for i in list_networks() if i.name == name)
    with torch.device("meta"):
        net = build_network(name, 4, n_classes_for(name))
    assert net.spatial_dims == info.spatial_dims
    assert net.network_name == name
    assert net.size_multiple is None or isinstance(net.size_multiple, int)
    if net.size_multiple is None:
        assert callable(net.output_size)
    assert input_rule_of(net) == info.input_rule


@pytest.mark.parametrize("name", EXPECTED_NAMES)
def test_small_forward_of_every_registered_network(name):
    overrides, shape = SMALL_CASES[name]
    net = build_network(name, shape[1], n_classes_for(name), **overrides)
    y = net(torch.randn(*shape))
    expected_spatial = list(shape[2:])
    if net.size_multiple is None:
        expected_spatial = list(net.output_size(tuple(shape[2:])))
    assert list(y.shape) == [shape[0], n_classes_for(name), *expected_spatial]


def test_unknown_name_lists_the_choices():
    with pytest.raises(InputError) as caught:
        build_network("vnet", 4, 5)
    message = str(caught.value)
    assert "vnet" in message and all(name in message for name in EXPECTED_NAMES)


def test_unknown_override_lists_the_valid_options():
    with pytest.raises(InputError) as caught:
        build_network("kayalibay", 4, 5, depth=5)
    message = str(caught.value)
    assert "depth" in message
    for option in (
        "base_channels",
        "levels",
        "blocks_per_level",
        "merge",
        "multiscale",
        "spatial_dims",
        "act",
    ):
        assert option in message


def test_overrides_replace_defaults():
    net = build_network("kayalibay-sum", 4, 5, base_channels=2, levels=3)
    assert net.merge == "sum" and net.levels == 3 and net.size_multiple == 4
    net = build_network("kayalibay-sum", 4, 5, merge="concat")
    assert net.merge == "concat"


def test_bad_override_value_is_an_input_error():
    with pytest.raises(InputError):
        build_network("kayalibay", 4, 5, merge="mean")


def test_tiny_unet_accepts_only_one_class():
    assert build_network("tiny-unet", 4, 1).head.out_channels == 1
    with pytest.raises(InputError, match="exactly 1 output channel"):
        build_network("tiny-unet", 4, 5)


def test_count_parameters_trainable_only():
    net = InputCascadeCNN(4, 5, local_channels=(4, 4), global_channels=4)
    total = count_parameters(net)
    net.freeze_first()
    assert count_parameters(net, trainable_only=True) == total - count_parameters(net.first)


def test_describe_networks_table():
    table = describe_networks(in_channels=4, n_classes=5)
    lines = table.splitlines()
    assert lines[0].split()[:4] == ["name", "params", "dims", "input"]
    for name in EXPECTED_NAMES:
        assert any(line.startswith(name + " ") for line in lines)
    assert "410,072" in table and "617,360" in table
    assert "multiple of 8" in table and "output = input - 184 (valid convs)" in table
