"""RegionBCELoss ("bce"): known answers by hand, and the 1-output binary set-up of the tiny U-Net."""

import math

import pytest
import torch

from medseg3d.errors import InputError
from medseg3d.losses import RegionBCELoss, build_loss
from medseg3d.nets import build_network


def test_known_answer():
    # sigmoid(0) = 1/2 and sigmoid(ln 3) = 3/4: -(ln 1/2 + ln 1/4) / 2 = 1.5 ln 2
    logits = torch.tensor([0.0, math.log(3.0)]).view(1, 1, 2, 1)
    target = torch.tensor([1.0, 0.0]).view(1, 1, 2, 1)
    assert RegionBCELoss()(logits, target).item() == pytest.approx(1.5 * math.log(2), rel=1e-6)
    # pos_weight multiplies the positive term only: -(2 ln 1/2 + ln 1/4) / 2 = 2 ln 2
    assert RegionBCELoss(pos_weight=2.0)(logits, target).item() == pytest.approx(2 * math.log(2), rel=1e-6)


def test_mean_over_channels_and_boolean_targets():
    logits = torch.zeros(2, 3, 4, 4, 4)
    target = torch.rand(2, 3, 4, 4, 4) > 0.5
    assert build_loss("bce")(logits, target).item() == pytest.approx(math.log(2), rel=1e-6)


@pytest.mark.slow  # slow: keeps the default suite near 5 minutes; run with -m slow
def test_trains_the_one_output_tiny_unet():
    torch.manual_seed(0)
    net = build_network("tiny-unet", 1, 1)
    loss = build_loss("bce", n_classes=1)
    assert loss.kind == "region"
    x = torch.randn(1, 1, 16, 16, 16)
    y = (x > 0.5).float()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    first = None
    for _ in range(15):
        value = loss(net(x), y)
        first = value.item() if first is None else first
        opt.zero_grad()
        value.backward()
        opt.step()
    assert value.item() < first


def test_errors():
    with pytest.raises(InputError, match="pos_weight"):
        RegionBCELoss(pos_weight=0.0)
    with pytest.raises(InputError, match="shape of logits"):
        RegionBCELoss()(torch.zeros(1, 1, 4, 4), torch.zeros(1, 4, 4))
