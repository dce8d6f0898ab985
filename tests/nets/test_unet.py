"""UNet3D (padded, deep supervision), UNet2D (Ronneberger et al. 2015: valid convs, 572 -> 388, 23 conv
layers, overlap-tile helpers) and TinyUNet3D (~69k parameters, 20 conv layers, one output channel)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from medseg3d.errors import InputError
from medseg3d.nets import TinyUNet3D, UNet2D, UNet3D, count_parameters

CONV_TYPES_2D = (nn.Conv2d, nn.ConvTranspose2d)
CONV_TYPES_3D = (nn.Conv3d, nn.ConvTranspose3d)


def count_conv_layers(model: nn.Module, types) -> int:
    return sum(isinstance(module, types) for module in model.modules())


# ---------------------------------------------------------------- UNet3D


def test_unet3d_default_channels_are_nnunet_like():
    with torch.device("meta"):
        net = UNet3D(4, 5)
    assert net.channels == (32, 64, 128, 256, 320)
    assert net.size_multiple == 16
    assert net.spatial_dims == 3
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._NormBase)]
    assert norms and all(isinstance(m, nn.InstanceNorm3d) for m in norms)
    assert any(isinstance(m, nn.LeakyReLU) for m in net.modules())


@pytest.mark.parametrize("norm", ["instance", "batch"])
@pytest.mark.parametrize("channels", [(4, 8), (4, 8, 16), (2, 4, 8, 8)])
def test_unet3d_output_shape(norm, channels):
    net = UNet3D(3, 2, channels=channels, norm=norm)
    size = 2 ** len(channels)
    x = torch.randn(2, 3, size, size, 2 * size)
    assert net(x).shape == (2, 2, size, size, 2 * size)


def test_unet3d_base_channels_and_levels():
    net = UNet3D(1, 2, base_channels=4, levels=3, max_channels=6)
    assert net.channels == (4, 6, 6)
    assert net(torch.randn(1, 1, 8, 8, 8)).shape == (1, 2, 8, 8, 8)


def test_unet3d_2d_variant():
    net = UNet3D(1, 3, channels=(4, 8, 16), spatial_dims=2)
    assert net(torch.randn(2, 1, 16, 12)).shape == (2, 3, 16, 12)


def test_unet3d_deep_supervision_list_in_training_tensor_in_eval():
    net = UNet3D(4, 5, channels=(4, 8, 16, 16), deep_supervision=True)
    x = torch.randn(2, 4, 16, 16, 16)
    outputs = net.train()(x)
    assert isinstance(outputs, list)
    assert [tuple(o.shape) for o in outputs] == [(2, 5, 16, 16, 16), (2, 5, 8, 8, 8), (2, 5, 4, 4, 4)]
    sum(o.mean() for o in outputs).backward()
    assert all(p.grad is not None for p in net.parameters())
    with torch.no_grad():
        logits = net.eval()(x)
    assert isinstance(logits, torch.Tensor) and logits.shape == (2, 5, 16, 16, 16)


def test_unet3d_rejects_bad_sizes_and_norms():
    net = UNet3D(4, 5, channels=(4, 8, 16))
    with pytest.raises(InputError, match="multiple of 4"):
        net(torch.zeros(1, 4, 8, 8, 6))
    with pytest.raises(InputError):
        UNet3D(4, 5, norm="group")
    with pytest.raises(InputError):
        UNet3D(4, 5, channels=(8,))


# ---------------------------------------------------------------- UNet2D


def test_unet2d_sizes_of_the_paper():
    with torch.device("meta"):
        net = UNet2D(1, 2)
    assert net.output_size(572) == 388
    assert net.input_size_for(388) == 572
    assert net.output_size((572, 636)) == (388, 452)
    assert net.size_reduction() == 184
    assert net.size_multiple is None and net.spatial_dims == 2


def test_unet2d_has_23_conv_layers_and_64_to_1024_channels():
    with torch.device("meta"):
        net = UNet2D(1, 2)
    assert count_conv_layers(net, CONV_TYPES_2D) == 23
    widths = [stage[0].out_channels for stage in net.encoder]
    assert widths == [64, 128, 256, 512, 1024]
    ups = [up for up in net.ups]
    assert [(u.in_channels, u.out_channels) for u in ups] == [(1024, 512), (512, 256), (256, 128), (128, 64)]
    assert all(conv.padding == (0, 0) for conv in net.modules() if isinstance(conv, nn.Conv2d))


def test_unet2d_input_size_for_rounds_up_to_a_valid_output():
    with torch.device("meta"):
        net = UNet2D(1, 2)
    for wanted in (1, 4, 5, 100, 388, 389):
        input_size = net.input_size_for(wanted)
        output = net.output_size(input_size)
        assert output >= wanted and output - wanted < 16
        assert output % 16 == 4


def test_unet2d_invalid_input_size_raises():
    with torch.device("meta"):
        net = UNet2D(1, 2)
    with pytest.raises(InputError, match="next valid input length is 572"):
        net.output_size(570)
    with pytest.raises(InputError):
        net.output_size(100)


def test_unet2d_forward_on_a_small_valid_input():
    net = UNet2D(1, 2, base_channels=2)
    x = torch.randn(1, 1, 188, 204)
    y = net(x)
    assert y.shape == (1, 2, 4, 20)
    y.mean().backward()
    assert all(p.grad is not None for p in net.parameters())
    with pytest.raises(InputError):
        net(torch.randn(1, 1, 190, 204))


def test_unet2d_levels_change_the_size_rule():
    net = UNet2D(1, 2, base_channels=2, levels=3)
    assert net.size_reduction() == 40
    assert net(torch.randn(1, 1, 44, 52)).shape == (1, 2, net.output_size(44), net.output_size(52))


@pytest.mark.slow
def test_unet2d_full_size_forward_572_to_388():
    net = UNet2D(1, 2).eval()
    with torch.no_grad():
        assert net(torch.randn(1, 1, 572, 572)).shape == (1, 2, 388, 388)


# ---------------------------------------------------------------- TinyUNet3D


@pytest.mark.parametrize("in_channels", [1, 4])
def test_tiny_unet_parameter_count_is_about_69000(in_channels):
    net = TinyUNet3D(in_channels)
    assert abs(count_parameters(net) - 69_000) <= 0.03 * 69_000


def test_tiny_unet_has_20_conv_layers_and_one_output_channel():
    net = TinyUNet3D(1)
    assert count_conv_layers(net, CONV_TYPES_3D) == 20
    assert net.n_classes == 1
    assert net.head.out_channels == 1


@pytest.mark.parametrize("size", [(16, 16, 16), (32, 32, 32), (8, 16, 24)])
def test_tiny_unet_shapes_and_bce(size):
    net = TinyUNet3D(1)
    x = torch.randn(2, 1, *size)
    logits = net(x)
    assert logits.shape == (2, 1, *size)
    target = (x > 0).float()
    nn.functional.binary_cross_entropy_with_logits(logits, target).backward()
    assert all(p.grad is not None for p in net.parameters())


def test_tiny_unet_rejects_bad_sizes():
    with pytest.raises(InputError, match="multiple of 8"):
        TinyUNet3D(1)(torch.zeros(1, 1, 12, 16, 16))
