"""FocalLoss: known answers, gamma=0 equals cross-entropy, alpha conventions, ignore_index."""

import math

import pytest
import torch

from medseg3d.errors import InputError
from medseg3d.losses import CrossEntropyLoss, FocalLoss

LN2, LN3 = math.log(2.0), math.log(3.0)


def tiny_case():
    """p_t = 0.5 (class 0) and 0.25 (class 1)."""
    return torch.tensor([[[0.0, LN3], [0.0, 0.0]]]), torch.tensor([[0, 1]])


def test_known_answer_by_hand():
    logits, target = tiny_case()
    # (0.5^2 ln 2 + 0.75^2 ln 4) / 2 = (0.25 + 1.125) ln 2 / 2
    assert FocalLoss(gamma=2.0)(logits, target).item() == pytest.approx(0.6875 * LN2, rel=1e-6)


def test_scalar_alpha_weights_background_and_foreground():
    logits, target = tiny_case()
    # background voxel weighted 1 - 0.25, foreground voxel 0.25
    expected = (0.75 * 0.25 * LN2 + 0.25 * 1.125 * LN2) / 2
    assert FocalLoss(gamma=2.0, alpha=0.25)(logits, target).item() == pytest.approx(expected, rel=1e-6)


def test_list_alpha():
    logits, target = tiny_case()
    expected = (2.0 * 0.25 * LN2 + 0.5 * 1.125 * LN2) / 2
    assert FocalLoss(alpha=[2.0, 0.5])(logits, target).item() == pytest.approx(expected, rel=1e-6)


def test_gamma_zero_equals_cross_entropy():
    gen = torch.Generator().manual_seed(8)
    logits = torch.randn(2, 4, 3, 3, generator=gen)
    target = torch.randint(0, 4, (2, 3, 3), generator=gen)
    assert FocalLoss(gamma=0.0)(logits, target).item() == pytest.approx(
        CrossEntropyLoss()(logits, target).item(), rel=1e-6
    )


@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_perfect_prediction_zero_and_finite_gradients(gamma):
    target = torch.tensor([[0, 1, 2, 1]])
    logits = (200 * torch.nn.functional.one_hot(target, 3).movedim(-1, 1).float() - 100).requires_grad_(True)
    loss = FocalLoss(gamma=gamma)(logits, target)
    loss.backward()
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    assert torch.isfinite(logits.grad).all()


def test_ignore_index_excluded():
    gen = torch.Generator().manual_seed(9)
    logits = torch.randn(1, 3, 9, generator=gen)
    target = torch.randint(0, 3, (1, 9), generator=gen)
    target[0, 2::4] = 99
    keep = target[0] != 99
    loss = FocalLoss(ignore_index=99, alpha=[1.0, 2.0, 3.0])
    assert loss(logits, target).item() == pytest.approx(
        loss(logits[..., keep], target[:, keep]).item(), rel=1e-6
    )


def test_rejects_bad_input():
    with pytest.raises(InputError, match="gamma"):
        FocalLoss(gamma=-1)
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        FocalLoss(alpha=1.5)
    with pytest.raises(InputError, match="one per class"):
        FocalLoss(alpha=[1.0, 1.0])(torch.randn(1, 3, 4), torch.zeros(1, 4, dtype=torch.long))
