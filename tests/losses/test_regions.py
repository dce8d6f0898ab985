"""Region (sigmoid, overlapping channels) losses: known answers, reductions, bad input."""

import math

import pytest
import torch

from medseg3d.errors import InputError
from medseg3d.losses import RegionDiceBCELoss, RegionDiceLoss

LN2, LN3 = math.log(2.0), math.log(3.0)


def tiny_case():
    """Two regions, two voxels. Sigmoid(0) = 0.5, sigmoid(ln 3) = 0.75.

    region 0: p = (.5, .75), t = (1, 0); region 1: p = (.75, .75), t = (1, 1) (overlaps region 0).
    """
    logits = torch.tensor([[[0.0, LN3], [LN3, LN3]]])
    target = torch.tensor([[[1.0, 0.0], [1.0, 1.0]]])
    return logits, target


def test_region_dice_known_answer_by_hand():
    logits, target = tiny_case()
    # region 0: 2 * .5 / (1.25 + 1) = 4/9; region 1: 2 * 1.5 / (1.5 + 2) = 6/7
    expected = 1 - (4 / 9 + 6 / 7) / 2
    assert RegionDiceLoss(smooth=0.0)(logits, target).item() == pytest.approx(expected, rel=1e-6)
    # squared denominators: region 0: 1 / (.8125 + 1); region 1: 3 / (1.125 + 2)
    expected_sq = 1 - (1 / 1.8125 + 3 / 3.125) / 2
    assert RegionDiceLoss(smooth=0.0, squared=True)(logits, target).item() == pytest.approx(
        expected_sq, rel=1e-6
    )


def test_region_dice_bce_known_answer_by_hand():
    logits, target = tiny_case()
    dice = 1 - (4 / 9 + 6 / 7) / 2
    # BCE terms: ln 2, ln 4, ln(4/3), ln(4/3); mean over 4 elements
    bce = (LN2 + 2 * LN2 + 2 * (2 * LN2 - LN3)) / 4
    loss = RegionDiceBCELoss(bce_weight=0.5, dice_weight=2.0, smooth=0.0)
    assert loss(logits, target).item() == pytest.approx(2.0 * dice + 0.5 * bce, rel=1e-6)


def test_bool_target_accepted_and_perfect_prediction_zero():
    target = torch.tensor([[[True, False, True], [True, True, True], [False, False, False]]])
    logits = torch.where(target, 100.0, -100.0).requires_grad_(True)
    for loss_fn in (RegionDiceLoss(), RegionDiceBCELoss()):
        loss = loss_fn(logits, target)
        loss.backward()
        assert loss.item() == pytest.approx(0.0, abs=1e-6)
        assert torch.isfinite(logits.grad).all()


def test_batch_vs_image_reduction():
    gen = torch.Generator().manual_seed(10)
    logits = torch.randn(2, 3, 6, generator=gen)
    target = (torch.rand(2, 3, 6, generator=gen) > 0.6).float()
    image, batch = RegionDiceLoss(reduction="image"), RegionDiceLoss(reduction="batch")
    per_image = (image(logits[:1], target[:1]) + image(logits[1:], target[1:])) / 2
    joined = image(
        torch.cat([logits[0], logits[1]], dim=1)[None], torch.cat([target[0], target[1]], dim=1)[None]
    )
    assert image(logits, target).item() == pytest.approx(per_image.item(), rel=1e-6)
    assert batch(logits, target).item() == pytest.approx(joined.item(), rel=1e-6)
    assert abs(batch(logits, target).item() - per_image.item()) > 1e-4


def test_rejects_bad_input():
    with pytest.raises(InputError, match="shape"):
        RegionDiceLoss()(torch.randn(1, 3, 4), torch.zeros(1, 4))
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        RegionDiceBCELoss()(torch.randn(1, 3, 4), torch.full((1, 3, 4), 4.0))
    with pytest.raises(InputError, match="weights"):
        RegionDiceBCELoss(bce_weight=-1)
