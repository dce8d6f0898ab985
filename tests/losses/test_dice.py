"""DiceLoss (V-Net squared form and plain form): known answers, reductions, ignore_index, bad input."""

import math

import numpy as np
import pytest
import torch

from medseg3d.errors import InputError
from medseg3d.losses import DiceLoss

LN3 = math.log(3.0)


def tiny_case():
    """One image, 2 classes, 2 voxels: p = (0.5, 0.5) and (0.75, 0.25); target classes 0 and 1."""
    return torch.tensor([[[0.0, LN3], [0.0, 0.0]]]), torch.tensor([[0, 1]])


def np_dice_loss(logits, target, squared, smooth, include_background=True):
    e = np.exp(logits.astype(np.float64))
    probs = e / e.sum(axis=1, keepdims=True)
    losses = []
    for n in range(logits.shape[0]):
        terms = []
        for c in range(0 if include_background else 1, logits.shape[1]):
            p = probs[n, c].ravel()
            t = (target[n].ravel() == c).astype(float)
            den = (p @ p + t @ t) if squared else (p.sum() + t.sum())
            terms.append(1 - (2 * (p @ t) + smooth) / (den + smooth))
        losses.append(np.mean(terms))
    return float(np.mean(losses))


def test_squared_known_answer_by_hand():
    logits, target = tiny_case()
    # class 0: 2I = 1, sum p^2 + sum t^2 = .8125 + 1 -> 16/29; class 1: 2I = .5, .3125 + 1 -> 8/21
    expected = 1 - (16 / 29 + 8 / 21) / 2
    assert DiceLoss(squared=True, smooth=0.0)(logits, target).item() == pytest.approx(expected, rel=1e-6)


def test_plain_known_answer_by_hand():
    logits, target = tiny_case()
    # class 0: 1 / (1.25 + 1) = 4/9; class 1: .5 / (.75 + 1) = 2/7
    expected = 1 - (4 / 9 + 2 / 7) / 2
    assert DiceLoss(squared=False, smooth=0.0)(logits, target).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("squared", [True, False])
@pytest.mark.parametrize("include_background", [True, False])
def test_matches_numpy_reference(squared, include_background):
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 4, 3, 3, generator=gen) * 2
    target = torch.randint(0, 4, (2, 3, 3), generator=gen)
    loss = DiceLoss(squared=squared, smooth=1.0, include_background=include_background)(logits, target)
    expected = np_dice_loss(logits.numpy(), target.numpy(), squared, 1.0, include_background)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_perfect_prediction_gives_zero():
    target = torch.tensor([[[0, 1, 2], [2, 1, 0]]])
    logits = 200 * torch.nn.functional.one_hot(target, 3).movedim(-1, 1).float() - 100
    for squared in (True, False):
        assert DiceLoss(squared=squared, smooth=0.0)(logits, target).item() == pytest.approx(0.0, abs=1e-6)


def test_unsmoothed_absent_class_costs_one_and_is_finite():
    target = torch.zeros(1, 6, dtype=torch.long)
    logits = torch.tensor([[[100.0] * 6, [-100.0] * 6]])  # p(class 1) underflows to exactly 0
    logits.requires_grad_(True)
    loss = DiceLoss(smooth=0.0)(logits, target)
    loss.backward()
    assert loss.item() == pytest.approx(0.5)  # mean of (0 for class 0, 1 for the absent class 1)
    assert torch.isfinite(logits.grad).all()


def test_batch_vs_image_reduction():
    gen = torch.Generator().manual_seed(4)
    logits = torch.randn(2, 3, 5, generator=gen)
    logits[1] *= 8
    target = torch.randint(0, 3, (2, 5), generator=gen)
    image = DiceLoss(reduction="image")
    batch = DiceLoss(reduction="batch")
    per_image = (image(logits[:1], target[:1]) + image(logits[1:], target[1:])) / 2
    assert image(logits, target).item() == pytest.approx(per_image.item(), rel=1e-6)
    joined = image(torch.cat([logits[0], logits[1]], dim=1)[None], torch.cat([target[0], target[1]])[None])
    assert batch(logits, target).item() == pytest.approx(joined.item(), rel=1e-6)
    assert abs(batch(logits, target).item() - per_image.item()) > 1e-3


def test_ignore_index_excluded():
    gen = torch.Generator().manual_seed(5)
    logits = torch.randn(1, 3, 12, generator=gen)
    target = torch.randint(0, 3, (1, 12), generator=gen)
    target[0, :4] = -1
    loss = DiceLoss(ignore_index=-1)
    expected = loss(logits[..., 4:], target[:, 4:])
    assert loss(logits, target).item() == pytest.approx(expected.item(), rel=1e-6)


def test_rejects_bad_input():
    with pytest.raises(InputError, match="shape"):
        DiceLoss()(torch.randn(2, 3, 4), torch.zeros(2, 5, dtype=torch.long))
    with pytest.raises(InputError, match="at least 2 channels"):
        DiceLoss()(torch.randn(2, 1, 4), torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(InputError, match="smooth"):
        DiceLoss(smooth=-1)
