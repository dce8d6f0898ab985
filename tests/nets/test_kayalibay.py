"""KayalibayNet: exact parameter counts of the authors' models, shapes over the argument grid, input-size
errors, the Theano linear up-sampling rule, padding helpers, gradients and initialisation."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from medseg3d.errors import InputError
from medseg3d.nets import KayalibayNet, count_parameters, pad_to_multiple, unpad, upsample_linear_x2


@pytest.mark.parametrize(
    ("in_channels", "arguments", "expected"),
    [
        (4, {}, 410_072),  # fcn_rffc4
        (4, {"merge": "sum"}, 337_496),  # fcn_rffc3
        (4, {"merge": "none"}, 337_496),  # fcn_rffc5
        (4, {"multiscale": False}, 409_592),
        (4, {"blocks_per_level": 2}, 690_552),  # res_fcn_concat
        (4, {"blocks_per_level": 2, "merge": "sum", "act": "relu"}, 617_360),  # res_fcn_add
        (1, {}, 409_424),
        (4, {"norm": "instance"}, 410_072),  # instance norm: same affine parameters as batch norm
    ],
)
def test_parameter_counts_match_the_authors_models(in_channels, arguments, expected):
    with torch.device("meta"):
        net = KayalibayNet(in_channels, 5, **arguments)
    assert count_parameters(net) == expected


def test_no_convolution_has_a_bias():
    net = KayalibayNet(4, 5)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv3d)]
    assert convs and all(conv.bias is None for conv in convs)


SHAPE_GRID = list(itertools.product((2, 3, 4, 5), ("concat", "sum", "none"), (True, False)))


@pytest.mark.parametrize(("levels", "merge", "multiscale"), SHAPE_GRID)
def test_output_shape_3d(levels, merge, multiscale):
    size = max(8, 2 ** (levels - 1))
    net = KayalibayNet(4, 3, base_channels=2, levels=levels, merge=merge, multiscale=multiscale)
    x = torch.randn(2, 4, size, size, 2 * size)
    assert net(x).shape == (2, 3, size, size, 2 * size)


@pytest.mark.parametrize(
    ("levels", "blocks_per_level", "merge"),
    list(itertools.product((2, 4, 5), (1, 2, 3), ("concat", "sum", "none"))),
)
def test_output_shape_2d(levels, blocks_per_level, merge):
    net = KayalibayNet(
        3, 4, base_channels=2, levels=levels, blocks_per_level=blocks_per_level, merge=merge, spatial_dims=2
    )
    x = torch.randn(2, 3, 16, 32)
    assert net(x).shape == (2, 4, 16, 32)


@pytest.mark.parametrize("blocks_per_level", [2, 3])
def test_deep_variant_shape_3d(blocks_per_level):
    net = KayalibayNet(4, 5, base_channels=4, blocks_per_level=blocks_per_level, act="relu")
    assert net(torch.randn(1, 4, 16, 16, 24)).shape == (1, 5, 16, 16, 24)


def test_number_of_segmentation_maps_follows_levels():
    assert len(KayalibayNet(4, 5, levels=2, base_channels=2).coarse_maps) == 0
    assert len(KayalibayNet(4, 5, levels=3, base_channels=2).coarse_maps) == 1
    assert len(KayalibayNet(4, 5, levels=4, base_channels=2).coarse_maps) == 2
    assert len(KayalibayNet(4, 5, levels=5, base_channels=2).coarse_maps) == 2
    assert len(KayalibayNet(4, 5, levels=5, base_channels=2, multiscale=False).coarse_maps) == 0


def test_size_multiple_attribute():
    assert KayalibayNet(4, 5).size_multiple == 8
    assert KayalibayNet(4, 5, levels=5, base_channels=2).size_multiple == 16
    assert KayalibayNet(4, 5).spatial_dims == 3


def test_bad_input_size_raises_one_line_input_error():
    net = KayalibayNet(4, 5)
    with pytest.raises(InputError) as caught:
        net(torch.zeros(1, 4, 16, 12, 16))
    message = str(caught.value)
    assert "\n" not in message
    assert "[16, 12, 16]" in message
    assert "multiple of 8" in message
    assert "pad the input or use medseg3d.nets.pad_to_multiple" in message
    assert isinstance(caught.value, ValueError)


def test_wrong_channels_or_rank_raise_input_error():
    net = KayalibayNet(4, 5)
    with pytest.raises(InputError, match="4 input channels"):
        net(torch.zeros(1, 3, 16, 16, 16))
    with pytest.raises(InputError, match="expects a"):
        net(torch.zeros(4, 16, 16, 16))


@pytest.mark.parametrize(
    "arguments",
    [
        {"levels": 1},
        {"merge": "avg"},
        {"act": "gelu"},
        {"spatial_dims": 4},
        {"blocks_per_level": 0},
        {"init": "xavier"},
        {"norm": "group"},
    ],
)
def test_bad_arguments_raise_input_error(arguments):
    with pytest.raises(InputError):
        KayalibayNet(4, 5, **arguments)


def test_linear_upsampling_known_answer_1d_and_2d():
    x = torch.tensor([[[0.0, 2.0, 6.0]]])
    assert torch.equal(upsample_linear_x2(x), torch.tensor([[[0.0, 1.0, 2.0, 4.0, 6.0, 6.0]]]))
    grid = torch.tensor([[[[0.0, 2.0], [4.0, 8.0]]]])
    expected = torch.tensor(
        [[[[0.0, 1.0, 2.0, 2.0], [2.0, 3.5, 5.0, 5.0], [4.0, 6.0, 8.0, 8.0], [4.0, 6.0, 8.0, 8.0]]]]
    )
    assert torch.equal(upsample_linear_x2(grid), expected)


def test_linear_upsampling_matches_the_rule_on_a_random_volume():
    x = torch.randn(1, 2, 3, 4, 5)
    y = upsample_linear_x2(x)
    assert y.shape == (1, 2, 6, 8, 10)
    padded = F.pad(x, (0, 1, 0, 1, 0, 1), mode="replicate")  # the last sample repeated
    for i, j, k in itertools.product(range(6), range(8), range(10)):
        corners = padded[
            :, :, i // 2 : i // 2 + 1 + i % 2, j // 2 : j // 2 + 1 + j % 2, k // 2 : k // 2 + 1 + k % 2
        ]
        assert torch.allclose(y[:, :, i, j, k], corners.mean(dim=(2, 3, 4)), atol=1e-6)


def test_linear_upsampling_differs_from_torch_trilinear():
    x = torch.randn(1, 1, 4, 4, 4)
    for align_corners in (False, True):
        reference = F.interpolate(x, scale_factor=2, mode="trilinear", align_corners=align_corners)
        assert not torch.allclose(upsample_linear_x2(x), reference)


def test_pad_to_multiple_and_unpad_round_trip():
    x = torch.randn(1, 4, 61, 75, 72)
    padded, pad_spec = pad_to_multiple(x, 8)
    assert padded.shape == (1, 4, 64, 80, 72)
    assert pad_spec == ((1, 2), (2, 3), (0, 0))
    assert torch.equal(unpad(padded, pad_spec), x)
    net = KayalibayNet(4, 5, base_channels=2).eval()
    with torch.no_grad():
        logits = unpad(net(padded), pad_spec)
    assert logits.shape == (1, 5, 61, 75, 72)


def test_pad_to_multiple_per_axis_and_modes():
    x = torch.randn(1, 1, 5, 6)
    padded, pad_spec = pad_to_multiple(x, (4, 3), mode="reflect")
    assert padded.shape == (1, 1, 8, 6)
    assert torch.equal(unpad(padded, pad_spec), x)
    with pytest.raises(InputError):
        pad_to_multiple(x, (4, 3, 2))


def test_gradients_reach_every_parameter():
    for arguments in ({}, {"merge": "none", "multiscale": False}, {"blocks_per_level": 2, "merge": "sum"}):
        net = KayalibayNet(4, 5, base_channels=2, **arguments)
        net(torch.randn(2, 4, 8, 8, 16)).square().mean().backward()
        missing = [name for name, p in net.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
        assert not missing, (arguments, missing)


def test_paper_init_draws_every_parameter_from_n_0_001():
    net = KayalibayNet(4, 5, init="paper")
    values = torch.cat([p.detach().flatten() for p in net.parameters()])
    assert abs(values.mean().item()) < 1e-3
    assert values.std().item() == pytest.approx(0.01, rel=0.05)
    slopes = [m.weight for m in net.modules() if isinstance(m, torch.nn.PReLU)]
    assert all(s.abs().max() < 0.1 for s in slopes)


def test_default_init_is_kaiming():
    net = KayalibayNet(4, 5)
    first_conv = net.stem[0]
    fan_in = first_conv.weight[0].numel()
    expected_std = (2.0 / (1 + 0.25**2) / fan_in) ** 0.5
    assert first_conv.weight.std().item() == pytest.approx(expected_std, rel=0.15)
    norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm3d)]
    assert all(torch.all(m.weight == 1) and torch.all(m.bias == 0) for m in norms)


def test_instance_norm_keeps_no_running_statistics_and_normalises_each_volume():
    torch.manual_seed(0)
    net = KayalibayNet(4, 3, norm="instance")
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in net.modules())
    assert sum(isinstance(m, torch.nn.InstanceNorm3d) for m in net.modules()) > 10
    x = torch.randn(2, 4, 16, 16, 16)
    net.train()
    train_out = net(x)
    net.eval()
    with torch.no_grad():
        eval_out = net(x)
        alone = net(x[1:])
    # Equal up to float32 rounding: kernels chosen by batch size and thread count sum in other orders, and the
    # error grows with the output's scale and the ~20 layers (about 1.3e-5 seen on outputs of 6.3). 100 eps of
    # the largest output bounds that; batch statistics leaking in would differ by O(1).
    tol = 100 * torch.finfo(torch.float32).eps * float(eval_out.abs().max())
    assert (train_out - eval_out).abs().max() <= tol  # the same in training and inference
    assert (eval_out[1:] - alone).abs().max() <= tol  # independent of the other volumes of the batch
