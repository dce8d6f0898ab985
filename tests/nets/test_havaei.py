"""Havaei et al. 2017: TwoPathCNN (33 -> 1, fully convolutional), InputCascadeCNN (65 -> 1), the paper's
parameter counts, size helpers and maxout."""

from __future__ import annotations

import pytest
import torch

from medseg3d.errors import InputError
from medseg3d.nets import InputCascadeCNN, TwoPathCNN, paper_weight_count
from medseg3d.nets.havaei import MaxoutConv2d


def test_two_path_maps_a_33x33_patch_to_one_pixel():
    net = TwoPathCNN(4, 5)
    assert net(torch.randn(2, 4, 33, 33)).shape == (2, 5, 1, 1)


def test_paper_parameter_counts_are_reproduced():
    with torch.device("meta"):
        two_path = TwoPathCNN(4, 5)
        cascade = InputCascadeCNN(4, 5)
    assert paper_weight_count(two_path) == 651_488  # Havaei et al. Figure 2
    assert paper_weight_count(cascade.second) == 802_368  # Figure 3a, second CNN (9 input channels)


def test_layer_widths_of_the_paper():
    net = TwoPathCNN(4, 5, maxout_pieces=2)
    local_first, _, local_second, _ = net.local_path
    assert (local_first.out_channels, local_first.conv.kernel_size) == (64, (7, 7))
    assert (local_second.out_channels, local_second.conv.kernel_size) == (64, (3, 3))
    assert (net.global_path.out_channels, net.global_path.conv.kernel_size) == (160, (13, 13))
    assert net.classifier.in_channels == 224 and net.classifier.kernel_size == (21, 21)
    assert local_first.conv.out_channels == 128  # two pieces per maxout map


def test_two_path_is_fully_convolutional_on_a_whole_slice():
    net = TwoPathCNN(4, 3, local_channels=(8, 8), global_channels=16).eval()
    image = torch.randn(1, 4, 45, 40)
    with torch.no_grad():
        dense = net(image)
        assert dense.shape == (1, 3, 13, 8)
        for row, column in [(0, 0), (5, 3), (12, 7)]:
            patch = image[:, :, row : row + 33, column : column + 33]
            assert torch.allclose(net(patch)[:, :, 0, 0], dense[:, :, row, column], atol=1e-5)


def test_input_cascade_is_fully_convolutional_and_matches_the_patch_definition():
    net = InputCascadeCNN(4, 5, local_channels=(8, 8), global_channels=16).eval()
    image = torch.randn(1, 4, 70, 66)
    with torch.no_grad():
        dense = net(image)
        assert dense.shape == (1, 5, 6, 2)
        row, column = 4, 1
        window = image[:, :, row : row + 65, column : column + 65]
        probabilities = torch.softmax(net.first(window), dim=1)
        assert probabilities.shape == (1, 5, 33, 33)
        second_input = torch.cat([window[:, :, 16:49, 16:49], probabilities], dim=1)
        expected = net.second(second_input)[:, :, 0, 0]
        assert torch.allclose(dense[:, :, row, column], expected, atol=1e-5)


def test_size_helpers():
    with torch.device("meta"):
        two_path = TwoPathCNN(4, 5)
        cascade = InputCascadeCNN(4, 5)
    assert two_path.output_size(33) == 1
    assert two_path.output_size((240, 240)) == (208, 208)
    assert two_path.input_size_for(1) == 33
    assert two_path.input_size_for((208, 100)) == (240, 132)
    assert cascade.output_size(65) == 1
    assert cascade.input_size_for(1) == 65
    assert two_path.size_multiple is None and two_path.spatial_dims == 2
    with pytest.raises(InputError, match="at least 33"):
        two_path.output_size(32)
    with pytest.raises(InputError):
        cascade.input_size_for(0)


def test_too_small_inputs_raise_input_error():
    with pytest.raises(InputError, match="pad the slice by 16"):
        TwoPathCNN(4, 5)(torch.zeros(1, 4, 32, 40))
    with pytest.raises(InputError, match="pad the slice by 32"):
        InputCascadeCNN(4, 5, local_channels=(4, 4), global_channels=4)(torch.zeros(1, 4, 64, 70))


def test_maxout_takes_the_maximum_over_consecutive_maps():
    layer = MaxoutConv2d(1, 2, 1, pieces=3)
    with torch.no_grad():
        layer.conv.weight.copy_(torch.arange(6.0).reshape(6, 1, 1, 1))
        layer.conv.bias.zero_()
    out = layer(torch.ones(1, 1, 2, 2))
    assert torch.equal(out[0, :, 0, 0], torch.tensor([2.0, 5.0]))


def test_freeze_first_and_gradients():
    net = InputCascadeCNN(4, 5, local_channels=(4, 4), global_channels=4)
    net.freeze_first()
    net(torch.randn(2, 4, 65, 65)).sum().backward()
    assert all(p.grad is None for p in net.first.parameters())
    assert all(p.grad is not None for p in net.second.parameters())
